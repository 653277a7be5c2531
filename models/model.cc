#include "models/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/model_names.h"

namespace dpfleet::models {
namespace {

// A stack of fully connected layers with ReLU between them, over flattened inputs.
class MultiLayerPerceptron final : public Model {
 public:
  MultiLayerPerceptron(int64_t inputs, const std::vector<int64_t>& hidden, int64_t classes,
                       uint64_t seed) {
    at::Generator generator = at::detail::createCPUGenerator(seed);
    int64_t fan_in = inputs;
    std::vector<int64_t> widths = hidden;
    widths.push_back(classes);
    for (int64_t width : widths) {
      // PyTorch's default Linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      at::Tensor weight = at::empty({width, fan_in}, at::kFloat).uniform_(-bound, bound, generator);
      at::Tensor bias = at::empty({width}, at::kFloat).uniform_(-bound, bound, generator);
      parameters_.push_back(weight.set_requires_grad(true));
      parameters_.push_back(bias.set_requires_grad(true));
      fan_in = width;
    }
  }

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    at::Tensor h = inputs.flatten(1);
    const size_t layers = parameters_.size() / 2;
    for (size_t l = 0; l < layers; ++l) {
      const int weight_index = static_cast<int>(2 * l);
      at::Tensor out = at::linear(h, parameters_[weight_index], parameters_[weight_index + 1]);
      if (trace != nullptr) {
        trace->linear_layers.push_back({h.detach(), out, weight_index, weight_index + 1});
      }
      h = l + 1 < layers ? at::relu(out) : out;
    }
    return h;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> CreateModel(const std::string& name, const ModelShape& shape,
                                                   uint64_t seed) {
  if (shape.input_shape.empty() || shape.num_classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", name, "' needs an input shape and at least 2 classes"));
  }
  int64_t inputs = 1;
  for (int64_t d : shape.input_shape) inputs *= d;
  if (name == "linear") {
    return std::make_unique<MultiLayerPerceptron>(inputs, std::vector<int64_t>{}, shape.num_classes,
                                                  seed);
  }
  if (name == "mlp") {
    return std::make_unique<MultiLayerPerceptron>(inputs, std::vector<int64_t>{256},
                                                  shape.num_classes, seed);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown model '", name, "'; known models: ",
                                                 absl::StrJoin(KnownModelNames(), ", ")));
}

uint64_t Fingerprint(const std::vector<at::Tensor>& tensors) {
  uint64_t hash = 14695981039346656037ull;
  for (const at::Tensor& tensor : tensors) {
    const at::Tensor contiguous = tensor.detach().contiguous();
    const auto* bytes = static_cast<const unsigned char*>(contiguous.data_ptr());
    const size_t size = contiguous.numel() * contiguous.element_size();
    for (size_t i = 0; i < size; ++i) {
      hash ^= bytes[i];
      hash *= 1099511628211ull;
    }
  }
  return hash;
}

}  // namespace dpfleet::models

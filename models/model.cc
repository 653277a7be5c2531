#include "models/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/equivariant.h"
#include "models/model_names.h"
#include "models/scattering.h"

namespace dpfleet::models {
namespace {

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Fully connected layers with ReLU between them, over flattened inputs.
class MultiLayerPerceptron final : public Model {
 public:
  MultiLayerPerceptron(int64_t inputs, const std::vector<int64_t>& hidden, int64_t classes,
                       uint64_t seed) {
    at::Generator generator = at::detail::createCPUGenerator(seed);
    int64_t fan_in = inputs;
    std::vector<int64_t> widths = hidden;
    widths.push_back(classes);
    for (size_t l = 0; l < widths.size(); ++l) {
      layers_.emplace_back(parameters_, absl::StrCat("fc", l + 1), fan_in, widths[l], true,
                           generator);
      fan_in = widths[l];
    }
  }

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    at::Tensor h = inputs.flatten(1);
    for (size_t l = 0; l < layers_.size(); ++l) {
      h = layers_[l].Forward(parameters_, h, trace);
      if (l + 1 < layers_.size()) h = at::relu(h);
    }
    return h;
  }

 private:
  std::vector<Linear> layers_;
};

// The end-to-end CNN of Tramer and Boneh (2021, "Differentially Private Learning Needs Better
// Features", Table 9) for 28x28 images: conv 16x8x8/2, maxpool 2/1, conv 32x4x4/2, maxpool 2/1,
// fc 32, fc classes, tanh activations.
class TramerBonehCnn final : public Model {
 public:
  TramerBonehCnn(int64_t channels, int64_t classes, uint64_t seed)
      : generator_(at::detail::createCPUGenerator(seed)),
        conv1_(
            parameters_, "conv1",
            {.in_channels = channels, .out_channels = 16, .kernel = 8, .stride = 2, .padding = 2},
            generator_),
        conv2_(parameters_, "conv2",
               {.in_channels = 16, .out_channels = 32, .kernel = 4, .stride = 2}, generator_),
        fc1_(parameters_, "fc1", 32 * 4 * 4, 32, true, generator_),
        fc2_(parameters_, "fc2", 32, classes, true, generator_) {}

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    at::Tensor h = at::tanh(conv1_.Forward(parameters_, inputs, trace));
    h = at::max_pool2d(h, {2, 2}, {1, 1});
    h = at::tanh(conv2_.Forward(parameters_, h, trace));
    h = at::max_pool2d(h, {2, 2}, {1, 1});
    h = at::tanh(fc1_.Forward(parameters_, h.flatten(1), trace));
    return fc2_.Forward(parameters_, h, trace);
  }

 private:
  at::Generator generator_;
  Conv2d conv1_;
  Conv2d conv2_;
  Linear fc1_;
  Linear fc2_;
};

// WideResNet-16-4 (Zagoruyko and Komodakis 2016) as De et al. (2022, "Unlocking High-Accuracy
// Differentially Private Image Classification through Scale") train it privately: pre-activation
// blocks with GroupNorm (16 groups) instead of BatchNorm and weight-standardised convolutions.
class WideResNet final : public Model {
 public:
  WideResNet(int64_t channels, int64_t classes, int depth, int width, uint64_t seed)
      : generator_(at::detail::createCPUGenerator(seed)),
        stem_(parameters_, "stem", Conv(channels, 16, 3, 1), generator_) {
    const int blocks_per_group = (depth - 4) / 6;
    int64_t in = 16;
    const int64_t widths[3] = {16 * width, 32 * width, 64 * width};
    for (int group = 0; group < 3; ++group) {
      for (int b = 0; b < blocks_per_group; ++b) {
        const std::string name = absl::StrCat("group", group + 1, ".block", b + 1);
        const int64_t stride = (b == 0 && group > 0) ? 2 : 1;
        blocks_.push_back(
            std::make_unique<Block>(parameters_, name, in, widths[group], stride, generator_));
        in = widths[group];
      }
    }
    final_norm_ = std::make_unique<GroupNorm>(parameters_, "final_norm", 16, in);
    head_ = std::make_unique<Linear>(parameters_, "head", in, classes, true, generator_);
  }

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    at::Tensor h = stem_.Forward(parameters_, inputs, trace);
    for (const auto& block : blocks_) h = block->Forward(parameters_, h, trace);
    h = at::relu(final_norm_->Forward(parameters_, h, trace));
    return head_->Forward(parameters_, h.mean(at::IntArrayRef{2, 3}), trace);
  }

 private:
  static Conv2dOptions Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
    return {.in_channels = in,
            .out_channels = out,
            .kernel = kernel,
            .stride = stride,
            .padding = kernel / 2,
            .bias = false,
            .standardize_weight = true};
  }

  struct Block {
    Block(ParameterSet& p, const std::string& name, int64_t in, int64_t out, int64_t stride,
          at::Generator& g)
        : norm1(p, name + ".norm1", 16, in),
          conv1(p, name + ".conv1", Conv(in, out, 3, stride), g),
          norm2(p, name + ".norm2", 16, out),
          conv2(p, name + ".conv2", Conv(out, out, 3, 1), g) {
      if (in != out || stride != 1)
        shortcut = std::make_unique<Conv2d>(p, name + ".shortcut", Conv(in, out, 1, stride), g);
    }

    at::Tensor Forward(const ParameterSet& p, const at::Tensor& x, ForwardTrace* trace) const {
      const at::Tensor activated = at::relu(norm1.Forward(p, x, trace));
      at::Tensor h = conv1.Forward(p, activated, trace);
      h = conv2.Forward(p, at::relu(norm2.Forward(p, h, trace)), trace);
      return h + (shortcut ? shortcut->Forward(p, activated, trace) : x);
    }

    GroupNorm norm1;
    Conv2d conv1;
    GroupNorm norm2;
    Conv2d conv2;
    std::unique_ptr<Conv2d> shortcut;
  };

  at::Generator generator_;
  Conv2d stem_;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::unique_ptr<GroupNorm> final_norm_;
  std::unique_ptr<Linear> head_;
};

// A D4-equivariant convolution followed by GroupNorm (affine shared within each field) and ReLU.
struct D4Unit {
  D4Unit(ParameterSet& p, const std::string& name, int64_t in_channels, int64_t in_fields,
         int64_t out_fields, int64_t kernel, at::Generator& g)
      : conv(p, name + ".conv", in_channels, in_fields, out_fields, kernel, g),
        norm(p, name + ".norm", std::min<int64_t>(out_fields, 8), out_fields * kD4Order, kD4Order) {
  }

  at::Tensor Forward(const ParameterSet& p, const at::Tensor& x, ForwardTrace* trace) const {
    return at::relu(norm.Forward(p, conv.Forward(p, x, trace), trace));
  }

  D4Conv2d conv;
  GroupNorm norm;
};

// A small D4-equivariant CNN for 28x28 images: lifting convolution, two group convolutions with
// 2x2 max pooling between them, GroupNorm, group pooling and a linear head. Its logits are
// invariant to rotating the input by multiples of 90 degrees and to reflecting it.
class EquivariantCnn final : public Model {
 public:
  EquivariantCnn(int64_t channels, int64_t classes, uint64_t seed)
      : generator_(at::detail::createCPUGenerator(seed)),
        lift_(parameters_, "lift", channels, 0, 8, 5, generator_),
        block1_(parameters_, "block1", 0, 8, 16, 3, generator_),
        block2_(parameters_, "block2", 0, 16, 32, 3, generator_),
        head_(parameters_, "head", 32, classes, true, generator_) {}

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    at::Tensor h = at::max_pool2d(lift_.Forward(parameters_, inputs, trace), {2, 2});
    h = at::max_pool2d(block1_.Forward(parameters_, h, trace), {2, 2});
    h = GroupPool(block2_.Forward(parameters_, h, trace));
    return head_.Forward(parameters_, h.mean(at::IntArrayRef{2, 3}), trace);
  }

 private:
  at::Generator generator_;
  D4Unit lift_;
  D4Unit block1_;
  D4Unit block2_;
  Linear head_;
};

// ResNet9 (the DAWNBench network of Page 2018) with D4 group convolutions, as Hoelzl et al. (2023,
// "Equivariant Differentially Private Deep Learning") train it privately: fields 8, 16, 32, 64
// (64 to 512 channels), about 0.8M parameters against WRN-16-4's 2.7M. Inputs whose sides are
// multiples of 8 keep every pooling aligned, hence exact equivariance.
class EquivariantResNet9 final : public Model {
 public:
  EquivariantResNet9(int64_t channels, int64_t classes, uint64_t seed)
      : generator_(at::detail::createCPUGenerator(seed)),
        prep_(parameters_, "prep", channels, 0, 8, 3, generator_),
        layer1_(parameters_, "layer1", 0, 8, 16, 3, generator_),
        res1a_(parameters_, "res1a", 0, 16, 16, 3, generator_),
        res1b_(parameters_, "res1b", 0, 16, 16, 3, generator_),
        layer2_(parameters_, "layer2", 0, 16, 32, 3, generator_),
        layer3_(parameters_, "layer3", 0, 32, 64, 3, generator_),
        res3a_(parameters_, "res3a", 0, 64, 64, 3, generator_),
        res3b_(parameters_, "res3b", 0, 64, 64, 3, generator_),
        head_(parameters_, "head", 64, classes, true, generator_) {}

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    at::Tensor h = prep_.Forward(parameters_, inputs, trace);
    h = at::max_pool2d(layer1_.Forward(parameters_, h, trace), {2, 2});
    h = h + res1b_.Forward(parameters_, res1a_.Forward(parameters_, h, trace), trace);
    h = at::max_pool2d(layer2_.Forward(parameters_, h, trace), {2, 2});
    h = at::max_pool2d(layer3_.Forward(parameters_, h, trace), {2, 2});
    h = h + res3b_.Forward(parameters_, res3a_.Forward(parameters_, h, trace), trace);
    h = GroupPool(h).amax(at::IntArrayRef{2, 3});
    return head_.Forward(parameters_, h, trace);
  }

 private:
  at::Generator generator_;
  D4Unit prep_, layer1_, res1a_, res1b_, layer2_, layer3_, res3a_, res3b_;
  Linear head_;
};

// The fixed front of Tramer and Boneh's (2021) ScatterNet models: the scattering transform
// (J = 2, L = 8: 81 channels per input channel at a quarter of the resolution) and GroupNorm
// without an affine, in 27 groups of 3 channels per input channel, which per example
// standardises coefficients of a similar scale together. No parameter, no data beyond the example.
class ScatteringFront {
 public:
  static absl::StatusOr<ScatteringFront> Create(const ModelShape& shape) {
    if (shape.input_shape.size() != 3) {
      return absl::InvalidArgumentError("scattering models take images [C, H, W]");
    }
    absl::StatusOr<Scattering2d> scattering =
        Scattering2d::Create({.height = shape.input_shape[1], .width = shape.input_shape[2]});
    if (!scattering.ok()) return scattering.status();
    return ScatteringFront(*std::move(scattering), shape.input_shape[0]);
  }

  at::Tensor Apply(const at::Tensor& examples) const {
    return at::group_norm(scattering_.Transform(examples), groups_, {}, {}, 1e-5);
  }
  int64_t channels() const { return channels_; }
  int64_t height() const { return scattering_.output_height(); }
  int64_t width() const { return scattering_.output_width(); }

 private:
  ScatteringFront(Scattering2d scattering, int64_t input_channels)
      : scattering_(std::move(scattering)),
        channels_(input_channels * scattering_.channels_per_input()),
        groups_(27 * input_channels) {}

  Scattering2d scattering_;
  int64_t channels_;
  int64_t groups_;
};

// A model whose fixed front is the scattering front.
class ScatteringModel : public Model {
 public:
  at::Tensor Preprocess(const at::Tensor& examples) const final { return front_.Apply(examples); }
  bool has_fixed_front() const final { return true; }

 protected:
  ScatteringModel(ScatteringFront front, uint64_t seed)
      : front_(std::move(front)), generator_(at::detail::createCPUGenerator(seed)) {}

  ScatteringFront front_;
  at::Generator generator_;
};

// ScatterNet + linear: a linear layer over the normalised scattering coefficients.
class ScatterLinear final : public ScatteringModel {
 public:
  ScatterLinear(ScatteringFront front, int64_t classes, uint64_t seed)
      : ScatteringModel(std::move(front), seed),
        fc_(parameters_, "fc", front_.channels() * front_.height() * front_.width(), classes, true,
            generator_) {}

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    return fc_.Forward(parameters_, inputs.flatten(1), trace);
  }

 private:
  Linear fc_;
};

// ScatterNet + CNN for 28x28 images (Tramer and Boneh 2021, Table 10): over the 7x7 coefficients,
// conv 16x3x3/2, conv 32x3x3/1, fc 32, fc classes, tanh activations.
class ScatterCnn final : public ScatteringModel {
 public:
  ScatterCnn(ScatteringFront front, int64_t classes, uint64_t seed)
      : ScatteringModel(std::move(front), seed),
        conv1_(parameters_, "conv1",
               {.in_channels = front_.channels(),
                .out_channels = 16,
                .kernel = 3,
                .stride = 2,
                .padding = 1},
               generator_),
        conv2_(parameters_, "conv2",
               {.in_channels = 16, .out_channels = 32, .kernel = 3, .stride = 1, .padding = 1},
               generator_),
        fc1_(parameters_, "fc1", 32 * Halved(front_.height()) * Halved(front_.width()), 32, true,
             generator_),
        fc2_(parameters_, "fc2", 32, classes, true, generator_) {}

  at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) override {
    at::Tensor h = at::tanh(conv1_.Forward(parameters_, inputs, trace));
    h = at::tanh(conv2_.Forward(parameters_, h, trace));
    h = at::tanh(fc1_.Forward(parameters_, h.flatten(1), trace));
    return fc2_.Forward(parameters_, h, trace);
  }

 private:
  static int64_t Halved(int64_t side) { return (side + 1) / 2; }  // A 3x3/2 conv, padding 1.

  Conv2d conv1_;
  Conv2d conv2_;
  Linear fc1_;
  Linear fc2_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> CreateModel(const std::string& name, const ModelShape& shape,
                                                   uint64_t seed) {
  if (shape.input_shape.empty() || shape.num_classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", name, "' needs an input shape and at least 2 classes"));
  }
  if (name == "linear") {
    return std::make_unique<MultiLayerPerceptron>(Product(shape.input_shape),
                                                  std::vector<int64_t>{}, shape.num_classes, seed);
  }
  if (name == "mlp") {
    return std::make_unique<MultiLayerPerceptron>(
        Product(shape.input_shape), std::vector<int64_t>{256}, shape.num_classes, seed);
  }
  const bool image = shape.input_shape.size() == 3;
  if (name == "cnn_tb") {
    if (!image || shape.input_shape[1] != 28 || shape.input_shape[2] != 28) {
      return absl::InvalidArgumentError("model 'cnn_tb' takes 28x28 images [C, 28, 28]");
    }
    return std::make_unique<TramerBonehCnn>(shape.input_shape[0], shape.num_classes, seed);
  }
  if (name == "wrn16_4") {
    if (!image) return absl::InvalidArgumentError("model 'wrn16_4' takes images [C, H, W]");
    return std::make_unique<WideResNet>(shape.input_shape[0], shape.num_classes, 16, 4, seed);
  }
  if (name == "eq_cnn") {
    if (!image || shape.input_shape[1] != 28 || shape.input_shape[2] != 28) {
      return absl::InvalidArgumentError("model 'eq_cnn' takes 28x28 images [C, 28, 28]");
    }
    return std::make_unique<EquivariantCnn>(shape.input_shape[0], shape.num_classes, seed);
  }
  if (name == "eq_resnet9") {
    if (!image || shape.input_shape[1] != shape.input_shape[2] || shape.input_shape[1] % 8 != 0) {
      return absl::InvalidArgumentError(
          "model 'eq_resnet9' takes square images whose side is a multiple of 8, e.g. [3, 32, 32]");
    }
    return std::make_unique<EquivariantResNet9>(shape.input_shape[0], shape.num_classes, seed);
  }
  if (name == "scatter_linear" || name == "scatter_cnn") {
    absl::StatusOr<ScatteringFront> front = ScatteringFront::Create(shape);
    if (!front.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name, "': ", front.status().message()));
    }
    if (name == "scatter_linear") {
      return std::make_unique<ScatterLinear>(*std::move(front), shape.num_classes, seed);
    }
    return std::make_unique<ScatterCnn>(*std::move(front), shape.num_classes, seed);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown model '", name, "'; known models: ", absl::StrJoin(KnownModelNames(), ", ")));
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

absl::Status SaveParameters(const Model& model, const std::string& path) {
  const std::string temp = path + ".tmp";
  try {
    torch::serialize::OutputArchive archive;
    for (size_t i = 0; i < model.parameters().size(); ++i) {
      archive.write(model.parameter_names()[i], model.parameters()[i].detach());
    }
    archive.save_to(temp);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot write checkpoint ", temp, ": ", e.what()));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status LoadParameters(const std::string& path, Model& model) {
  if (!std::filesystem::exists(path))
    return absl::NotFoundError(absl::StrCat("no checkpoint ", path));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, " is corrupt: ", e.what()));
  }
  std::vector<at::Tensor> loaded(model.parameters().size());
  for (size_t i = 0; i < loaded.size(); ++i) {
    const std::string& name = model.parameter_names()[i];
    if (!archive.try_read(name, loaded[i])) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", path, " has no parameter ", name));
    }
    if (loaded[i].sizes() != model.parameters()[i].sizes()) {
      return absl::FailedPreconditionError(absl::StrCat("checkpoint ", path, ": parameter ", name,
                                                        " has shape ", loaded[i].sizes().size(),
                                                        "-d of another size than the model's"));
    }
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < loaded.size(); ++i) model.parameters()[i].copy_(loaded[i]);
  return absl::OkStatus();
}

}  // namespace dpfleet::models

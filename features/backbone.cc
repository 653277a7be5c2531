#include "features/backbone.h"

#include <torch/cuda.h>
#include <torch/script.h>

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dpfleet::features {

struct Backbone::Module {
  torch::jit::Module module;
  torch::Device device;
};

Backbone::Backbone(std::unique_ptr<Module> module) : module_(std::move(module)) {}
Backbone::~Backbone() = default;

absl::StatusOr<std::unique_ptr<Backbone>> Backbone::Load(const std::string& path,
                                                         const std::string& device_name) {
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(absl::StrCat("backbone ", path, " does not exist"));
  }
  std::unique_ptr<Module> module;
  try {
    const torch::Device device(device_name);
    if (device.is_cuda() && !torch::cuda::is_available()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device '", device_name,
                       "' asked for, but this LibTorch build has no CUDA or sees no GPU"));
    }
    module = std::make_unique<Module>(Module{torch::jit::load(path, device), device});
  } catch (const c10::Error& error) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load backbone ", path, " on '",
                                                   device_name,
                                                   "': ", error.what_without_backtrace()));
  }
  module->module.eval();
  return std::unique_ptr<Backbone>(new Backbone(std::move(module)));
}

absl::StatusOr<at::Tensor> Backbone::Embed(const at::Tensor& images) {
  const torch::NoGradGuard no_grad;
  c10::IValue output;
  try {
    output = module_->module.forward({images.to(module_->device)});
  } catch (const c10::Error& error) {
    return absl::InvalidArgumentError(
        absl::StrCat("the backbone's forward failed: ", error.what_without_backtrace()));
  }
  if (!output.isTensor()) {
    return absl::InvalidArgumentError(absl::StrCat("the backbone's forward returned a ",
                                                   output.tagKind(), ", not a tensor of features"));
  }
  const at::Tensor features = output.toTensor();
  const bool pooled = features.dim() == 4 && features.size(2) == 1 && features.size(3) == 1;
  if (features.size(0) != images.size(0) || (features.dim() != 2 && !pooled)) {
    return absl::InvalidArgumentError(absl::StrCat("the backbone maps ", images.size(0),
                                                   " images to shape ", c10::str(features.sizes()),
                                                   "; features must be [B, D] or [B, D, 1, 1]"));
  }
  return features.flatten(1).to(at::kCPU, at::kFloat);
}

}  // namespace dpfleet::features

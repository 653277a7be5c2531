#ifndef DPFLEET_FEATURES_BACKBONE_H_
#define DPFLEET_FEATURES_BACKBONE_H_

// A frozen, user-supplied feature extractor: a TorchScript module (`torch.jit.save` in Python, or
// torch::jit::Module::save in C++) pretrained on public data.

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace dpfleet::features {

class Backbone {
 public:
  // Loads the module at `path` onto `device` ("cpu", "cuda" or "cuda:N") in evaluation mode.
  // Errors: kNotFound for a missing file; kInvalidArgument for a file TorchScript cannot load;
  // kFailedPrecondition for a CUDA device when this LibTorch has no CUDA or sees no GPU.
  static absl::StatusOr<std::unique_ptr<Backbone>> Load(const std::string& path,
                                                        const std::string& device);
  ~Backbone();
  Backbone(const Backbone&) = delete;
  Backbone& operator=(const Backbone&) = delete;

  // Returns the features of `images` (float32 [B, 3, H, W] on the CPU) as float32 [B, D] on the
  // CPU; an output of shape [B, D, 1, 1] (a pooled convolutional trunk) is flattened. No gradients
  // are recorded. Errors: kInvalidArgument when forward throws or returns anything else.
  absl::StatusOr<at::Tensor> Embed(const at::Tensor& images);

 private:
  struct Module;
  explicit Backbone(std::unique_ptr<Module> module);
  std::unique_ptr<Module> module_;
};

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_BACKBONE_H_

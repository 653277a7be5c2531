#include "models/model_names.h"

#include <algorithm>

namespace dpfleet::models {

const std::vector<std::string>& KnownModelNames() {
  static const std::vector<std::string>* const names = new std::vector<std::string>{
      "linear",      // Softmax regression over flattened inputs or frozen features.
      "mlp",         // One hidden layer of 256 ReLU units.
      "cnn_tb",      // The CNN of Tramer and Boneh (2021) for 28x28 images.
      "wrn16_4",     // WideResNet-16-4 with GroupNorm and weight standardisation (De et al. 2022).
      "eq_cnn",      // A small D4-equivariant CNN for 28x28 images.
      "eq_resnet9",  // ResNet9 with D4 group convolutions (Hoelzl et al. 2023).
      // Scattering features (J = 2, L = 8) and GroupNorm, then a linear layer or a small CNN
      // (Tramer and Boneh 2021).
      "scatter_linear",
      "scatter_cnn",
  };
  return *names;
}

bool IsKnownModel(const std::string& name) {
  const std::vector<std::string>& names = KnownModelNames();
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace dpfleet::models

#include "models/model_names.h"

#include <algorithm>

namespace dpfleet::models {

const std::vector<std::string>& KnownModelNames() {
  static const std::vector<std::string>* const names = new std::vector<std::string>{
      "linear",  // Softmax regression over flattened inputs or frozen features.
      "mlp",     // One hidden layer of 256 ReLU units.
  };
  return *names;
}

bool IsKnownModel(const std::string& name) {
  const std::vector<std::string>& names = KnownModelNames();
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace dpfleet::models

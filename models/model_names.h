#ifndef DPFLEET_MODELS_MODEL_NAMES_H_
#define DPFLEET_MODELS_MODEL_NAMES_H_

// The model architectures a job spec may name. Free of LibTorch so the coordinator can validate
// jobs without linking it.

#include <string>
#include <vector>

namespace dpfleet::models {

// Returns the names CreateModel (model.h) accepts, e.g. "linear" and "mlp".
const std::vector<std::string>& KnownModelNames();

// Returns true when `name` is one of KnownModelNames().
bool IsKnownModel(const std::string& name);

}  // namespace dpfleet::models

#endif  // DPFLEET_MODELS_MODEL_NAMES_H_

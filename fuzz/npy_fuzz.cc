// The .npy importer (features::ReadNpyFeatures). Input: byte 0 picks the file the rest replaces
// (even: the features, odd: the labels); the other is a valid file of 2 rows.

#include <cmath>
#include <cstdint>
#include <string>

#include "features/feature_shard.h"
#include "features/npy_testing.h"
#include "fuzz/fuzz_support.h"

using dpfleet::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const dpfleet::fuzz::TempFile input(bytes, "fuzzed.npy");
  const std::string valid = input.folder() + "/valid.npy";
  const bool fuzz_features = data[0] % 2 == 0;
  if (fuzz_features) {
    const int64_t labels[] = {0, 1};
    dpfleet::features::WriteNpy(valid, "<i8", "(2,)", labels, sizeof(labels));
  } else {
    const float features[] = {0.5f, -1, 2, 0, 1, 3};
    dpfleet::features::WriteNpy(valid, "<f4", "(2, 3)", features, sizeof(features));
  }
  const auto read = fuzz_features ? dpfleet::features::ReadNpyFeatures(input.path(), valid)
                                  : dpfleet::features::ReadNpyFeatures(valid, input.path());
  if (!read.ok()) {
    dpfleet::fuzz::RequireCleanRefusal(read.status(), "ReadNpyFeatures");
    return 0;
  }
  Require(read->features.dim() == 2 && read->labels.dim() == 1 &&
              read->features.size(0) == read->labels.size(0),
          "ReadNpyFeatures returned mismatched arrays");
  const double sum = read->features.to(at::kDouble).sum().item<double>();
  Require(std::isfinite(sum), "ReadNpyFeatures returned a feature that is not finite");
  return 0;
}

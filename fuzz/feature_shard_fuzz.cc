// The feature-shard reader (features/feature_shard.h), checksum verification included. Input: the
// bytes of a .dpf file. Whatever it opens must be readable in full from the mapping.

#include <cstdint>
#include <string>

#include "features/feature_shard.h"
#include "fuzz/fuzz_support.h"

using dpfleet::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const dpfleet::fuzz::TempFile file(std::string(reinterpret_cast<const char*>(data), size),
                                     "train.dpf");
  for (const bool verify : {true, false}) {
    const auto shard = dpfleet::features::FeatureShard::Open(file.path(), verify);
    if (!shard.ok()) {
      dpfleet::fuzz::RequireCleanRefusal(shard.status(), "FeatureShard::Open");
      continue;
    }
    const at::Tensor features = (*shard)->features();
    const at::Tensor labels = (*shard)->labels();
    Require(features.size(0) == (*shard)->rows() && labels.size(0) == (*shard)->rows(),
            "shard tensors disagree with its header");
    // Touches every mapped byte: a header that overstates the file would fault here.
    features.to(at::kDouble).sum().item<double>();
    const int64_t label_sum = labels.to(at::kLong).sum().item<int64_t>();
    Require(label_sum >= 0, "negative labels in an opened shard");
    if (labels.numel() > 0) {
      Require(labels.max().item<int64_t>() < (*shard)->num_classes(),
              "an opened shard holds a label outside its classes");
    }
  }
  return 0;
}

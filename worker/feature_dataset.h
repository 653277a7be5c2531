#ifndef DPFLEET_WORKER_FEATURE_DATASET_H_
#define DPFLEET_WORKER_FEATURE_DATASET_H_

// Datasets of frozen-backbone features: a folder holding the training split as train.dpf, or as
// any contiguous run of its parts (train-00003-of-00008.dpf, ...: the parts this machine was
// given), and the whole test split as test.dpf (features/feature_shard.h). Shards are
// memory-mapped, so workers on one machine share one copy.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/dataset.h"

namespace dpfleet::worker {

// Returns true when `folder` holds test.dpf and at least one training shard.
bool LooksLikeFeatureDataset(const std::string& folder);

// Maps and checks every shard (checksums included); the dataset is named after the folder.
// Errors: those of FeatureShard::Open; kDataLoss when the shards disagree on dimension, classes or
// dataset size, or when the training parts held overlap or leave a gap.
absl::StatusOr<std::shared_ptr<const Dataset>> LoadFeatureDataset(const std::string& folder);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_FEATURE_DATASET_H_

#ifndef DPFLEET_WORKER_FEATURE_DATASET_H_
#define DPFLEET_WORKER_FEATURE_DATASET_H_

// Datasets of frozen-backbone features: a folder holding train.dpf and test.dpf feature shards
// (features/feature_shard.h), memory-mapped so that workers on one machine share one copy.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/dataset.h"

namespace dpfleet::worker {

// Returns true when `folder` holds train.dpf and test.dpf.
bool LooksLikeFeatureDataset(const std::string& folder);

// Maps and checks both shards (checksums included); the dataset is named after the folder.
// Errors: those of FeatureShard::Open; kDataLoss when the shards disagree on dimension or classes.
absl::StatusOr<std::shared_ptr<const Dataset>> LoadFeatureDataset(const std::string& folder);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_FEATURE_DATASET_H_

#include "worker/feature_dataset.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "features/feature_shard.h"

namespace dpfleet::worker {

bool LooksLikeFeatureDataset(const std::string& folder) {
  return std::filesystem::exists(folder + "/train.dpf") &&
         std::filesystem::exists(folder + "/test.dpf");
}

absl::StatusOr<std::shared_ptr<const Dataset>> LoadFeatureDataset(const std::string& folder) {
  DPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<features::FeatureShard> train,
                           features::FeatureShard::Open(folder + "/train.dpf"));
  DPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<features::FeatureShard> test,
                           features::FeatureShard::Open(folder + "/test.dpf"));
  if (train->dim() != test->dim() || train->num_classes() != test->num_classes()) {
    return absl::DataLossError(absl::StrCat(
        "feature shards in ", folder, " disagree: train has ", train->dim(), " features and ",
        train->num_classes(), " classes, test ", test->dim(), " and ", test->num_classes()));
  }
  auto dataset = std::make_shared<Dataset>();
  dataset->name = std::filesystem::path(folder).filename().string();
  dataset->train_inputs = train->features();
  dataset->train_labels = train->labels().to(at::kLong);
  dataset->test_inputs = test->features();
  dataset->test_labels = test->labels().to(at::kLong);
  dataset->num_classes = train->num_classes();
  dataset->storage = std::make_shared<
      std::pair<std::unique_ptr<features::FeatureShard>, std::unique_ptr<features::FeatureShard>>>(
      std::move(train), std::move(test));
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace dpfleet::worker

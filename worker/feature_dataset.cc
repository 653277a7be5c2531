#include "worker/feature_dataset.h"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "features/feature_shard.h"

namespace dpfleet::worker {
namespace {

namespace fs = std::filesystem;
using features::FeatureShard;

// The training shards in `folder`: train.dpf and train-*.dpf.
std::vector<std::string> TrainingShardPaths(const std::string& folder) {
  std::vector<std::string> paths;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, error)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && absl::EndsWith(name, ".dpf") &&
        (name == "train.dpf" || absl::StartsWith(name, "train-"))) {
      paths.push_back(entry.path().string());
    }
  }
  return paths;
}

}  // namespace

bool LooksLikeFeatureDataset(const std::string& folder) {
  return fs::exists(folder + "/test.dpf") && !TrainingShardPaths(folder).empty();
}

absl::StatusOr<std::shared_ptr<const Dataset>> LoadFeatureDataset(const std::string& folder) {
  DPFLEET_ASSIGN_OR_RETURN(std::shared_ptr<FeatureShard> test,
                           FeatureShard::Open(folder + "/test.dpf"));
  std::vector<std::shared_ptr<FeatureShard>> parts;
  for (const std::string& path : TrainingShardPaths(folder)) {
    DPFLEET_ASSIGN_OR_RETURN(std::shared_ptr<FeatureShard> part, FeatureShard::Open(path));
    parts.push_back(std::move(part));
  }
  if (parts.empty()) return absl::NotFoundError(absl::StrCat(folder, " has no training shard"));
  std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) {
    return a->placement().first_row < b->placement().first_row;
  });

  auto dataset = std::make_shared<Dataset>();
  dataset->name = fs::path(folder).filename().string();
  dataset->train_examples = parts.front()->placement().total_rows;
  dataset->num_classes = test->num_classes();
  int64_t next_row = parts.front()->placement().first_row;
  for (const std::shared_ptr<FeatureShard>& part : parts) {
    const features::ShardPlacement placement = part->placement();
    if (part->dim() != test->dim() || part->num_classes() != test->num_classes()) {
      return absl::DataLossError(
          absl::StrCat("feature shards in ", folder, " disagree: a training part has ", part->dim(),
                       " features and ", part->num_classes(), " classes, test.dpf ", test->dim(),
                       " and ", test->num_classes()));
    }
    if (placement.total_rows != dataset->train_examples) {
      return absl::DataLossError(
          absl::StrCat("training parts in ", folder, " come from datasets of different sizes: ",
                       dataset->train_examples, " and ", placement.total_rows, " rows"));
    }
    if (placement.first_row != next_row) {
      return absl::DataLossError(absl::StrCat("the training parts in ", folder,
                                              " are not contiguous: one ends at row ", next_row,
                                              ", the next starts at row ", placement.first_row));
    }
    next_row += part->rows();
    dataset->train_blocks.push_back(
        TrainingBlock{placement.first_row, part->features(), part->labels().to(at::kLong)});
  }
  dataset->test_inputs = test->features();
  dataset->test_labels = test->labels().to(at::kLong);
  parts.push_back(std::move(test));
  dataset->storage = std::make_shared<std::vector<std::shared_ptr<FeatureShard>>>(std::move(parts));
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace dpfleet::worker

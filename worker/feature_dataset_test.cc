#include "worker/feature_dataset.h"

#include <filesystem>

#include "features/feature_shard.h"
#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {
namespace fs = std::filesystem;

using features::ShardFileName;
using features::ShardPlacement;
using features::WriteFeatureShard;

// 12 rows of 3 features (row i holds i, i, i) in 3 parts of 4, labelled i mod 2.
at::Tensor Features() { return at::arange(12, at::kFloat).view({12, 1}).expand({12, 3}); }
at::Tensor Labels() { return at::arange(12, at::kLong).remainder(2); }

std::string MakeFolder(const std::string& name, const std::vector<int>& parts) {
  const fs::path folder = fs::path(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") / name;
  fs::remove_all(folder);
  fs::create_directories(folder);
  for (int part : parts) {
    const int64_t begin = 4 * part;
    EXPECT_TRUE(WriteFeatureShard((folder / ShardFileName("train", part, 3)).string(),
                                  Features().slice(0, begin, begin + 4),
                                  Labels().slice(0, begin, begin + 4), 2, at::kHalf,
                                  ShardPlacement{begin, 12})
                    .ok());
  }
  EXPECT_TRUE(WriteFeatureShard((folder / "test.dpf").string(), Features().slice(0, 0, 5),
                                Labels().slice(0, 0, 5), 2, at::kHalf)
                  .ok());
  return folder.string();
}

TEST(FeatureDataset, HoldsTheContiguousPartsGivenToThisMachine) {
  const std::string folder = MakeFolder("tail", {2, 1});
  ASSERT_TRUE(LooksLikeFeatureDataset(folder));
  auto dataset = LoadFeatureDataset(folder);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ((*dataset)->name, "tail");
  EXPECT_EQ((*dataset)->train_examples, 12);
  EXPECT_EQ((*dataset)->held_begin(), 4);
  EXPECT_EQ((*dataset)->held_end(), 12);
  EXPECT_EQ((*dataset)->test_inputs.size(0), 5);

  // Rows gathered across both parts, in order.
  const auto [inputs, labels] = (*dataset)->TrainingRows({5, 7, 8, 11});
  EXPECT_TRUE(at::equal(inputs.select(1, 0), at::tensor({5.0f, 7.0f, 8.0f, 11.0f})));
  EXPECT_TRUE(at::equal(labels, at::tensor({1, 1, 0, 1}, at::kLong)));
}

TEST(FeatureDataset, RefusesPartsWithAGap) {
  auto gap = LoadFeatureDataset(MakeFolder("gap", {0, 2}));
  ASSERT_EQ(gap.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(gap.status().message().find("not contiguous"), std::string::npos);
}

TEST(FeatureDataset, RefusesPartsOfDifferentDatasets) {
  const std::string folder = MakeFolder("mixed", {0});
  ASSERT_TRUE(WriteFeatureShard(folder + "/" + ShardFileName("train", 1, 3),
                                Features().slice(0, 4, 8), Labels().slice(0, 4, 8), 2, at::kHalf,
                                ShardPlacement{4, 13})
                  .ok());
  EXPECT_EQ(LoadFeatureDataset(folder).status().code(), absl::StatusCode::kDataLoss);
}

TEST(FeatureDataset, NeedsATestSplit) {
  const std::string folder = MakeFolder("no_test", {0, 1, 2});
  fs::remove(folder + "/test.dpf");
  EXPECT_FALSE(LooksLikeFeatureDataset(folder));
}

}  // namespace
}  // namespace dpfleet::worker

#include "worker/dataset.h"

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

// Rows 10..19 of a 30-row dataset in two blocks; row r holds the value r.
Dataset TwoBlocks() {
  Dataset dataset;
  dataset.train_examples = 30;
  for (int64_t first : {10, 15}) {
    const at::Tensor rows = at::arange(first, first + 5, at::kLong);
    dataset.train_blocks.push_back({first, rows.to(at::kHalf).view({5, 1}), rows});
  }
  return dataset;
}

TEST(Dataset, GathersHeldRowsAcrossBlocksInOrder) {
  const Dataset dataset = TwoBlocks();
  EXPECT_EQ(dataset.held_begin(), 10);
  EXPECT_EQ(dataset.held_end(), 20);
  for (const std::vector<int64_t>& rows :
       {std::vector<int64_t>{10, 12, 16, 19}, std::vector<int64_t>{13, 14, 15, 16},
        std::vector<int64_t>{11}}) {
    const auto [inputs, labels] = dataset.TrainingRows(rows);
    const at::Tensor expected = at::tensor(rows, at::kLong);
    EXPECT_EQ(inputs.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(inputs.view({-1}), expected.to(at::kFloat)));
    EXPECT_TRUE(at::equal(labels, expected));
  }
  const auto [none, no_labels] = dataset.TrainingRows({});
  EXPECT_EQ(none.size(0), 0);
  EXPECT_EQ(none.size(1), 1);
}

TEST(Dataset, AWholeSplitIsOneBlock) {
  Dataset dataset;
  dataset.SetTrainingSplit(at::zeros({7, 2, 3}), at::zeros({7}, at::kLong));
  EXPECT_EQ(dataset.train_examples, 7);
  EXPECT_EQ(dataset.held_end(), 7);
  EXPECT_EQ(dataset.ExampleShape(), (std::vector<int64_t>{2, 3}));
}

}  // namespace
}  // namespace dpfleet::worker

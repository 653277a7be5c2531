#include "coordinator/shard_plan.h"

#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

TEST(PlanShards, SplitsAWholeDatasetEvenlyOverTheFirstHolders) {
  auto plan = PlanShards({HeldRows::Whole(10), HeldRows::Whole(10), HeldRows::Whole(10)}, 2);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].candidate, 0u);
  EXPECT_EQ((*plan)[0].end, 5);
  EXPECT_EQ((*plan)[1].candidate, 1u);
  EXPECT_EQ((*plan)[1].begin, 5);
  EXPECT_EQ((*plan)[1].end, 10);
  auto too_many = PlanShards({HeldRows::Whole(10), HeldRows::Whole(10)}, 3);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(too_many.status().message().find("only 2"), std::string::npos);
}

TEST(PlanShards, ChainsPartsHeldOnDifferentMachinesInRowOrder) {
  // Three parts; the middle one is held twice.
  const std::vector<HeldRows> held = {{9, 6, 9}, {9, 3, 6}, {9, 0, 3}, {9, 3, 6}};
  auto plan = PlanShards(held, 3);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 3u);
  EXPECT_EQ((*plan)[0].candidate, 2u);
  EXPECT_EQ((*plan)[1].candidate, 1u);
  EXPECT_EQ((*plan)[2].candidate, 0u);
  EXPECT_EQ((*plan)[2].begin, 6);
  EXPECT_EQ((*plan)[2].end, 9);

  auto wrong_count = PlanShards(held, 2);
  EXPECT_EQ(wrong_count.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong_count.status().message().find("num_workers must be 3"), std::string::npos);
}

TEST(PlanShards, NamesTheRowsThatNoWorkerHolds) {
  auto gap = PlanShards({{9, 0, 3}, {9, 6, 9}}, 2);
  ASSERT_EQ(gap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(gap.status().message().find("row 3"), std::string::npos);
  EXPECT_EQ(PlanShards({}, 1).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PlanShards, PrefersAWholeHolderOverParts) {
  auto plan = PlanShards({{10, 4, 10}, HeldRows::Whole(10)}, 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)[0].candidate, 1u);
  EXPECT_EQ((*plan)[0].end, 10);
}

}  // namespace
}  // namespace dpfleet::coordinator

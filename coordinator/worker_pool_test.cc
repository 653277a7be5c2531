#include "coordinator/worker_pool.h"

#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

TEST(WorkerPool, AcquiresOnlyIdleWorkersWithTheDataset) {
  WorkerPool pool(absl::Seconds(60));
  const std::string a = *pool.Register("w", "127.0.0.1:1", {{"mnist", HeldRows::Whole(100)}});
  ASSERT_TRUE(pool.Register("w", "127.0.0.1:2", {{"mnist", HeldRows::Whole(100)}}).ok());
  ASSERT_TRUE(pool.Register("w", "127.0.0.1:3", {{"cifar", HeldRows::Whole(50)}}).ok());
  EXPECT_EQ(pool.CountAlive("mnist"), 2);
  EXPECT_EQ(*pool.DatasetSize("mnist"), 100);
  EXPECT_EQ(pool.DatasetSize("imagenet").status().code(), absl::StatusCode::kNotFound);

  EXPECT_TRUE(pool.Acquire("mnist", 3, "job-1").empty());
  const auto workers = pool.Acquire("mnist", 2, "job-1");
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_TRUE(pool.Acquire("mnist", 1, "job-2").empty());
  pool.ReleaseJob("job-1");
  EXPECT_EQ(pool.Acquire("mnist", 1, "job-2").size(), 1u);
  EXPECT_TRUE(pool.Heartbeat("w", a).ok());
}

TEST(WorkerPool, ReRegistrationReplacesAndSilentWorkersDie) {
  WorkerPool pool(absl::Milliseconds(50));
  const std::string first = *pool.Register("w", "127.0.0.1:1", {{"mnist", HeldRows::Whole(100)}});
  const std::string second = *pool.Register("w", "127.0.0.1:1", {{"mnist", HeldRows::Whole(100)}});
  EXPECT_NE(first, second);
  EXPECT_EQ(pool.Heartbeat("w", first).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(pool.IsAlive(second));
  absl::SleepFor(absl::Milliseconds(80));
  EXPECT_FALSE(pool.IsAlive(second));
  EXPECT_EQ(pool.CountAlive("mnist"), 0);
}

TEST(WorkerPool, AWorkerSpeaksOnlyForItself) {
  WorkerPool pool(absl::Seconds(60));
  const std::string honest = *pool.Register("worker-0", "10.0.0.1:7300", {});
  // Another worker may neither take over its address nor heartbeat for it.
  const absl::StatusOr<std::string> takeover = pool.Register("worker-1", "10.0.0.1:7300", {});
  EXPECT_EQ(takeover.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(takeover.status().message().find("'worker-0'"), std::string::npos);
  EXPECT_EQ(pool.Heartbeat("worker-1", honest).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(pool.Heartbeat("worker-0", honest).ok());
  EXPECT_EQ(pool.List().size(), 1u);
}

TEST(WorkerPool, DisagreeingDatasetSizesAreRefused) {
  WorkerPool pool(absl::Seconds(60));
  ASSERT_TRUE(pool.Register("w", "127.0.0.1:1", {{"mnist", HeldRows::Whole(100)}}).ok());
  ASSERT_TRUE(pool.Register("w", "127.0.0.1:2", {{"mnist", HeldRows::Whole(99)}}).ok());
  EXPECT_EQ(pool.DatasetSize("mnist").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerPool, GivesEachPartHolderTheRowsItHolds) {
  WorkerPool pool(absl::Seconds(60));
  ASSERT_TRUE(pool.Register("w", "127.0.0.1:1", {{"imagenet", HeldRows{100, 50, 100}}}).ok());
  ASSERT_TRUE(pool.Register("w", "127.0.0.1:2", {{"imagenet", HeldRows{100, 0, 50}}}).ok());
  EXPECT_EQ(*pool.DatasetSize("imagenet"), 100);
  EXPECT_EQ(pool.CheckPlacement("imagenet", 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(pool.CheckPlacement("imagenet", 2).ok());
  EXPECT_TRUE(pool.Acquire("imagenet", 1, "job-1").empty());
  const auto workers = pool.Acquire("imagenet", 2, "job-1");
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].record.address, "127.0.0.1:2");
  EXPECT_EQ(workers[0].shard_end, 50);
  EXPECT_EQ(workers[1].shard_begin, 50);
  EXPECT_EQ(workers[1].shard_end, 100);
  // Busy workers still count for admission, not for acquisition.
  EXPECT_TRUE(pool.CheckPlacement("imagenet", 2).ok());
  EXPECT_TRUE(pool.Acquire("imagenet", 2, "job-2").empty());
}

TEST(WorkerPool, IdsOfARestartedCoordinatorNeverNameAnOldWorker) {
  WorkerPool before(absl::Seconds(60));
  const std::string old_id =
      *before.Register("w", "127.0.0.1:1", {{"mnist", HeldRows::Whole(100)}});
  WorkerPool after(absl::Seconds(60));  // The coordinator restarted.
  ASSERT_TRUE(after.Register("w", "127.0.0.1:2", {{"mnist", HeldRows::Whole(100)}}).ok());
  EXPECT_EQ(after.Heartbeat("w", old_id).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dpfleet::coordinator

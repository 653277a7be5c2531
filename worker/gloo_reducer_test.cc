#include "worker/gloo_reducer.h"

#include <thread>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

TEST(GlooReducer, TwoRanksSumAndAgreeBitForBit) {
  RendezvousOptions options{.store_host = "127.0.0.1", .store_port = 0, .rank = 0, .world_size = 2,
                            .timeout = std::chrono::seconds(30)};
  int port = 0;
  auto server_store = *ServeRendezvousStore(options, &port);
  ASSERT_GT(port, 0);
  at::Tensor results[2];
  std::thread ranks[2];
  for (int rank = 0; rank < 2; ++rank) {
    ranks[rank] = std::thread([&, rank] {
      RendezvousOptions mine = options;
      mine.rank = rank;
      mine.store_port = port;
      auto store = rank == 0 ? server_store : *ConnectRendezvousStore(mine);
      auto reducer = CreateGlooReducer(mine, store);
      ASSERT_TRUE(reducer.ok()) << reducer.status();
      at::Tensor buffer = at::full({1000}, 0.1f * (rank + 1));
      ASSERT_TRUE((*reducer)->AllReduceSum(buffer).ok());
      results[rank] = buffer;
    });
  }
  for (std::thread& t : ranks) t.join();
  ASSERT_TRUE(results[0].defined() && results[1].defined());
  EXPECT_TRUE(at::equal(results[0], results[1]));
  EXPECT_NEAR(results[0][0].item<float>(), 0.3f, 1e-6);
}

TEST(GlooReducer, MissingPeerTimesOutWithUnavailable) {
  RendezvousOptions options{.store_host = "127.0.0.1", .store_port = 0, .rank = 0, .world_size = 2,
                            .timeout = std::chrono::seconds(2)};
  int port = 0;
  auto store = *ServeRendezvousStore(options, &port);
  const auto reducer = CreateGlooReducer(options, store);
  ASSERT_FALSE(reducer.ok());
  EXPECT_EQ(reducer.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dpfleet::worker

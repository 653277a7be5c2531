#include "worker/gloo_reducer.h"

#include "gtest/gtest.h"
#include "worker/gloo_testing.h"

namespace dpfleet::worker {
namespace {

TEST(GlooReducer, TwoRanksSumAndAgreeBitForBit) {
  at::Tensor results[2];
  RunOnGlooRanks(2, [&](int rank, std::unique_ptr<Reducer> reducer) {
    at::Tensor buffer = at::full({1000}, 0.1f * (rank + 1));
    ASSERT_TRUE(reducer->AllReduceSum(buffer).ok());
    results[rank] = buffer;
  });
  ASSERT_TRUE(results[0].defined() && results[1].defined());
  EXPECT_TRUE(at::equal(results[0], results[1]));
  EXPECT_NEAR(results[0][0].item<float>(), 0.3f, 1e-6);
}

TEST(GlooReducer, SeveralAllReducesInFlightEachSumTheirOwnBuffer) {
  at::Tensor results[2][3];
  RunOnGlooRanks(2, [&](int rank, std::unique_ptr<Reducer> reducer) {
    std::vector<std::unique_ptr<PendingAllReduce>> pending;
    for (int b = 0; b < 3; ++b) {
      results[rank][b] = at::full({100000}, static_cast<float>((b + 1) * (rank + 1)));
      pending.push_back(reducer->StartAllReduceSum(results[rank][b]));
    }
    for (const auto& reduce : pending) ASSERT_TRUE(reduce->Wait().ok());
  });
  for (int b = 0; b < 3; ++b) {
    EXPECT_TRUE(at::equal(results[0][b], results[1][b]));
    EXPECT_EQ(results[0][b][0].item<float>(), 3.0f * (b + 1)) << "bucket " << b;
  }
  at::Tensor strided = at::zeros({4, 4}).t();
  RunOnGlooRanks(1, [&](int, std::unique_ptr<Reducer> reducer) {
    EXPECT_EQ(reducer->StartAllReduceSum(strided)->Wait().code(),
              absl::StatusCode::kInvalidArgument);
  });
}

TEST(GlooReducer, MissingPeerTimesOutWithUnavailable) {
  RendezvousOptions options{.store_host = "127.0.0.1",
                            .store_port = 0,
                            .rank = 0,
                            .world_size = 2,
                            .timeout = std::chrono::seconds(2)};
  int port = 0;
  auto store = *ServeRendezvousStore(options, &port);
  const auto reducer = CreateGlooReducer(options, store);
  ASSERT_FALSE(reducer.ok());
  EXPECT_EQ(reducer.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dpfleet::worker

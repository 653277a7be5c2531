#include "worker/nccl_reducer.h"

#include <cuda_runtime_api.h>

#include "gtest/gtest.h"
#include "worker/gloo_reducer.h"

namespace dpfleet::worker {
namespace {

// NCCL forbids two ranks on one GPU, so on a single-GPU machine this runs one rank: it still
// exercises the id exchange, communicator set-up, copies and ncclAllReduce. Skipped where no GPU is
// visible.
TEST(NcclReducer, SingleRankRoundTrip) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no GPU";
  RendezvousOptions options{.store_port = 0, .rank = 0, .world_size = 1};
  int port = 0;
  auto store = *ServeRendezvousStore(options, &port);
  auto reducer = CreateNcclReducer(options, store, 0);
  ASSERT_TRUE(reducer.ok()) << reducer.status();
  at::Tensor buffer = at::arange(1 << 20, at::kFloat);
  const at::Tensor expected = buffer.clone();
  ASSERT_TRUE((*reducer)->AllReduceSum(buffer).ok());
  EXPECT_TRUE(at::equal(buffer, expected));
}

}  // namespace
}  // namespace dpfleet::worker

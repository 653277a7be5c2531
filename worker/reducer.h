#ifndef DPFLEET_WORKER_REDUCER_H_
#define DPFLEET_WORKER_REDUCER_H_

// The collective that sums the workers' clipped gradient sums. Implementations: Gloo over TCP on
// CPUs (c10d ProcessGroupGloo, gloo_reducer.h) and NCCL on GPUs (nccl_reducer.h, --config=cuda).

#include <ATen/ATen.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace dpfleet::worker {

// Where and how the ranks of one job meet. Two addresses are involved, and on a cluster they differ
// on every rank but rank 0:
//  - store_host:store_port is rank 0's c10d TCPStore, which every rank reaches to exchange the
//    addresses of the group's members (and, for NCCL, the communicator's id);
//  - local_host is this rank's own address on the collective network: its Gloo device binds to it
//    and publishes it in the store, and the peers connect to it for the all-reduce.
struct RendezvousOptions {
  std::string store_host = "127.0.0.1";
  int store_port = 0;
  std::string local_host = "127.0.0.1";
  int rank = 0;
  int world_size = 1;
  // How long a rendezvous or a collective may wait for peers before it fails.
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // Prefixed to every key of the rendezvous store (the job's secret, ShardAssignment): whoever
  // reaches the store without it cannot find or answer the group's keys.
  std::string key_prefix;
};

// An all-reduce that was started and has not been waited for.
class PendingAllReduce {
 public:
  virtual ~PendingAllReduce() = default;
  // Blocks until the sum is in the buffer. Errors: as Reducer::AllReduceSum.
  virtual absl::Status Wait() = 0;
};

class Reducer {
 public:
  virtual ~Reducer() = default;

  // Replaces `buffer` (contiguous, CPU) on every rank by the element-wise sum over all ranks. Every
  // rank receives the same bits. Errors: kUnavailable when a peer is gone or the timeout passes
  // (the reducer is then unusable); kInvalidArgument for a non-contiguous buffer.
  virtual absl::Status AllReduceSum(at::Tensor& buffer) = 0;

  // Starts the same sum and returns while it runs, where the backend can overlap it with the
  // caller's work; the buffer must stay alive and untouched until Wait(). Every rank must start
  // the same all-reduces in the same order. The default runs AllReduceSum to completion first.
  virtual std::unique_ptr<PendingAllReduce> StartAllReduceSum(at::Tensor& buffer);

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
};

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_REDUCER_H_

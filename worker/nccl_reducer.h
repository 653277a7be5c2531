#ifndef DPFLEET_WORKER_NCCL_REDUCER_H_
#define DPFLEET_WORKER_NCCL_REDUCER_H_

// NCCL all-reduce on one GPU per rank. Built only with --config=cuda (DPFLEET_WITH_CUDA defined).

#include <memory>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/status/statusor.h"
#include "worker/reducer.h"

namespace dpfleet::worker {

// Joins the job's NCCL communicator on GPU `device`: rank 0 creates the NCCL unique id and
// publishes it in `store`; the other ranks read it from there. The reducer copies host buffers to
// the GPU, all-reduces them with ncclAllReduce and copies the sum back, so the trainer's step is
// unchanged. Errors: kUnavailable when the device or communicator cannot be set up (naming the CUDA
// or NCCL error), or the id does not arrive within options.timeout.
// Only the store is reached through `options`: NCCL's bootstrap and transports pick their network
// interface themselves, so on hosts with several, set NCCL_SOCKET_IFNAME to the one holding the
// worker's collective address.
absl::StatusOr<std::unique_ptr<Reducer>> CreateNcclReducer(const RendezvousOptions& options,
                                                           c10::intrusive_ptr<c10d::Store> store,
                                                           int device);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_NCCL_REDUCER_H_

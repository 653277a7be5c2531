#ifndef DPFLEET_WORKER_GLOO_REDUCER_H_
#define DPFLEET_WORKER_GLOO_REDUCER_H_

#include <memory>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/status/statusor.h"
#include "worker/reducer.h"

namespace dpfleet::worker {

// Starts the job's rendezvous store on this host (rank 0 does this before the other ranks are told
// where to connect). Port 0 picks a free port; returns the store, whose port is in *bound_port.
// Both this and ConnectRendezvousStore return a store whose keys carry options.key_prefix.
// Errors: kUnavailable when the port cannot be bound.
absl::StatusOr<c10::intrusive_ptr<c10d::Store>> ServeRendezvousStore(
    const RendezvousOptions& options, int* bound_port);

// Connects to the rendezvous store served by rank 0. Errors: kUnavailable after options.timeout.
absl::StatusOr<c10::intrusive_ptr<c10d::Store>> ConnectRendezvousStore(
    const RendezvousOptions& options);

// Joins the job's Gloo process group through `store`; blocks until all world_size ranks have joined
// (or options.timeout passes: kUnavailable, naming both addresses). The group's traffic goes over
// the interface that holds options.local_host, which must be an address of this host that every
// peer can reach.
absl::StatusOr<std::unique_ptr<Reducer>> CreateGlooReducer(const RendezvousOptions& options,
                                                           c10::intrusive_ptr<c10d::Store> store);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_GLOO_REDUCER_H_

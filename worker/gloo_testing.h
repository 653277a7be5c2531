#ifndef DPFLEET_WORKER_GLOO_TESTING_H_
#define DPFLEET_WORKER_GLOO_TESTING_H_

// Test helper: several ranks of one Gloo group inside one process, on loopback.

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "worker/gloo_reducer.h"

namespace dpfleet::worker {

// Runs body(rank, reducer) on `world_size` threads whose reducers form one Gloo group, and joins
// them.
inline void RunOnGlooRanks(int world_size,
                           const std::function<void(int rank, std::unique_ptr<Reducer>)>& body) {
  RendezvousOptions options{.store_port = 0, .rank = 0, .world_size = world_size};
  int port = 0;
  auto server_store = ServeRendezvousStore(options, &port);
  ASSERT_TRUE(server_store.ok()) << server_store.status();
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < world_size; ++rank) {
    ranks.emplace_back([&, rank] {
      RendezvousOptions mine = options;
      mine.rank = rank;
      mine.store_port = port;
      auto store = rank == 0 ? *server_store : ConnectRendezvousStore(mine);
      ASSERT_TRUE(store.ok()) << store.status();
      auto reducer = CreateGlooReducer(mine, *store);
      ASSERT_TRUE(reducer.ok()) << reducer.status();
      body(rank, std::move(*reducer));
    });
  }
  for (std::thread& t : ranks) t.join();
}

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_GLOO_TESTING_H_

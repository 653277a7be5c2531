#include "worker/gloo_reducer.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/str_cat.h"

namespace dpfleet::worker {
namespace {

class GlooAllReduce final : public PendingAllReduce {
 public:
  GlooAllReduce(int64_t elements, int rank) : elements_(elements), rank_(rank) {}

  absl::Status Wait() override {
    try {
      if (work != nullptr) work->wait();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!status.ok() || failure.empty()) return status;
    return absl::UnavailableError(absl::StrCat("Gloo all-reduce of ", elements_,
                                               " elements failed on rank ", rank_, ": ", failure));
  }

  absl::Status status;                  // A refusal before anything was sent.
  c10::intrusive_ptr<c10d::Work> work;  // Null: nothing to wait for.
  std::string failure;                  // Gloo's message when it failed.

 private:
  const int64_t elements_;
  const int rank_;
};

class GlooReducer final : public Reducer {
 public:
  GlooReducer(c10::intrusive_ptr<c10d::Store> store,
              c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank, int world_size)
      : store_(std::move(store)), group_(std::move(group)), rank_(rank), world_size_(world_size) {}

  absl::Status AllReduceSum(at::Tensor& buffer) override {
    return StartAllReduceSum(buffer)->Wait();
  }

  // ProcessGroupGloo runs the collective on its own threads; the returned work is waited on later.
  std::unique_ptr<PendingAllReduce> StartAllReduceSum(at::Tensor& buffer) override {
    auto pending = std::make_unique<GlooAllReduce>(buffer.numel(), rank_);
    if (!buffer.is_contiguous()) {
      pending->status = absl::InvalidArgumentError("all-reduce buffer must be contiguous");
      return pending;
    }
    if (world_size_ == 1) return pending;
    try {
      std::vector<at::Tensor> tensors = {buffer};
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      pending->work = group_->allreduce(tensors, options);
    } catch (const std::exception& e) {
      pending->failure = e.what();
    }
    return pending;
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  const int rank_;
  const int world_size_;
};

// `store` with every key under `prefix`, when there is one.
c10::intrusive_ptr<c10d::Store> WithKeyPrefix(const std::string& prefix,
                                              c10::intrusive_ptr<c10d::Store> store) {
  if (prefix.empty()) return store;
  return c10::make_intrusive<c10d::PrefixStore>(prefix, std::move(store));
}

}  // namespace

absl::StatusOr<c10::intrusive_ptr<c10d::Store>> ServeRendezvousStore(
    const RendezvousOptions& options, int* bound_port) {
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options.store_port);
    store_options.isServer = true;
    store_options.numWorkers = options.world_size;
    store_options.waitWorkers = false;
    store_options.timeout = options.timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(options.store_host, store_options);
    *bound_port = store->getPort();
    return WithKeyPrefix(options.key_prefix, store);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve the rendezvous store on ",
                                               options.store_host, ":", options.store_port, ": ",
                                               e.what()));
  }
}

absl::StatusOr<c10::intrusive_ptr<c10d::Store>> ConnectRendezvousStore(
    const RendezvousOptions& options) {
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options.store_port);
    store_options.isServer = false;
    store_options.timeout = options.timeout;
    return WithKeyPrefix(options.key_prefix,
                         c10::make_intrusive<c10d::TCPStore>(options.store_host, store_options));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot reach the rendezvous store at ",
                                               options.store_host, ":", options.store_port, ": ",
                                               e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Reducer>> CreateGlooReducer(const RendezvousOptions& options,
                                                           c10::intrusive_ptr<c10d::Store> store) {
  try {
    auto group_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    group_options->devices.push_back(
        c10d::ProcessGroupGloo::createDeviceForHostname(options.local_host));
    group_options->threads = 1;
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, options.rank,
                                                             options.world_size, group_options);
    return std::unique_ptr<Reducer>(
        new GlooReducer(std::move(store), std::move(group), options.rank, options.world_size));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rank ", options.rank, " of ", options.world_size, " (collective address ",
                     options.local_host, ", store ", options.store_host, ":", options.store_port,
                     ") could not join the Gloo group: ", e.what()));
  }
}

}  // namespace dpfleet::worker

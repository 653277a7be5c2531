#include "worker/reducer.h"

#include <utility>

namespace dpfleet::worker {
namespace {

class CompletedAllReduce final : public PendingAllReduce {
 public:
  explicit CompletedAllReduce(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

}  // namespace

std::unique_ptr<PendingAllReduce> Reducer::StartAllReduceSum(at::Tensor& buffer) {
  return std::make_unique<CompletedAllReduce>(AllReduceSum(buffer));
}

}  // namespace dpfleet::worker

#ifndef DPFLEET_WORKER_DATASET_H_
#define DPFLEET_WORKER_DATASET_H_

// A labelled dataset as a worker trains on it: inputs of any per-example shape (images, or feature
// vectors of a frozen backbone), with a held-out test split.

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

namespace dpfleet::worker {

struct Dataset {
  std::string name;
  at::Tensor train_inputs;  // [N, ...]; any floating type (converted to float32 batch by batch).
  at::Tensor train_labels;  // [N] int64.
  at::Tensor test_inputs;
  at::Tensor test_labels;
  int64_t num_classes = 0;
  // Keeps alive whatever the tensors view (e.g. memory-mapped feature shards).
  std::shared_ptr<void> storage;

  std::vector<int64_t> ExampleShape() const { return train_inputs.sizes().slice(1).vec(); }
};

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_DATASET_H_

#ifndef DPFLEET_WORKER_DATASET_H_
#define DPFLEET_WORKER_DATASET_H_

// A labelled dataset as a worker holds it: inputs of any per-example shape (images, or feature
// vectors of a frozen backbone), with a held-out test split. The training split may be larger
// than any one machine: a worker then holds only some of its rows, in blocks (feature shards
// written in parts), and trains on those.

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dpfleet::worker {

// Training rows [first_row, first_row + inputs.size(0)) of the dataset.
struct TrainingBlock {
  int64_t first_row = 0;
  at::Tensor inputs;  // [n, ...]; any floating type (converted to float32 batch by batch).
  at::Tensor labels;  // [n] int64.
};

struct Dataset {
  std::string name;
  int64_t train_examples = 0;  // In the whole dataset, wherever its rows are held.
  // The rows held here, sorted and contiguous: [held_begin(), held_end()).
  std::vector<TrainingBlock> train_blocks;
  at::Tensor test_inputs;
  at::Tensor test_labels;
  int64_t num_classes = 0;
  // Keeps alive whatever the tensors view (e.g. memory-mapped feature shards).
  std::shared_ptr<void> storage;

  // Makes `inputs` and `labels` the whole training split, held here as one block.
  void SetTrainingSplit(at::Tensor inputs, at::Tensor labels);

  int64_t held_begin() const { return train_blocks.front().first_row; }
  int64_t held_end() const;

  // Returns the inputs (float32) and labels of the dataset rows `rows`, which must be ascending
  // and held here, in that order.
  std::pair<at::Tensor, at::Tensor> TrainingRows(const std::vector<int64_t>& rows) const;

  std::vector<int64_t> ExampleShape() const {
    return train_blocks.front().inputs.sizes().slice(1).vec();
  }
};

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_DATASET_H_

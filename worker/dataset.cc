#include "worker/dataset.h"

#include <algorithm>

namespace dpfleet::worker {

void Dataset::SetTrainingSplit(at::Tensor inputs, at::Tensor labels) {
  train_examples = inputs.size(0);
  train_blocks = {TrainingBlock{0, std::move(inputs), std::move(labels)}};
}

int64_t Dataset::held_end() const {
  const TrainingBlock& last = train_blocks.back();
  return last.first_row + last.inputs.size(0);
}

std::pair<at::Tensor, at::Tensor> Dataset::TrainingRows(const std::vector<int64_t>& rows) const {
  if (rows.empty()) {
    const TrainingBlock& first = train_blocks.front();
    return {first.inputs.slice(0, 0, 0).to(at::kFloat), first.labels.slice(0, 0, 0)};
  }
  std::vector<at::Tensor> inputs, labels;
  auto next = rows.begin();
  for (const TrainingBlock& block : train_blocks) {
    const int64_t block_end = block.first_row + block.inputs.size(0);
    const auto stop = std::lower_bound(next, rows.end(), block_end);
    if (stop == next) continue;
    const int64_t first = *next - block.first_row, count = stop - next;
    if (*(stop - 1) - *next + 1 == count) {
      // Consecutive rows (every row, at q = 1): a view, converted once, with no gather.
      inputs.push_back(block.inputs.slice(0, first, first + count).to(at::kFloat));
      labels.push_back(block.labels.slice(0, first, first + count));
    } else {
      const at::Tensor local =
          at::tensor(std::vector<int64_t>(next, stop), at::kLong).sub_(block.first_row);
      inputs.push_back(block.inputs.index_select(0, local).to(at::kFloat));
      labels.push_back(block.labels.index_select(0, local));
    }
    next = stop;
  }
  if (inputs.size() == 1) return {inputs[0], labels[0]};
  return {at::cat(inputs), at::cat(labels)};
}

}  // namespace dpfleet::worker

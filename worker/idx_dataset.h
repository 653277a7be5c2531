#ifndef DPFLEET_WORKER_IDX_DATASET_H_
#define DPFLEET_WORKER_IDX_DATASET_H_

// Image classification datasets in the IDX format of MNIST and Fashion-MNIST (LeCun et al.), as
// installed by Debian's dataset-fashion-mnist: a folder with train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally
// gzipped.

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/dataset.h"

namespace dpfleet::worker {

// The number of classes of IDX datasets (MNIST, Fashion-MNIST). Fixed, not read from the labels:
// what the labels contain is private.
constexpr int64_t kIdxNumClasses = 10;

// Loads the dataset in `folder`; its name is the folder's base name. Pixels are scaled by a fixed
// map, never by statistics of the (private) data. Errors: kNotFound naming a missing file;
// kDataLoss for a truncated file, a bad magic number, mismatched counts, or a label outside [0,
// kIdxNumClasses).
absl::StatusOr<std::shared_ptr<const Dataset>> LoadIdxDataset(const std::string& folder);

// Returns true when `folder` holds the four IDX files (gzipped or not).
bool LooksLikeIdxDataset(const std::string& folder);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_IDX_DATASET_H_

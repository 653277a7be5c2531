#ifndef DPFLEET_WORKER_CHECKPOINT_H_
#define DPFLEET_WORKER_CHECKPOINT_H_

// The byte format of a trainer's checkpoint, which the coordinator stores and hands to the workers
// of a resumed job. A flat, checksummed list of float32 tensors that is parsed in one bounded pass:
// no LibTorch archive, whose loader compiles TorchScript from the bytes it is given.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dpfleet::worker {

// What a checkpoint holds. Decoding checks only the format; whether the tensors fit a model and
// an optimizer is the trainer's to check.
struct TrainerCheckpoint {
  int64_t steps_done = 0;
  std::vector<at::Tensor> parameters;
  int64_t optimizer_steps = 0;
  std::vector<at::Tensor> optimizer_tensors;  // The optimizer's state, in its own order.
  std::vector<at::Tensor> average;            // The weight average; empty when there is none.
};

// Returns the bytes of `checkpoint`, every tensor stored as float32 (little-endian, the byte order
// of every host dpfleet runs on), followed by a StreamChecksum of what precedes it.
std::string EncodeCheckpoint(const TrainerCheckpoint& checkpoint);

// Returns `body` followed by the StreamChecksum of `body`: how every checkpoint ends. For
// EncodeCheckpoint, and for tests and fuzzers that forge well-sealed bodies.
std::string SealCheckpoint(std::string body);

// Returns the checkpoint in `bytes`. Errors: kDataLoss naming what is wrong (not a checkpoint, an
// unknown version, truncated or trailing bytes, a failed checksum, a negative step count, a tensor
// of more than 8 dimensions or a negative size). Reads each byte once and allocates no more than
// `bytes` holds.
absl::StatusOr<TrainerCheckpoint> DecodeCheckpoint(absl::string_view bytes);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_CHECKPOINT_H_

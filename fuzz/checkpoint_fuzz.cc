// Checkpoint restore (worker::ShardTrainer::Restore), which a worker runs on the bytes an
// AssignShard carries. Input: the checkpoint's bytes, restored as given and again with their last
// 8 bytes replaced by the right checksum, so that mutations reach the parser behind it. A refused
// checkpoint must leave the trainer as it was; an accepted one must hold finite parameters.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "fuzz/fuzz_support.h"
#include "fuzz/toy_trainer.h"
#include "worker/checkpoint.h"
#include "worker/trainer.h"

namespace {

using dpfleet::fuzz::Require;

dpfleet::worker::ShardTrainer& Trainer() {
  static dpfleet::worker::ShardTrainer* const trainer = dpfleet::fuzz::ToyTrainer().release();
  return *trainer;
}

// `bytes` with their last 8 bytes replaced by the checksum of the rest.
std::string Resealed(std::string bytes) {
  if (bytes.size() < 8) return bytes;
  bytes.resize(bytes.size() - 8);
  return dpfleet::worker::SealCheckpoint(std::move(bytes));
}

void CheckRestore(const std::string& checkpoint) {
  dpfleet::worker::ShardTrainer& trainer = Trainer();
  const uint64_t before = trainer.ParameterFingerprint();
  const int64_t steps_before = trainer.steps_done();
  const absl::Status restored = trainer.Restore(checkpoint);
  if (!restored.ok()) {
    Require(restored.code() == absl::StatusCode::kDataLoss ||
                restored.code() == absl::StatusCode::kFailedPrecondition,
            "Restore refused with " + restored.ToString());
    Require(trainer.ParameterFingerprint() == before && trainer.steps_done() == steps_before,
            "a refused checkpoint changed the trainer");
    return;
  }
  for (const at::Tensor& parameter : trainer.Parameters()) {
    Require(at::isfinite(parameter).all().item<bool>(), "restored a parameter that is not finite");
  }
  Require(trainer.steps_done() >= 0, "restored a negative step count");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  CheckRestore(bytes);
  CheckRestore(Resealed(bytes));
  return 0;
}

// The IDX reader (worker::LoadIdxDataset). Input: byte 0 picks which of the four files the rest
// replaces; the other three are valid files of two 2x2 images.

#include <cstdint>
#include <string>

#include "fuzz/fuzz_support.h"
#include "worker/idx_dataset.h"

using dpfleet::fuzz::Require;

namespace {

std::string BigEndian(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
          static_cast<char>(value >> 8), static_cast<char>(value)};
}

std::string ValidImages() {
  return BigEndian(2051) + BigEndian(2) + BigEndian(2) + BigEndian(2) +
         std::string("\x00\x40\x80\xff\x10\x20\x30\x40", 8);
}

std::string ValidLabels() { return BigEndian(2049) + BigEndian(2) + std::string("\x03\x09", 2); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const char* const kFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  const int fuzzed = data[0] % 4;
  const dpfleet::fuzz::TempFile input(
      std::string(reinterpret_cast<const char*>(data + 1), size - 1), kFiles[fuzzed]);
  for (int i = 0; i < 4; ++i) {
    if (i == fuzzed) continue;
    dpfleet::fuzz::WriteFileOrDie(input.folder() + "/" + kFiles[i],
                                  i % 2 == 0 ? ValidImages() : ValidLabels());
  }
  const auto dataset = dpfleet::worker::LoadIdxDataset(input.folder());
  if (!dataset.ok()) {
    dpfleet::fuzz::RequireCleanRefusal(dataset.status(), "LoadIdxDataset");
    return 0;
  }
  const auto& [inputs, labels] = (*dataset)->TrainingRows({0});
  Require(inputs.size(0) == 1 && labels.size(0) == 1, "TrainingRows of row 0");
  Require(labels.item<int64_t>() >= 0 && labels.item<int64_t>() < (*dataset)->num_classes,
          "a loaded label outside its classes");
  return 0;
}

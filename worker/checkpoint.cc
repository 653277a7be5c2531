#include "worker/checkpoint.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "common/status.h"

namespace dpfleet::worker {
namespace {

constexpr char kMagic[8] = {'D', 'P', 'F', 'C', 'K', 'P', 'T', '\n'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxDimensions = 8;
constexpr size_t kChecksumBytes = 8;

template <typename T>
void Append(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

void AppendTensor(std::string& out, const at::Tensor& tensor) {
  const at::Tensor values = tensor.detach().to(at::kFloat).contiguous();
  Append<uint32_t>(out, static_cast<uint32_t>(values.dim()));
  for (const int64_t size : values.sizes()) Append<int64_t>(out, size);
  if (values.numel() > 0) {  // An empty tensor may have no data pointer.
    out.append(static_cast<const char*>(values.data_ptr()), values.numel() * sizeof(float));
  }
}

// Reads fixed-size fields and tensors off the front of the bytes; every read checks what is left.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : rest_(bytes) {}

  template <typename T>
  absl::StatusOr<T> Read(const char* what) {
    if (rest_.size() < sizeof(T)) return Truncated(what);
    T value;
    std::memcpy(&value, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return value;
  }

  absl::StatusOr<std::vector<at::Tensor>> ReadTensors(uint32_t count, const char* what) {
    std::vector<at::Tensor> tensors;
    for (uint32_t i = 0; i < count; ++i) {
      const std::string name = absl::StrCat(what, " ", i);
      DPFLEET_ASSIGN_OR_RETURN(const uint32_t dimensions, Read<uint32_t>(name.c_str()));
      if (dimensions > kMaxDimensions) {
        return absl::DataLossError(absl::StrCat("checkpoint's ", name, " has ", dimensions,
                                                " dimensions; at most ", kMaxDimensions));
      }
      std::vector<int64_t> sizes;
      // Bounded by what is left, so a forged size can neither overflow nor allocate.
      uint64_t elements = 1;
      for (uint32_t d = 0; d < dimensions; ++d) {
        DPFLEET_ASSIGN_OR_RETURN(const int64_t size, Read<int64_t>(name.c_str()));
        if (size < 0) {
          return absl::DataLossError(
              absl::StrCat("checkpoint's ", name, " has a negative size ", size));
        }
        sizes.push_back(size);
        if (size > 0 && elements > rest_.size() / sizeof(float) / static_cast<uint64_t>(size)) {
          return Truncated(name.c_str());
        }
        elements *= static_cast<uint64_t>(size);
      }
      const size_t length = elements * sizeof(float);
      if (rest_.size() < length) return Truncated(name.c_str());
      at::Tensor tensor = at::empty(sizes, at::kFloat);
      if (length > 0) std::memcpy(tensor.data_ptr(), rest_.data(), length);  // Empty: no data.
      rest_.remove_prefix(length);
      tensors.push_back(std::move(tensor));
    }
    return tensors;
  }

  bool done() const { return rest_.empty(); }

 private:
  static absl::Status Truncated(const char* what) {
    return absl::DataLossError(absl::StrCat("checkpoint is truncated in its ", what));
  }

  absl::string_view rest_;
};

}  // namespace

std::string EncodeCheckpoint(const TrainerCheckpoint& checkpoint) {
  std::string out(kMagic, sizeof(kMagic));
  Append<uint32_t>(out, kVersion);
  Append<uint32_t>(out, static_cast<uint32_t>(checkpoint.parameters.size()));
  Append<uint32_t>(out, static_cast<uint32_t>(checkpoint.optimizer_tensors.size()));
  Append<uint32_t>(out, static_cast<uint32_t>(checkpoint.average.size()));
  Append<int64_t>(out, checkpoint.steps_done);
  Append<int64_t>(out, checkpoint.optimizer_steps);
  for (const std::vector<at::Tensor>* list :
       {&checkpoint.parameters, &checkpoint.optimizer_tensors, &checkpoint.average}) {
    for (const at::Tensor& tensor : *list) AppendTensor(out, tensor);
  }
  return SealCheckpoint(std::move(out));
}

std::string SealCheckpoint(std::string body) {
  StreamChecksum checksum;
  checksum.Update(body.data(), body.size());
  Append<uint64_t>(body, checksum.Final());
  return body;
}

absl::StatusOr<TrainerCheckpoint> DecodeCheckpoint(absl::string_view bytes) {
  if (bytes.size() < sizeof(kMagic) + kChecksumBytes ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("not a dpfleet checkpoint (no DPFCKPT header)");
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - kChecksumBytes);
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + body.size(), kChecksumBytes);
  StreamChecksum checksum;
  checksum.Update(body.data(), body.size());
  if (checksum.Final() != stored) {
    return absl::DataLossError("checkpoint fails its checksum: it is truncated or corrupt");
  }
  Reader reader(body.substr(sizeof(kMagic)));
  DPFLEET_ASSIGN_OR_RETURN(const uint32_t version, reader.Read<uint32_t>("version"));
  if (version != kVersion) {
    return absl::DataLossError(
        absl::StrCat("checkpoint has format version ", version, "; this reads ", kVersion));
  }
  DPFLEET_ASSIGN_OR_RETURN(const uint32_t parameters, reader.Read<uint32_t>("header"));
  DPFLEET_ASSIGN_OR_RETURN(const uint32_t optimizer_tensors, reader.Read<uint32_t>("header"));
  DPFLEET_ASSIGN_OR_RETURN(const uint32_t average, reader.Read<uint32_t>("header"));
  TrainerCheckpoint checkpoint;
  DPFLEET_ASSIGN_OR_RETURN(checkpoint.steps_done, reader.Read<int64_t>("header"));
  DPFLEET_ASSIGN_OR_RETURN(checkpoint.optimizer_steps, reader.Read<int64_t>("header"));
  if (checkpoint.steps_done < 0 || checkpoint.optimizer_steps < 0) {
    return absl::DataLossError(absl::StrCat("checkpoint has a negative step count (",
                                            checkpoint.steps_done, ", optimizer ",
                                            checkpoint.optimizer_steps, ")"));
  }
  DPFLEET_ASSIGN_OR_RETURN(checkpoint.parameters, reader.ReadTensors(parameters, "parameter"));
  DPFLEET_ASSIGN_OR_RETURN(checkpoint.optimizer_tensors,
                           reader.ReadTensors(optimizer_tensors, "optimizer tensor"));
  DPFLEET_ASSIGN_OR_RETURN(checkpoint.average, reader.ReadTensors(average, "weight average"));
  if (!reader.done()) return absl::DataLossError("checkpoint has bytes after its last tensor");
  return checkpoint;
}

}  // namespace dpfleet::worker

#include "features/feature_shard.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/checksum.h"
#include "common/status.h"

namespace dpfleet::features {
namespace {

constexpr char kMagic[8] = {'D', 'P', 'F', 'S', 'H', 'A', 'R', 'D'};
constexpr uint32_t kVersion = 2;
constexpr size_t kHeaderBytes = 64;
constexpr size_t kChecksumOffset = 40;
constexpr size_t kAlignment = 64;

// On-disk dtype codes. Frozen: never renumber.
enum DtypeCode : uint32_t { kFloat32 = 1, kFloat16 = 2, kBFloat16 = 3 };

absl::StatusOr<uint32_t> CodeOf(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return kFloat32;
    case at::kHalf:
      return kFloat16;
    case at::kBFloat16:
      return kBFloat16;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "feature shards store float32, float16 or bfloat16, not ", at::toString(dtype)));
  }
}

absl::StatusOr<at::ScalarType> DtypeOf(uint32_t code) {
  switch (code) {
    case kFloat32:
      return at::kFloat;
    case kFloat16:
      return at::kHalf;
    case kBFloat16:
      return at::kBFloat16;
    default:
      return absl::DataLossError(absl::StrCat("unknown dtype code ", code));
  }
}

size_t FeaturesOffset(int64_t rows) {
  const size_t end_of_labels = kHeaderBytes + 4 * static_cast<size_t>(rows);
  return (end_of_labels + kAlignment - 1) / kAlignment * kAlignment;
}

struct Header {
  uint32_t version;
  uint32_t dtype;
  uint64_t rows;
  uint64_t dim;
  uint32_t num_classes;
  uint64_t first_row;
  uint64_t total_rows;
};

void EncodeHeader(const Header& header, uint64_t checksum, unsigned char out[kHeaderBytes]) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kMagic, 8);
  std::memcpy(out + 8, &header.version, 4);
  std::memcpy(out + 12, &header.dtype, 4);
  std::memcpy(out + 16, &header.rows, 8);
  std::memcpy(out + 24, &header.dim, 8);
  std::memcpy(out + 32, &header.num_classes, 4);
  std::memcpy(out + kChecksumOffset, &checksum, 8);
  std::memcpy(out + 48, &header.first_row, 8);
  std::memcpy(out + 56, &header.total_rows, 8);
}

}  // namespace

struct FeatureShardWriter::State {
  std::string path;
  std::string temp_path;
  std::ofstream out;
  Header header;
  StreamChecksum checksum;
  at::ScalarType dtype;
  bool finished = false;

  void Write(const void* data, size_t length) {
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(length));
    checksum.Update(data, length);
  }
};

FeatureShardWriter::FeatureShardWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

FeatureShardWriter::~FeatureShardWriter() {
  if (!state_->finished) {
    state_->out.close();
    std::remove(state_->temp_path.c_str());
  }
}

absl::StatusOr<std::unique_ptr<FeatureShardWriter>> FeatureShardWriter::Create(
    const std::string& path, const at::Tensor& labels, int64_t dim, int64_t num_classes,
    at::ScalarType dtype, ShardPlacement placement) {
  if (labels.dim() != 1 || dim < 1) {
    return absl::InvalidArgumentError("need labels [N] and at least one feature per row");
  }
  if (num_classes < 1 || num_classes > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("num_classes out of range: ", num_classes));
  }
  auto code = CodeOf(dtype);
  if (!code.ok()) return code.status();
  const int64_t rows = labels.size(0);
  if (placement.total_rows == 0) placement.total_rows = rows;
  if (placement.first_row < 0 || placement.first_row + rows > placement.total_rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows [", placement.first_row, ", ", placement.first_row + rows,
                     ") do not fit a dataset of ", placement.total_rows, " rows"));
  }
  const at::Tensor label_values = labels.to(at::kInt).contiguous();
  if (rows > 0 && (label_values.min().item<int32_t>() < 0 ||
                   label_values.max().item<int32_t>() >= num_classes)) {
    return absl::InvalidArgumentError(absl::StrCat("labels must lie in [0, ", num_classes, ")"));
  }
  auto state = std::make_unique<State>();
  state->path = path;
  state->temp_path = path + ".tmp";
  state->dtype = dtype;
  state->header = Header{kVersion,
                         *code,
                         static_cast<uint64_t>(rows),
                         static_cast<uint64_t>(dim),
                         static_cast<uint32_t>(num_classes),
                         static_cast<uint64_t>(placement.first_row),
                         static_cast<uint64_t>(placement.total_rows)};
  state->out.open(state->temp_path, std::ios::binary | std::ios::trunc);
  if (!state->out) return absl::InternalError(absl::StrCat("cannot create ", state->temp_path));
  unsigned char header_bytes[kHeaderBytes];
  EncodeHeader(state->header, 0, header_bytes);
  state->Write(header_bytes, kHeaderBytes);
  state->Write(label_values.data_ptr(), 4 * static_cast<size_t>(rows));
  const std::vector<char> padding(FeaturesOffset(rows) - kHeaderBytes - 4 * rows, 0);
  state->Write(padding.data(), padding.size());
  return std::unique_ptr<FeatureShardWriter>(new FeatureShardWriter(std::move(state)));
}

int64_t FirstNonFiniteRow(const at::Tensor& features) {
  constexpr int64_t kRowsPerChunk = 4096;
  for (int64_t start = 0; start < features.size(0); start += kRowsPerChunk) {
    const at::Tensor finite =
        features.slice(0, start, std::min(features.size(0), start + kRowsPerChunk))
            .isfinite()
            .all(1);
    if (!finite.all().item<bool>()) {
      return start + finite.logical_not().nonzero()[0][0].item<int64_t>();
    }
  }
  return -1;
}

absl::Status FeatureShardWriter::Append(const at::Tensor& features) {
  const Header& header = state_->header;
  if (features.dim() != 2 || features.size(1) != static_cast<int64_t>(header.dim)) {
    return absl::InvalidArgumentError(
        absl::StrCat("appended features must be [n, ", header.dim, "]"));
  }
  if (rows_written_ + features.size(0) > static_cast<int64_t>(header.rows)) {
    return absl::InvalidArgumentError(absl::StrCat("appending ", features.size(0), " rows to ",
                                                   rows_written_, " exceeds the shard's ",
                                                   header.rows, " labelled rows"));
  }
  constexpr int64_t kRowsPerChunk = 4096;
  for (int64_t start = 0; start < features.size(0); start += kRowsPerChunk) {
    const at::Tensor chunk =
        features.slice(0, start, std::min(features.size(0), start + kRowsPerChunk))
            .to(at::kCPU, state_->dtype)
            .contiguous();
    // Checked as stored: a float32 value beyond 65504 becomes inf in a float16 shard.
    if (const int64_t bad = FirstNonFiniteRow(chunk); bad >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", header.first_row + rows_written_ + start + bad, " of ", state_->path,
          " is not finite as ", at::toString(state_->dtype),
          " (an inf or a NaN, or beyond float16's range): it would break the clip bound"));
    }
    state_->Write(chunk.data_ptr(), chunk.numel() * chunk.element_size());
  }
  rows_written_ += features.size(0);
  if (!state_->out) return absl::InternalError(absl::StrCat("cannot write ", state_->temp_path));
  return absl::OkStatus();
}

absl::Status FeatureShardWriter::Finish() {
  if (rows_written_ != static_cast<int64_t>(state_->header.rows)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", state_->path, " has ", rows_written_, " of its ", state_->header.rows, " rows"));
  }
  unsigned char header_bytes[kHeaderBytes];
  EncodeHeader(state_->header, state_->checksum.Final(), header_bytes);
  state_->out.seekp(0);
  state_->out.write(reinterpret_cast<const char*>(header_bytes), kHeaderBytes);
  state_->out.close();
  if (!state_->out) return absl::InternalError(absl::StrCat("cannot write ", state_->temp_path));
  if (std::rename(state_->temp_path.c_str(), state_->path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", state_->temp_path, " to ", state_->path));
  }
  state_->finished = true;
  return absl::OkStatus();
}

absl::Status WriteFeatureShard(const std::string& path, const at::Tensor& features,
                               const at::Tensor& labels, int64_t num_classes, at::ScalarType dtype,
                               ShardPlacement placement) {
  if (features.dim() != 2 || labels.dim() != 1 || features.size(0) != labels.size(0)) {
    return absl::InvalidArgumentError("need features [N, D] and labels [N]");
  }
  DPFLEET_ASSIGN_OR_RETURN(
      std::unique_ptr<FeatureShardWriter> writer,
      FeatureShardWriter::Create(path, labels, features.size(1), num_classes, dtype, placement));
  DPFLEET_RETURN_IF_ERROR(writer->Append(features));
  return writer->Finish();
}

absl::StatusOr<std::unique_ptr<FeatureShard>> FeatureShard::Open(const std::string& path,
                                                                 bool verify_checksum) {
  DPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  const size_t length = file->size();
  if (length < kHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat(path, " is truncated: ", length, " bytes, no full header"));
  }
  const unsigned char* bytes = file->data();
  std::unique_ptr<FeatureShard> shard(new FeatureShard());
  shard->path_ = path;
  shard->file_ = std::move(file);

  if (std::memcmp(bytes, kMagic, 8) != 0)
    return absl::DataLossError(absl::StrCat(path, " is not a feature shard"));
  Header header;
  std::memcpy(&header.version, bytes + 8, 4);
  std::memcpy(&header.dtype, bytes + 12, 4);
  std::memcpy(&header.rows, bytes + 16, 8);
  std::memcpy(&header.dim, bytes + 24, 8);
  std::memcpy(&header.num_classes, bytes + 32, 4);
  std::memcpy(&header.first_row, bytes + 48, 8);
  std::memcpy(&header.total_rows, bytes + 56, 8);
  uint64_t stored_checksum;
  std::memcpy(&stored_checksum, bytes + kChecksumOffset, 8);
  if (header.version < 1 || header.version > kVersion) {
    return absl::DataLossError(
        absl::StrCat(path, " has format version ", header.version, "; this reads 1 to ", kVersion));
  }
  if (header.version == 1) header.total_rows = header.rows;
  if (header.total_rows > (uint64_t{1} << 40) || header.first_row > header.total_rows ||
      header.rows > header.total_rows - header.first_row) {
    return absl::DataLossError(absl::StrCat(path, " claims rows [", header.first_row, ", ",
                                            header.first_row + header.rows, ") of a dataset of ",
                                            header.total_rows, " rows"));
  }
  auto dtype = DtypeOf(header.dtype);
  if (!dtype.ok()) return absl::DataLossError(absl::StrCat(path, ": ", dtype.status().message()));
  if (header.rows > (uint64_t{1} << 40) || header.dim > (uint64_t{1} << 24)) {
    return absl::DataLossError(
        absl::StrCat(path, " has an implausible shape ", header.rows, " x ", header.dim));
  }
  const size_t offset = FeaturesOffset(static_cast<int64_t>(header.rows));
  const size_t expected = offset + header.rows * header.dim * at::elementSize(*dtype);
  if (length != expected) {
    return absl::DataLossError(absl::StrCat(path, " is ",
                                            length < expected ? "truncated" : "too long", ": ",
                                            length, " bytes, the header implies ", expected));
  }
  shard->rows_ = static_cast<int64_t>(header.rows);
  shard->dim_ = static_cast<int64_t>(header.dim);
  shard->num_classes_ = header.num_classes;
  shard->dtype_ = *dtype;
  shard->placement_ = ShardPlacement{static_cast<int64_t>(header.first_row),
                                     static_cast<int64_t>(header.total_rows)};
  shard->features_offset_ = offset;
  // Labels are checked on every open (a pass over 4 bytes a row): an out-of-range label would
  // index past the logits.
  const at::Tensor labels = shard->labels();
  if (labels.numel() > 0 &&
      (labels.min().item<int32_t>() < 0 || labels.max().item<int32_t>() >= shard->num_classes_)) {
    return absl::DataLossError(
        absl::StrCat(path, " has a label outside [0, ", shard->num_classes_, ")"));
  }
  if (verify_checksum) {
    unsigned char header_bytes[kHeaderBytes];
    std::memcpy(header_bytes, bytes, kHeaderBytes);
    std::memset(header_bytes + kChecksumOffset, 0, 8);
    StreamChecksum checksum;
    checksum.Update(header_bytes, kHeaderBytes);
    checksum.Update(bytes + kHeaderBytes, length - kHeaderBytes);
    if (checksum.Final() != stored_checksum) {
      return absl::DataLossError(absl::StrCat(path, " fails its checksum: the file is corrupt"));
    }
    if (const int64_t bad = FirstNonFiniteRow(shard->features()); bad >= 0) {
      return absl::DataLossError(absl::StrCat(path, ": row ", shard->placement_.first_row + bad,
                                              " holds a value that is not finite"));
    }
  }
  return shard;
}

FeatureShard::~FeatureShard() = default;

at::Tensor FeatureShard::features() const {
  auto* data = const_cast<unsigned char*>(file_->data()) + features_offset_;
  return at::from_blob(data, {rows_, dim_}, at::TensorOptions().dtype(dtype_));
}

at::Tensor FeatureShard::labels() const {
  auto* data = const_cast<unsigned char*>(file_->data()) + kHeaderBytes;
  return at::from_blob(data, {rows_}, at::TensorOptions().dtype(at::kInt));
}

namespace {

struct NpyArray {
  std::string descr;
  std::vector<int64_t> shape;
  const unsigned char* data = nullptr;  // In `file`.
  size_t data_bytes = 0;
  std::shared_ptr<MappedFile> file;
};

// Maps and parses the NumPy .npy format (versions 1 to 3): magic, header length, a Python dict
// literal with descr, fortran_order and shape, then the raw data.
absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  DPFLEET_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  const unsigned char* bytes = file->data();
  const size_t size = file->size();
  if (size < 10 || std::memcmp(bytes, "\x93NUMPY", 6) != 0) {
    return absl::DataLossError(absl::StrCat(path, " is not a .npy file"));
  }
  const int major = bytes[6];
  size_t header_length, header_start;
  if (major == 1) {
    header_length = bytes[8] | (bytes[9] << 8);
    header_start = 10;
  } else {
    if (size < 12) return absl::DataLossError(absl::StrCat(path, " is truncated"));
    header_length = 0;
    for (int i = 0; i < 4; ++i) header_length |= static_cast<size_t>(bytes[8 + i]) << (8 * i);
    header_start = 12;
  }
  if (size < header_start + header_length)
    return absl::DataLossError(absl::StrCat(path, " is truncated"));
  const std::string header(reinterpret_cast<const char*>(bytes) + header_start, header_length);
  NpyArray array;
  auto value_of = [&](const std::string& key) -> std::string {
    const size_t at = header.find("'" + key + "'");
    if (at == std::string::npos) return "";
    const size_t colon = header.find(':', at);
    return colon == std::string::npos ? "" : header.substr(colon + 1);
  };
  std::string descr = value_of("descr");
  const size_t q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  if (q1 == std::string::npos || q2 == std::string::npos)
    return absl::DataLossError(absl::StrCat(path, ": no descr"));
  array.descr = descr.substr(q1 + 1, q2 - q1 - 1);
  if (absl::StripLeadingAsciiWhitespace(value_of("fortran_order")).rfind("True", 0) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is in Fortran order; write it C-ordered"));
  }
  std::string shape = value_of("shape");
  const size_t open = shape.find('('), close = shape.find(')');
  if (open == std::string::npos || close == std::string::npos)
    return absl::DataLossError(absl::StrCat(path, ": no shape"));
  for (absl::string_view part :
       absl::StrSplit(shape.substr(open + 1, close - open - 1), ',', absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &d))
      return absl::DataLossError(absl::StrCat(path, ": bad shape"));
    array.shape.push_back(d);
  }
  array.data = bytes + header_start + header_length;
  array.data_bytes = size - header_start - header_length;
  array.file = std::move(file);
  return array;
}

absl::StatusOr<at::ScalarType> NpyDtype(const std::string& descr, const std::string& path) {
  if (descr == "<f4") return at::kFloat;
  if (descr == "<f2") return at::kHalf;
  if (descr == "<i8") return at::kLong;
  if (descr == "<i4") return at::kInt;
  if (descr == "|u1") return at::kByte;
  return absl::InvalidArgumentError(absl::StrCat(
      path, " has dtype ", descr, "; use float32/float16 features and integer labels"));
}

}  // namespace

std::string ShardFileName(const std::string& split, int64_t part, int64_t parts) {
  char suffix[48];
  std::snprintf(suffix, sizeof(suffix), "-%05lld-of-%05lld.dpf", static_cast<long long>(part),
                static_cast<long long>(parts));
  return split + suffix;
}

absl::StatusOr<NpyFeatures> ReadNpyFeatures(const std::string& features_path,
                                            const std::string& labels_path) {
  DPFLEET_ASSIGN_OR_RETURN(NpyArray features, ReadNpy(features_path));
  DPFLEET_ASSIGN_OR_RETURN(const NpyArray labels, ReadNpy(labels_path));
  DPFLEET_ASSIGN_OR_RETURN(const at::ScalarType feature_dtype,
                           NpyDtype(features.descr, features_path));
  DPFLEET_ASSIGN_OR_RETURN(const at::ScalarType label_dtype, NpyDtype(labels.descr, labels_path));
  if (!at::isFloatingType(feature_dtype) || features.shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(features_path, " must hold a 2-D float32 or float16 array"));
  }
  if (at::isFloatingType(label_dtype) || labels.shape.size() != 1 ||
      labels.shape[0] != features.shape[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, " must hold one integer label per row of ", features_path));
  }
  const size_t feature_bytes =
      features.shape[0] * features.shape[1] * at::elementSize(feature_dtype);
  if (features.data_bytes != feature_bytes) {
    return absl::DataLossError(absl::StrCat(features_path, " holds ", features.data_bytes,
                                            " bytes of data, its header implies ", feature_bytes));
  }
  if (labels.data_bytes != labels.shape[0] * at::elementSize(label_dtype)) {
    return absl::DataLossError(absl::StrCat(labels_path, " is truncated or too long"));
  }
  NpyFeatures result;
  result.features = at::from_blob(const_cast<unsigned char*>(features.data),
                                  {features.shape[0], features.shape[1]}, feature_dtype);
  // Labels are small: copied, so that only the features' mapping must stay alive.
  result.labels =
      at::from_blob(const_cast<unsigned char*>(labels.data), {labels.shape[0]}, label_dtype)
          .to(at::kLong, /*non_blocking=*/false, /*copy=*/true);
  if (const int64_t bad = FirstNonFiniteRow(result.features); bad >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(features_path, ": row ", bad, " holds an inf or a NaN"));
  }
  result.mapping = std::move(features.file);
  return result;
}

}  // namespace dpfleet::features

#include "worker/idx_dataset.h"

#include <zlib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace dpfleet::worker {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr int64_t kMaxImageSide = 1 << 16;

// Returns the path of `base` or `base.gz`, whichever exists.
absl::StatusOr<std::string> FindFile(const std::string& folder, const std::string& base) {
  for (const std::string& candidate : {folder + "/" + base, folder + "/" + base + ".gz"}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("no ", base, "[.gz] in ", folder));
}

// Reads a whole (optionally gzipped) file; zlib reads plain files transparently.
absl::StatusOr<std::vector<unsigned char>> ReadAll(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<unsigned char> data;
  unsigned char buffer[1 << 16];
  int got;
  while ((got = gzread(file, buffer, sizeof(buffer))) > 0)
    data.insert(data.end(), buffer, buffer + got);
  int error = Z_OK;
  const char* message = gzerror(file, &error);
  const std::string error_text = message != nullptr ? message : "";
  gzclose(file);
  if (got < 0 || (error != Z_OK && error != Z_STREAM_END)) {
    return absl::DataLossError(absl::StrCat(path, " is corrupt: ", error_text));
  }
  return data;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

absl::StatusOr<at::Tensor> ReadImages(const std::string& path) {
  DPFLEET_ASSIGN_OR_RETURN(const std::vector<unsigned char> data, ReadAll(path));
  if (data.size() < 16 || BigEndian32(data.data()) != kImagesMagic) {
    return absl::DataLossError(absl::StrCat(path, " is not an IDX image file"));
  }
  const int64_t count = BigEndian32(&data[4]);
  const int64_t rows = BigEndian32(&data[8]);
  const int64_t cols = BigEndian32(&data[12]);
  if (rows < 1 || cols < 1 || rows > kMaxImageSide || cols > kMaxImageSide) {
    return absl::DataLossError(absl::StrCat(path, " has images of ", rows, "x", cols,
                                            "; each side must be in [1, ", kMaxImageSide, "]"));
  }
  // Compared by division: the header's product may not fit in 64 bits.
  const int64_t payload = static_cast<int64_t>(data.size()) - 16;
  if (payload % (rows * cols) != 0 || payload / (rows * cols) != count) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: header says ", count,
                                            " images of ", rows, "x", cols, ", file has ",
                                            data.size(), " bytes"));
  }
  const at::Tensor bytes = at::from_blob(const_cast<unsigned char*>(data.data()) + 16,
                                         {count, 1, rows, cols}, at::kByte);
  return bytes.to(at::kFloat).div_(127.5).sub_(1.0);
}

absl::StatusOr<at::Tensor> ReadLabels(const std::string& path) {
  DPFLEET_ASSIGN_OR_RETURN(const std::vector<unsigned char> data, ReadAll(path));
  if (data.size() < 8 || BigEndian32(data.data()) != kLabelsMagic) {
    return absl::DataLossError(absl::StrCat(path, " is not an IDX label file"));
  }
  const int64_t count = BigEndian32(&data[4]);
  if (static_cast<int64_t>(data.size()) != 8 + count) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: header says ", count,
                                            " labels, file has ", data.size() - 8));
  }
  for (int64_t i = 0; i < count; ++i) {
    if (data[8 + i] >= kIdxNumClasses) {
      return absl::DataLossError(
          absl::StrCat(path, ": label at index ", i, " is outside [0, ", kIdxNumClasses, ")"));
    }
  }
  const at::Tensor bytes =
      at::from_blob(const_cast<unsigned char*>(data.data()) + 8, {count}, at::kByte);
  return bytes.to(at::kLong);
}

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> ReadSplit(const std::string& folder,
                                                            const std::string& prefix) {
  DPFLEET_ASSIGN_OR_RETURN(const std::string images_path,
                           FindFile(folder, prefix + "-images-idx3-ubyte"));
  DPFLEET_ASSIGN_OR_RETURN(const std::string labels_path,
                           FindFile(folder, prefix + "-labels-idx1-ubyte"));
  DPFLEET_ASSIGN_OR_RETURN(at::Tensor images, ReadImages(images_path));
  DPFLEET_ASSIGN_OR_RETURN(at::Tensor labels, ReadLabels(labels_path));
  if (images.size(0) != labels.size(0)) {
    return absl::DataLossError(absl::StrCat(images_path, " has ", images.size(0), " images but ",
                                            labels_path, " has ", labels.size(0), " labels"));
  }
  return std::make_pair(images, labels);
}

}  // namespace

bool LooksLikeIdxDataset(const std::string& folder) {
  for (const char* base : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    if (!FindFile(folder, base).ok()) return false;
  }
  return true;
}

absl::StatusOr<std::shared_ptr<const Dataset>> LoadIdxDataset(const std::string& folder) {
  auto dataset = std::make_shared<Dataset>();
  dataset->name = std::filesystem::path(folder).filename().string();
  DPFLEET_ASSIGN_OR_RETURN(auto train, ReadSplit(folder, "train"));
  DPFLEET_ASSIGN_OR_RETURN(auto test, ReadSplit(folder, "t10k"));
  dataset->SetTrainingSplit(train.first, train.second);
  dataset->test_inputs = test.first;
  dataset->test_labels = test.second;
  dataset->num_classes = kIdxNumClasses;
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

}  // namespace dpfleet::worker

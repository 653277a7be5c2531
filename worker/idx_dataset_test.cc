#include "worker/idx_dataset.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

std::string MakeFolder(const std::string& name) {
  const std::string folder =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  return folder;
}

void WriteBigEndian(std::ofstream& out, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24),
                              static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  out.write(reinterpret_cast<const char*>(b), 4);
}

void WriteSplit(const std::string& folder, const std::string& prefix, uint32_t count,
                uint32_t written_images, unsigned char label) {
  std::ofstream images(folder + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
  WriteBigEndian(images, 0x803);
  WriteBigEndian(images, count);
  WriteBigEndian(images, 2);
  WriteBigEndian(images, 3);
  for (uint32_t i = 0; i < written_images * 6; ++i) images.put(static_cast<char>(i % 256));
  std::ofstream labels(folder + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
  WriteBigEndian(labels, 0x801);
  WriteBigEndian(labels, count);
  for (uint32_t i = 0; i < count; ++i) labels.put(static_cast<char>(label));
}

TEST(LoadIdxDataset, ReadsImagesAndLabels) {
  const std::string folder = MakeFolder("tiny");
  WriteSplit(folder, "train", 4, 4, 3);
  WriteSplit(folder, "t10k", 2, 2, 9);
  ASSERT_TRUE(LooksLikeIdxDataset(folder));
  const auto dataset = *LoadIdxDataset(folder);
  EXPECT_EQ(dataset->name, "tiny");
  EXPECT_EQ(dataset->train_blocks[0].inputs.sizes(), (at::IntArrayRef{4, 1, 2, 3}));
  EXPECT_EQ(dataset->ExampleShape(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(dataset->test_labels[1].item<int64_t>(), 9);
  EXPECT_FLOAT_EQ(dataset->train_blocks[0].inputs[0][0][0][0].item<float>(), -1.0f);
}

TEST(LoadIdxDataset, RefusesTruncatedFile) {
  const std::string folder = MakeFolder("truncated");
  WriteSplit(folder, "train", 4, 3, 3);
  WriteSplit(folder, "t10k", 2, 2, 1);
  const auto dataset = LoadIdxDataset(folder);
  ASSERT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(dataset.status().message().find("truncated"), std::string::npos);
}

TEST(LoadIdxDataset, RefusesAHeaderWhoseSizeOverflows) {
  // 2^32-1 images of 65536 x 65536 pixels: the product does not fit in 64 bits, and a reader
  // that multiplied would wrap around (found by fuzz/idx_fuzz). Images wider than 65536 are
  // refused outright.
  for (const uint32_t side : {uint32_t{1} << 16, uint32_t{1} << 17, uint32_t{0}}) {
    const std::string folder = MakeFolder("overflow");
    {
      std::ofstream images(folder + "/train-images-idx3-ubyte", std::ios::binary);
      WriteBigEndian(images, 0x803);
      WriteBigEndian(images, 0xffffffff);
      WriteBigEndian(images, side);
      WriteBigEndian(images, side);
      std::ofstream labels(folder + "/train-labels-idx1-ubyte", std::ios::binary);
      WriteBigEndian(labels, 0x801);
      WriteBigEndian(labels, 0);
    }
    WriteSplit(folder, "t10k", 2, 2, 1);
    const auto dataset = LoadIdxDataset(folder);
    ASSERT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss) << side;
    EXPECT_NE(dataset.status().message().find(side == (1 << 16) ? "truncated" : "each side"),
              std::string::npos)
        << dataset.status();
  }
}

TEST(LoadIdxDataset, RefusesOutOfRangeLabel) {
  const std::string folder = MakeFolder("badlabel");
  WriteSplit(folder, "train", 4, 4, 12);
  WriteSplit(folder, "t10k", 2, 2, 1);
  EXPECT_EQ(LoadIdxDataset(folder).status().code(), absl::StatusCode::kDataLoss);
}

TEST(LoadIdxDataset, NamesMissingFile) {
  const std::string folder = MakeFolder("empty");
  const auto dataset = LoadIdxDataset(folder);
  ASSERT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(dataset.status().message().find("train-images-idx3-ubyte"), std::string::npos);
  EXPECT_FALSE(LooksLikeIdxDataset(folder));
}

}  // namespace
}  // namespace dpfleet::worker

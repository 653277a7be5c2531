#include "features/feature_shard.h"

#include <cstdio>
#include <fstream>

#include "features/npy_testing.h"
#include "gtest/gtest.h"

namespace dpfleet::features {
namespace {

std::string TempPath(const std::string& name) {
  return std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
}

TEST(FeatureShard, RoundTripsInEveryStorageType) {
  const at::Tensor features = at::randn({37, 19});
  const at::Tensor labels = at::randint(0, 5, {37}, at::kLong);
  for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const std::string path = TempPath("shard.dpf");
    ASSERT_TRUE(WriteFeatureShard(path, features, labels, 5, dtype).ok());
    auto shard = FeatureShard::Open(path);
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ((*shard)->rows(), 37);
    EXPECT_EQ((*shard)->dim(), 19);
    EXPECT_EQ((*shard)->num_classes(), 5);
    EXPECT_EQ((*shard)->dtype(), dtype);
    EXPECT_TRUE(at::equal((*shard)->labels().to(at::kLong), labels));
    EXPECT_TRUE(at::equal((*shard)->features(), features.to(dtype))) << at::toString(dtype);
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*shard)->features().data_ptr()) % 64, 0u);
  }
}

TEST(FeatureShard, RecordsWhereAPartLiesInItsDataset) {
  const std::string path = TempPath("part.dpf");
  ASSERT_TRUE(WriteFeatureShard(path, at::randn({6, 3}), at::zeros({6}), 2, at::kHalf,
                                ShardPlacement{10, 16})
                  .ok());
  auto shard = FeatureShard::Open(path);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ((*shard)->placement().first_row, 10);
  EXPECT_EQ((*shard)->placement().total_rows, 16);

  auto whole = WriteFeatureShard(path, at::randn({6, 3}), at::zeros({6}), 2, at::kHalf);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ((*FeatureShard::Open(path))->placement().total_rows, 6);
  EXPECT_EQ(WriteFeatureShard(path, at::randn({6, 3}), at::zeros({6}), 2, at::kHalf,
                              ShardPlacement{11, 16})
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FeatureShardWriter, StreamsBlocksAndPublishesOnlyWhenComplete) {
  const std::string path = TempPath("streamed.dpf");
  std::remove(path.c_str());
  const at::Tensor features = at::randn({10, 4});
  const at::Tensor labels = at::randint(0, 3, {10}, at::kLong);
  {
    auto writer = FeatureShardWriter::Create(path, labels, 4, 3, at::kFloat);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(features.slice(0, 0, 7)).ok());
    EXPECT_EQ((*writer)->Finish().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ((*writer)->Append(at::randn({4, 4})).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ((*writer)->Append(at::randn({3, 5})).code(), absl::StatusCode::kInvalidArgument);
  }
  // Abandoned: neither the shard nor its temporary file is left behind.
  EXPECT_EQ(FeatureShard::Open(path).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());

  auto writer = FeatureShardWriter::Create(path, labels, 4, 3, at::kFloat);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(features.slice(0, 0, 7)).ok());
  ASSERT_TRUE((*writer)->Append(features.slice(0, 7, 10)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  auto shard = FeatureShard::Open(path);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_TRUE(at::equal((*shard)->features(), features));
}

TEST(FeatureShard, RefusesTruncatedCorruptOrForeignFiles) {
  const std::string path = TempPath("bad.dpf");
  ASSERT_TRUE(
      WriteFeatureShard(path, at::randn({10, 8}), at::zeros({10}, at::kLong), 2, at::kFloat).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& contents) {
    std::ofstream(path, std::ios::binary) << contents;
  };

  write(bytes.substr(0, bytes.size() - 4));
  auto truncated = FeatureShard::Open(path);
  ASSERT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos);

  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 0x10;  // One bit of one feature.
  write(flipped);
  auto corrupt = FeatureShard::Open(path);
  ASSERT_EQ(corrupt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(corrupt.status().message().find("checksum"), std::string::npos);
  EXPECT_TRUE(FeatureShard::Open(path, /*verify_checksum=*/false).ok());

  // Labels are checked even without the checksum (found by fuzz/feature_shard_fuzz): the first
  // label (an int32 after the 64-byte header) becomes 7 of 2 classes.
  std::string relabelled = bytes;
  relabelled[64] = 7;
  write(relabelled);
  for (const bool verify : {true, false}) {
    const auto outside = FeatureShard::Open(path, verify);
    ASSERT_EQ(outside.status().code(), absl::StatusCode::kDataLoss) << verify;
    EXPECT_NE(outside.status().message().find("label outside [0, 2)"), std::string::npos)
        << outside.status();
  }

  write("PNG\x0d\x0a" + std::string(100, 'x'));
  EXPECT_EQ(FeatureShard::Open(path).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(FeatureShard::Open(path + ".missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(FeatureShard, WriterRefusesBadInput) {
  EXPECT_EQ(
      WriteFeatureShard(TempPath("x.dpf"), at::randn({3, 2}), at::zeros({4}), 2, at::kFloat).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteFeatureShard(TempPath("x.dpf"), at::randn({3, 2}), at::full({3}, 7), 2, at::kFloat)
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteFeatureShard(TempPath("x.dpf"), at::randn({3, 2}), at::zeros({3}), 2, at::kDouble)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FeatureShard, ARowThatIsNotFiniteAsStoredIsRefusedByItsRow) {
  const at::Tensor labels = at::zeros({10}, at::kLong);
  at::Tensor features = at::randn({10, 3});
  features[6][1] = std::nan("");
  absl::Status refused = WriteFeatureShard(TempPath("nan.dpf"), features, labels, 2, at::kFloat);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("row 6 "), std::string::npos) << refused;
  // Finite in float32, beyond float16's 65504: inf once stored.
  features = at::randn({10, 3});
  features[3][0] = 1e5;
  EXPECT_TRUE(WriteFeatureShard(TempPath("big.dpf"), features, labels, 2, at::kFloat).ok());
  refused = WriteFeatureShard(TempPath("big16.dpf"), features, labels, 2, at::kHalf);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("row 3 "), std::string::npos) << refused;
  EXPECT_FALSE(std::ifstream(TempPath("big16.dpf")).good()) << "a refused shard was published";
  EXPECT_EQ(FirstNonFiniteRow(at::randn({9000, 2})), -1);
  at::Tensor late = at::randn({9000, 2});
  late[8500][1] = -INFINITY;
  EXPECT_EQ(FirstNonFiniteRow(late), 8500);
}

TEST(ReadNpyFeatures, RefusesARowHoldingAnInfOrANaN) {
  at::Tensor features = at::randn({6, 4});
  features[4][2] = INFINITY;
  const at::Tensor labels = at::arange(6, at::kLong);
  WriteNpy(TempPath("inf.npy"), "<f4", "(6, 4)", features.data_ptr(), 6 * 4 * 4);
  WriteNpy(TempPath("l6.npy"), "<i8", "(6,)", labels.data_ptr(), 6 * 8);
  const auto read = ReadNpyFeatures(TempPath("inf.npy"), TempPath("l6.npy"));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(read.status().message().find("row 4"), std::string::npos) << read.status();
}

TEST(ReadNpyFeatures, ReadsFeaturesAndLabelsWrittenElsewhere) {
  const at::Tensor features = at::randn({6, 4});
  const at::Tensor labels = at::arange(6, at::kLong);
  WriteNpy(TempPath("f.npy"), "<f4", "(6, 4)", features.data_ptr(), 6 * 4 * 4);
  WriteNpy(TempPath("l.npy"), "<i8", "(6,)", labels.data_ptr(), 6 * 8);
  auto read = ReadNpyFeatures(TempPath("f.npy"), TempPath("l.npy"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(at::equal(read->features, features));
  EXPECT_TRUE(at::equal(read->labels, labels));

  WriteNpy(TempPath("short.npy"), "<f4", "(6, 4)", features.data_ptr(), 6 * 4 * 4 - 8);
  EXPECT_EQ(ReadNpyFeatures(TempPath("short.npy"), TempPath("l.npy")).status().code(),
            absl::StatusCode::kDataLoss);
  WriteNpy(TempPath("l5.npy"), "<i8", "(5,)", labels.data_ptr(), 5 * 8);
  EXPECT_EQ(ReadNpyFeatures(TempPath("f.npy"), TempPath("l5.npy")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::features

// dpfleet-extract as a user runs it: features computed elsewhere (.npy) into parts, one part per
// machine, and clear refusals of bad command lines.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "features/feature_shard.h"
#include "features/npy_testing.h"
#include "gtest/gtest.h"

namespace dpfleet::features {
namespace {
namespace fs = std::filesystem;

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

// Runs dpfleet-extract with `flags`; returns its exit code and its output in *output.
int Extract(const std::string& flags, std::string* output) {
  const std::string command = absl::StrCat(std::getenv("TEST_SRCDIR"),
                                           "/dpfleet/features/dpfleet-extract ", flags, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output->append(buffer, got);
  return WEXITSTATUS(pclose(pipe));
}

class ExtractMain : public ::testing::Test {
 protected:
  void SetUp() override {
    features_ = at::randn({10, 4});
    labels_ = at::arange(10, at::kLong).remainder(3);
    WriteNpy(TempDir() + "/f.npy", "<f4", "(10, 4)", features_.data_ptr(), 10 * 4 * 4);
    WriteNpy(TempDir() + "/l.npy", "<i8", "(10,)", labels_.data_ptr(), 10 * 8);
    npy_ = absl::StrCat(" --train_npy ", TempDir(), "/f.npy,", TempDir(), "/l.npy --test_npy ",
                        TempDir(), "/f.npy,", TempDir(), "/l.npy --num_classes 3");
  }

  at::Tensor features_, labels_;
  std::string npy_;
};

TEST_F(ExtractMain, ConvertsNpyFeaturesIntoParts) {
  const std::string out = TempDir() + "/all";
  std::string output;
  ASSERT_EQ(Extract(absl::StrCat(npy_, " --parts 3 --out ", out), &output), 0) << output;
  int64_t next = 0;
  for (int part = 0; part < 3; ++part) {
    auto shard = FeatureShard::Open(out + "/" + ShardFileName("train", part, 3));
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ((*shard)->placement().first_row, next);
    EXPECT_EQ((*shard)->placement().total_rows, 10);
    EXPECT_EQ((*shard)->dtype(), at::kHalf);
    const int64_t rows = (*shard)->rows();
    EXPECT_TRUE(at::allclose((*shard)->features().to(at::kFloat),
                             features_.slice(0, next, next + rows), 1e-3, 1e-3));
    EXPECT_TRUE(at::equal((*shard)->labels().to(at::kLong), labels_.slice(0, next, next + rows)));
    next += rows;
  }
  EXPECT_EQ(next, 10);
  EXPECT_TRUE(FeatureShard::Open(out + "/test.dpf").ok());
}

TEST_F(ExtractMain, OneMachineWritesOnlyItsPart) {
  const std::string out = TempDir() + "/one";
  std::string output;
  ASSERT_EQ(Extract(absl::StrCat(npy_, " --parts 3 --part 1 --dtype float32 --out ", out), &output),
            0)
      << output;
  EXPECT_FALSE(fs::exists(out + "/" + ShardFileName("train", 0, 3)));
  auto shard = FeatureShard::Open(out + "/" + ShardFileName("train", 1, 3));
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ((*shard)->placement().first_row, 3);
  EXPECT_EQ((*shard)->dtype(), at::kFloat);
}

TEST_F(ExtractMain, RefusesBadCommandLinesNamingTheProblem) {
  const std::string out = " --out " + TempDir() + "/bad";
  for (const auto& [flags, problem] : std::vector<std::pair<std::string, std::string>>{
           {npy_, "--out is required"},
           {npy_ + out + " --parts 3 --part 3", "--part must lie in [0, 3)"},
           {npy_ + out + " --dtype int8", "--dtype must be"},
           {out + " --train /nonexistent", "--train needs --backbone"},
           {out + " --train /nonexistent --backbone /nonexistent.pt", "/nonexistent"},
           {out, "give exactly one of --train"},
           {out + " --num_classes 3 --train_npy " + TempDir() + "/f.npy",
            "FEATURES.npy,LABELS.npy"},
           {out + " --train_npy " + TempDir() + "/f.npy,x", "--num_classes"}}) {
    std::string output;
    EXPECT_EQ(Extract(flags, &output), 1) << flags;
    EXPECT_NE(output.find(problem), std::string::npos) << flags << "\n" << output;
  }
}

}  // namespace
}  // namespace dpfleet::features

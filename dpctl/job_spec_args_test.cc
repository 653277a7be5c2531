#include "dpctl/job_spec_args.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dpfleet::dpctl {
namespace {

absl::StatusOr<v1::JobSpec> SpecOf(std::vector<const char*> argv) {
  argv.insert(argv.begin(), "submit");
  absl::StatusOr<Args> args = Args::Parse(static_cast<int>(argv.size()), argv.data(), 1);
  if (!args.ok()) return args.status();
  absl::StatusOr<v1::JobSpec> spec = JobSpecFromArgs(*args);
  if (spec.ok()) EXPECT_TRUE(args->CheckAllUsed().ok()) << args->CheckAllUsed();
  return spec;
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(JobSpecFromArgs, FlagsAloneStartFromDpctlsDefaults) {
  const v1::JobSpec spec =
      *SpecOf({"--dataset", "fmnist", "--model", "mlp", "--batch-size", "512", "--epochs", "2",
               "--clip-norm", "1", "--target-epsilon", "2", "--delta", "1e-5"});
  EXPECT_EQ(spec.dataset(), "fmnist");
  EXPECT_EQ(spec.optimizer().type(), v1::DP_SGD);
  EXPECT_EQ(spec.optimizer().learning_rate(), 0.1);
  EXPECT_EQ(spec.num_workers(), 1);
  EXPECT_EQ(spec.expected_batch_size(), 512);
  EXPECT_EQ(spec.epochs(), 2);
  EXPECT_EQ(spec.target_epsilon(), 2);
}

TEST(JobSpecFromArgs, FlagsOverrideTheSpecFile) {
  const std::string path = WriteFile("recipe.textproto", R"(
    # A recipe.
    dataset: "fashion-mnist"
    model: "scatter_linear"
    optimizer { type: DP_SGD learning_rate: 16 momentum: 0.9 }
    expected_batch_size: 8192
    epochs: 40
    clip_norm: 0.1
    target_epsilon: 3
    delta: 1e-5
    num_workers: 2
  )");
  const v1::JobSpec file = *SpecOf({"--spec", path.c_str()});
  EXPECT_EQ(file.model(), "scatter_linear");
  EXPECT_EQ(file.optimizer().learning_rate(), 16);
  EXPECT_EQ(file.optimizer().momentum(), 0.9);
  EXPECT_EQ(file.num_workers(), 2);
  // A flag of a oneof replaces the file's member; others keep the file's values.
  const v1::JobSpec overridden =
      *SpecOf({"--spec", path.c_str(), "--steps", "5", "--sampling-rate", "0.5", "--learning-rate",
               "4", "--workers", "1", "--name", "quick"});
  EXPECT_EQ(overridden.duration_case(), v1::JobSpec::kSteps);
  EXPECT_EQ(overridden.steps(), 5);
  EXPECT_EQ(overridden.batching_case(), v1::JobSpec::kSamplingRate);
  EXPECT_EQ(overridden.optimizer().learning_rate(), 4);
  EXPECT_EQ(overridden.optimizer().momentum(), 0.9);
  EXPECT_EQ(overridden.num_workers(), 1);
  EXPECT_EQ(overridden.target_epsilon(), 3);
  EXPECT_EQ(overridden.display_name(), "quick");
}

TEST(JobSpecFromArgs, AugmentationsDefaultToDeEtAlsCropsAndFlips) {
  EXPECT_FALSE(SpecOf({"--model", "cnn_tb"})->has_augmentation());
  const v1::Augmentation defaults = SpecOf({"--augmentations", "8"})->augmentation();
  EXPECT_EQ(defaults.views(), 8);
  EXPECT_EQ(defaults.crop_padding(), 4);
  EXPECT_TRUE(defaults.horizontal_flip());
  const v1::Augmentation chosen =
      SpecOf({"--augmentations", "4", "--crop-padding", "2", "--no-flip"})->augmentation();
  EXPECT_EQ(chosen.views(), 4);
  EXPECT_EQ(chosen.crop_padding(), 2);
  EXPECT_FALSE(chosen.horizontal_flip());
  // A spec file's transforms are kept when the flag only sets the number of views.
  const std::string path =
      WriteFile("flips.textproto", "augmentation { views: 2 horizontal_flip: true }");
  const v1::Augmentation file =
      SpecOf({"--spec", path.c_str(), "--augmentations", "16"})->augmentation();
  EXPECT_EQ(file.views(), 16);
  EXPECT_EQ(file.crop_padding(), 0);
  EXPECT_TRUE(file.horizontal_flip());
}

TEST(JobSpecFromArgs, NamesWhatIsWrong) {
  const std::string bad = WriteFile("bad.textproto", "model: \"mlp\"\nepochs: many\n");
  const absl::Status parse = SpecOf({"--spec", bad.c_str()}).status();
  EXPECT_EQ(parse.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parse.message().find("bad.textproto:2:"), std::string::npos) << parse;
  const absl::Status unknown =
      SpecOf({"--spec", WriteFile("typo.textproto", "modle: \"mlp\"").c_str()}).status();
  EXPECT_NE(unknown.message().find("modle"), std::string::npos) << unknown;
  EXPECT_EQ(SpecOf({"--spec", "/no/such/recipe"}).status().code(), absl::StatusCode::kNotFound);
  const absl::Status both = SpecOf({"--batch-size", "512", "--sampling-rate", "0.1"}).status();
  EXPECT_NE(both.message().find("choose one of --batch-size, --sampling-rate"), std::string::npos)
      << both;
  EXPECT_EQ(SpecOf({"--optimizer", "rmsprop"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SpecOf({"--epochs", "x"}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::dpctl

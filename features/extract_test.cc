#include "features/extract.h"

#include <torch/cuda.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>

#include "features/feature_shard.h"
#include "features/jpeg.h"
#include "gtest/gtest.h"

namespace dpfleet::features {
namespace {
namespace fs = std::filesystem;

std::string TempPath(const std::string& name) {
  return (fs::path(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") / name).string();
}

// A small convolutional trunk, compiled from TorchScript source and saved as a user would save
// theirs: 8 features per image.
std::string SaveBackbone(const std::string& name, const std::string& forward) {
  torch::jit::Module module("Backbone");
  torch::manual_seed(3);
  module.register_parameter("weight", torch::randn({8, 3, 3, 3}), /*is_buffer=*/false);
  module.define(forward);
  const std::string path = TempPath(name);
  module.save(path);
  return path;
}

const char kPooledConvolution[] = R"(
def forward(self, x):
    y = torch.relu(torch.conv2d(x, self.weight, None, [2, 2]))
    return torch.mean(y, [2, 3], True)
)";

// Three classes of 48x64 pictures, each tinted by its class.
std::string MakeImages(const std::string& name, int per_class) {
  const fs::path root = TempPath(name);
  fs::remove_all(root);
  torch::manual_seed(5);
  for (int label = 0; label < 3; ++label) {
    const fs::path folder = root / ("class" + std::to_string(label));
    fs::create_directories(folder);
    for (int i = 0; i < per_class; ++i) {
      at::Tensor picture = at::randint(0, 120, {48, 64, 3}, at::kByte);
      picture.select(2, label).add_(120);
      EXPECT_TRUE(EncodeJpeg((folder / (std::to_string(i) + ".jpg")).string(), picture).ok());
    }
  }
  return root.string();
}

ExtractionOptions SmallImages() {
  ExtractionOptions options;
  options.transform.resize = 40;
  options.transform.crop = 32;
  options.batch_size = 4;
  return options;
}

TEST(ExtractFeatureShard, WritesPartsThatMatchTheBackboneOnEachImage) {
  auto folder = ListImageFolder(MakeImages("images", 5));
  ASSERT_TRUE(folder.ok());
  auto backbone = Backbone::Load(SaveBackbone("backbone.pt", kPooledConvolution), "cpu");
  ASSERT_TRUE(backbone.ok()) << backbone.status();
  const ExtractionOptions options = SmallImages();

  for (int64_t part = 0; part < 2; ++part) {
    const auto [begin, end] = PartRange(15, part, 2);
    const std::string path = TempPath(ShardFileName("train", part, 2));
    auto result = ExtractFeatureShard(*folder, begin, end, **backbone, options, path);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->dim, 8);
    auto shard = FeatureShard::Open(path);
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ((*shard)->placement().first_row, begin);
    EXPECT_EQ((*shard)->placement().total_rows, 15);
    EXPECT_EQ((*shard)->num_classes(), 3);
    EXPECT_EQ((*shard)->dtype(), at::kHalf);
    for (int64_t i = begin; i < end; ++i) {
      EXPECT_EQ((*shard)->labels()[i - begin].item<int>(), folder->images[i].label);
      const at::Tensor image =
          PrepareImage(*DecodeJpeg(folder->images[i].path, 40), options.transform).unsqueeze(0);
      const at::Tensor expected = (*(*backbone)->Embed(image))[0];
      EXPECT_TRUE(
          at::allclose((*shard)->features()[i - begin].to(at::kFloat), expected, 1e-2, 1e-3))
          << "image " << i;
    }
  }
}

TEST(ExtractFeatureShard, RefusesAnUndecodableImageAndLeavesNoShard) {
  const std::string root = MakeImages("broken", 2);
  const std::string bad = root + "/class1/bad.jpg";
  std::ofstream(bad) << "this is not a JPEG";
  auto folder = ListImageFolder(root);
  ASSERT_TRUE(folder.ok());
  auto backbone = Backbone::Load(SaveBackbone("backbone.pt", kPooledConvolution), "cpu");
  ASSERT_TRUE(backbone.ok());
  const std::string path = TempPath("broken.dpf");
  auto result = ExtractFeatureShard(*folder, 0, 7, **backbone, SmallImages(), path);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(result.status().message().find(bad), std::string::npos);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Backbone, RefusesModulesThatDoNotMapImagesToFeatures) {
  EXPECT_EQ(Backbone::Load(TempPath("absent.pt"), "cpu").status().code(),
            absl::StatusCode::kNotFound);
  const std::string garbage = TempPath("garbage.pt");
  std::ofstream(garbage) << "not a TorchScript archive";
  EXPECT_EQ(Backbone::Load(garbage, "cpu").status().code(), absl::StatusCode::kInvalidArgument);

  const at::Tensor images = at::randn({2, 3, 16, 16});
  auto spatial = Backbone::Load(SaveBackbone("spatial.pt", R"(
def forward(self, x):
    return torch.conv2d(x, self.weight)
)"),
                                "cpu");
  ASSERT_TRUE(spatial.ok());
  auto unpooled = (*spatial)->Embed(images);
  EXPECT_EQ(unpooled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unpooled.status().message().find("[B, D]"), std::string::npos);

  auto pair = Backbone::Load(SaveBackbone("pair.pt", R"(
def forward(self, x):
    return (x, x)
)"),
                             "cpu");
  ASSERT_TRUE(pair.ok());
  EXPECT_EQ((*pair)->Embed(images).status().code(), absl::StatusCode::kInvalidArgument);
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(Backbone::Load(SaveBackbone("cuda.pt", kPooledConvolution), "cuda").status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

}  // namespace
}  // namespace dpfleet::features

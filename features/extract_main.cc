// dpfleet-extract: turns a private image folder (or features computed elsewhere, as .npy) into the
// feature shards that workers finetune on. Run it once per machine with --part, or once for all
// parts; see the README's cluster recipe.

#include <ATen/Parallel.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "features/extract.h"
#include "features/feature_shard.h"

ABSL_FLAG(std::string, out, "", "dataset folder to write (its name is the dataset's name)");
ABSL_FLAG(std::string, train, "", "training images: root/<class>/<image>.JPEG");
ABSL_FLAG(std::string, test, "", "held-out images, same layout and classes (optional)");
ABSL_FLAG(std::string, backbone, "", "TorchScript feature extractor (.pt)");
ABSL_FLAG(std::string, device, "cpu", "where the backbone runs: cpu, cuda or cuda:N");
ABSL_FLAG(std::string, train_npy, "",
          "instead of images: FEATURES.npy,LABELS.npy computed elsewhere");
ABSL_FLAG(std::string, test_npy, "", "held-out FEATURES.npy,LABELS.npy");
ABSL_FLAG(int64_t, num_classes, 0, "class count, with --train_npy");
ABSL_FLAG(int64_t, parts, 1, "the training split is written as this many parts");
ABSL_FLAG(int64_t, part, -1, "write only this part (one machine of many); -1 writes all");
ABSL_FLAG(int64_t, resize, 256, "shorter side after resizing");
ABSL_FLAG(int64_t, crop, 224, "centre crop");
ABSL_FLAG(std::string, mean, "0.485,0.456,0.406", "per-channel mean (RGB)");
ABSL_FLAG(std::string, std, "0.229,0.224,0.225", "per-channel standard deviation (RGB)");
ABSL_FLAG(int64_t, batch_size, 64, "images per backbone call");
ABSL_FLAG(std::string, dtype, "float16", "storage: float32, float16 or bfloat16");
ABSL_FLAG(int, threads, 0, "intra-op threads (0: every core)");

namespace {

using dpfleet::features::ShardFileName;

absl::StatusOr<std::array<double, 3>> ParseTriple(const std::string& flag,
                                                  const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  std::array<double, 3> values;
  if (parts.size() != 3)
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " needs 3 values"));
  for (int i = 0; i < 3; ++i) {
    if (!absl::SimpleAtod(parts[i], &values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", parts[i], "' is no number"));
    }
  }
  return values;
}

absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype must be float32, float16 or bfloat16, not '", name, "'"));
}

// The parts this run writes: all of them, or --part alone.
absl::StatusOr<std::vector<int64_t>> PartsToWrite() {
  const int64_t parts = absl::GetFlag(FLAGS_parts), part = absl::GetFlag(FLAGS_part);
  if (parts < 1) return absl::InvalidArgumentError("--parts must be at least 1");
  if (part >= parts || part < -1) {
    return absl::InvalidArgumentError(absl::StrCat("--part must lie in [0, ", parts, ")"));
  }
  if (part >= 0) return std::vector<int64_t>{part};
  std::vector<int64_t> all(parts);
  for (int64_t i = 0; i < parts; ++i) all[i] = i;
  return all;
}

absl::Status WriteClassNames(const std::string& out, const std::vector<std::string>& classes) {
  const std::string path = out + "/classes.txt";
  {
    std::ofstream file(path + ".tmp");
    for (const std::string& name : classes) file << name << "\n";
    if (!file) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  std::filesystem::rename(path + ".tmp", path);
  return absl::OkStatus();
}

absl::Status ExtractImages(const std::string& out, at::ScalarType storage) {
  using namespace dpfleet::features;
  ExtractionOptions options;
  options.storage = storage;
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.transform.resize = absl::GetFlag(FLAGS_resize);
  options.transform.crop = absl::GetFlag(FLAGS_crop);
  DPFLEET_ASSIGN_OR_RETURN(options.transform.mean, ParseTriple("mean", absl::GetFlag(FLAGS_mean)));
  DPFLEET_ASSIGN_OR_RETURN(options.transform.stddev, ParseTriple("std", absl::GetFlag(FLAGS_std)));
  DPFLEET_ASSIGN_OR_RETURN(const std::vector<int64_t> parts, PartsToWrite());
  DPFLEET_ASSIGN_OR_RETURN(const ImageFolder train, ListImageFolder(absl::GetFlag(FLAGS_train)));
  DPFLEET_ASSIGN_OR_RETURN(
      std::unique_ptr<Backbone> backbone,
      Backbone::Load(absl::GetFlag(FLAGS_backbone), absl::GetFlag(FLAGS_device)));
  DPFLEET_RETURN_IF_ERROR(WriteClassNames(out, train.classes));
  const int64_t total = static_cast<int64_t>(train.images.size());
  for (const int64_t part : parts) {
    const auto [begin, end] = PartRange(total, part, absl::GetFlag(FLAGS_parts));
    const std::string path = out + "/" + ShardFileName("train", part, absl::GetFlag(FLAGS_parts));
    DPFLEET_ASSIGN_OR_RETURN(const ExtractionResult result,
                             ExtractFeatureShard(train, begin, end, *backbone, options, path));
    std::cout << path << ": images [" << begin << ", " << end << ") of " << total << ", "
              << result.dim << " features, " << result.seconds << " s ("
              << result.rows / result.seconds << " images/s)\n";
  }
  if (!absl::GetFlag(FLAGS_test).empty()) {
    DPFLEET_ASSIGN_OR_RETURN(const ImageFolder test,
                             ListImageFolder(absl::GetFlag(FLAGS_test), train.classes));
    DPFLEET_ASSIGN_OR_RETURN(const ExtractionResult result,
                             ExtractFeatureShard(test, 0, static_cast<int64_t>(test.images.size()),
                                                 *backbone, options, out + "/test.dpf"));
    std::cout << out << "/test.dpf: " << result.rows << " images, " << result.seconds << " s\n";
  }
  return absl::OkStatus();
}

absl::StatusOr<dpfleet::features::NpyFeatures> ReadNpyPair(const std::string& flag,
                                                           const std::string& value) {
  std::vector<std::string> paths = absl::StrSplit(value, ',');
  if (paths.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " is FEATURES.npy,LABELS.npy"));
  }
  return dpfleet::features::ReadNpyFeatures(paths[0], paths[1]);
}

absl::Status ConvertNpy(const std::string& out, at::ScalarType storage) {
  using namespace dpfleet::features;
  const int64_t classes = absl::GetFlag(FLAGS_num_classes);
  if (classes < 1) return absl::InvalidArgumentError("--train_npy needs --num_classes");
  DPFLEET_ASSIGN_OR_RETURN(const std::vector<int64_t> parts, PartsToWrite());
  DPFLEET_ASSIGN_OR_RETURN(const auto train,
                           ReadNpyPair("train_npy", absl::GetFlag(FLAGS_train_npy)));
  const int64_t total = train.features.size(0);
  for (const int64_t part : parts) {
    const auto [begin, end] = PartRange(total, part, absl::GetFlag(FLAGS_parts));
    const std::string path = out + "/" + ShardFileName("train", part, absl::GetFlag(FLAGS_parts));
    DPFLEET_RETURN_IF_ERROR(WriteFeatureShard(path, train.features.slice(0, begin, end),
                                              train.labels.slice(0, begin, end), classes, storage,
                                              ShardPlacement{begin, total}));
    std::cout << path << ": rows [" << begin << ", " << end << ") of " << total << "\n";
  }
  if (!absl::GetFlag(FLAGS_test_npy).empty()) {
    DPFLEET_ASSIGN_OR_RETURN(const auto test,
                             ReadNpyPair("test_npy", absl::GetFlag(FLAGS_test_npy)));
    DPFLEET_RETURN_IF_ERROR(
        WriteFeatureShard(out + "/test.dpf", test.features, test.labels, classes, storage));
    std::cout << out << "/test.dpf: " << test.features.size(0) << " rows\n";
  }
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  const bool images = !absl::GetFlag(FLAGS_train).empty();
  const bool npy = !absl::GetFlag(FLAGS_train_npy).empty();
  if (images == npy) {
    return absl::InvalidArgumentError("give exactly one of --train (images) and --train_npy");
  }
  if (images && absl::GetFlag(FLAGS_backbone).empty()) {
    return absl::InvalidArgumentError("--train needs --backbone");
  }
  DPFLEET_ASSIGN_OR_RETURN(const at::ScalarType storage, ParseDtype(absl::GetFlag(FLAGS_dtype)));
  std::error_code error;
  std::filesystem::create_directories(out, error);
  if (error) return absl::InternalError(absl::StrCat("cannot create ", out, ": ", error.message()));
  return images ? ExtractImages(out, storage) : ConvertNpy(out, storage);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const absl::Status status = Run();
  if (!status.ok()) {
    std::cerr << "dpfleet-extract: " << status << "\n";
    return 1;
  }
  return 0;
}

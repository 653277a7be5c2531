// Feature extraction's own costs, on JPEGs of ImageNet's typical size: decoding at full size
// against decoding at the DCT scale the resize needs, the transform, and the whole pipeline
// (decode + transform on every core, one batch ahead of the backbone) with a backbone that only
// pools, so that what is measured is ours and not the user's model.
//
//   bazel run -c opt //bench:extract_bench -- [--images 512] [--threads 2]

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "features/extract.h"
#include "features/jpeg.h"

namespace {

namespace fs = std::filesystem;
using namespace dpfleet::features;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// A photo-like picture: smooth colour fields plus mild noise (compresses like a photograph, not
// like white noise).
at::Tensor Picture(int64_t height, int64_t width) {
  const at::Tensor y = at::linspace(0, 6.28, height).view({height, 1, 1});
  const at::Tensor x = at::linspace(0, 6.28, width).view({1, width, 1});
  const at::Tensor phase = at::rand({1, 1, 3}) * 6.28;
  const at::Tensor field = (at::sin(x * 1.7 + phase) + at::cos(y * 2.3 - phase)) * 60 + 128;
  return (field + at::randn({height, width, 3}) * 12).clamp(0, 255).to(at::kByte);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t count = 512;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--images") count = std::atoll(argv[i + 1]);
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
  }
  at::set_num_threads(threads);
  at::manual_seed(1);
  const fs::path root = fs::temp_directory_path() / "dpfleet_extract_bench";
  fs::remove_all(root);
  const ImageTransform transform;  // Resize 256, crop 224.
  std::printf("%lld JPEGs per size (quality 90), %d threads; medians per image on one thread\n",
              static_cast<long long>(count), threads);
  std::printf("%-10s %8s %12s %14s %10s %12s %16s\n", "size", "KB/file", "full decode",
              "scaled decode", "transform", "decode+xform", "pipeline img/s");
  for (const auto& [height, width] : {std::pair<int64_t, int64_t>{375, 500}, {768, 1024}}) {
    const fs::path folder = root / std::to_string(width) / "class0";
    fs::create_directories(folder);
    std::vector<std::string> paths;
    for (int64_t i = 0; i < count; ++i) {
      paths.push_back((folder / (std::to_string(i) + ".jpg")).string());
      if (!EncodeJpeg(paths.back(), Picture(height, width), 90).ok()) return 1;
    }
    const double kilobytes = static_cast<double>(fs::file_size(paths[0])) / 1024;
    std::vector<double> full, scaled, transformed;
    for (const std::string& path : paths) {
      auto start = std::chrono::steady_clock::now();
      if (!DecodeJpeg(path).ok()) return 1;
      full.push_back(Seconds(start));
      start = std::chrono::steady_clock::now();
      const at::Tensor rgb = *DecodeJpeg(path, transform.resize);
      scaled.push_back(Seconds(start));
      start = std::chrono::steady_clock::now();
      at::parallel_for(0, 1, 1, [&](int64_t, int64_t) { PrepareImage(rgb, transform); });
      transformed.push_back(Seconds(start));
    }
    auto median = [](std::vector<double> v) {
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      return 1000 * v[v.size() / 2];
    };

    torch::jit::Module pool("Pool");
    pool.define("def forward(self, x):\n    return torch.mean(x, [2, 3])\n");
    const std::string backbone_path = (root / "pool.pt").string();
    pool.save(backbone_path);
    auto backbone = Backbone::Load(backbone_path, "cpu");
    auto images = ListImageFolder((root / std::to_string(width)).string());
    if (!backbone.ok() || !images.ok()) return 1;
    ExtractionOptions options;
    const auto start = std::chrono::steady_clock::now();
    auto result = ExtractFeatureShard(*images, 0, count, **backbone, options,
                                      (root / "features.dpf").string());
    if (!result.ok()) {
      std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
      return 1;
    }
    const double pipeline = count / Seconds(start);
    std::printf("%4lldx%-5lld %8.0f %9.2f ms %11.2f ms %7.2f ms %9.2f ms %16.0f\n",
                static_cast<long long>(width), static_cast<long long>(height), kilobytes,
                median(full), median(scaled), median(transformed),
                median(scaled) + median(transformed), pipeline);
  }
  fs::remove_all(root);
  return 0;
}

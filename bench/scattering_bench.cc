// The scattering transform's throughput (models/scattering.h) against the bare FFTs it needs, in
// one run: the forward and inverse 2-D FFTs of the same sizes and counts, through LibTorch.
//
//   bazel run //bench:scattering_bench -- [--images N] [--threads T]

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "models/scattering.h"

namespace {

double MedianSeconds(const std::function<void()>& run, int repeats) {
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t images = 1024;
  int threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--images") == 0) images = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  }
  if (threads > 0) at::set_num_threads(threads);
  const auto scattering = dpfleet::models::Scattering2d::Create({});
  if (!scattering.ok()) {
    std::fprintf(stderr, "%s\n", scattering.status().ToString().c_str());
    return 1;
  }
  at::manual_seed(1);
  const at::Tensor batch = at::rand({images, 1, 28, 28});
  const double transform = MedianSeconds([&] { scattering->Transform(batch); }, 5);
  // The FFTs of J = 2, L = 8 on the 36x36 padding, per image: 1 forward of the image; 8 inverse
  // and 8 forward at 36x36 and 8 inverse and 8 forward at 18x18 (first order); 64 inverse and 64
  // forward at 18x18 (second order); 1 + 8 + 64 inverse at 9x9 and 8 at 9x9 (the averages).
  const at::Tensor at36 = at::randn({images * 17, 36, 36}, at::kComplexFloat);
  const at::Tensor at18 = at::randn({images * 144, 18, 18}, at::kComplexFloat);
  const at::Tensor at9 = at::randn({images * 81, 9, 9}, at::kComplexFloat);
  const double ffts = MedianSeconds(
      [&] {
        at::fft_fft2(at36);
        at::fft_fft2(at18);
        at::fft_fft2(at9);
      },
      5);
  std::printf("scattering J=2 L=8, 28x28 -> 81x7x7, %lld images, %d threads (medians of 5)\n",
              static_cast<long long>(images), at::get_num_threads());
  std::printf("%-28s %12s %14s %18s\n", "", "seconds", "images/s", "60,000 images (s)");
  std::printf("%-28s %12.3f %14.0f %18.1f\n", "Scattering2d::Transform", transform,
              images / transform, 60000 * transform / images);
  std::printf("%-28s %12.3f %14.0f %18.1f\n", "bare FFTs of the same sizes", ffts, images / ffts,
              60000 * ffts / images);
  std::printf("ratio transform / FFTs: %.2fx\n", transform / ffts);
  return 0;
}

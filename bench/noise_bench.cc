// Cost of the privacy noise of one step: dpfleet's hardened sampler (on 1 thread and on every
// core) against the CSPRNG bytes it consumes and against LibTorch's (non-cryptographic) at::randn,
// for gradient sizes of the model zoo and of a 2048 x 1000 ImageNet head.

#include <sys/random.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "torch/torch.h"
#include "worker/secure_random.h"

namespace dpfleet::worker {
namespace {

void GradientSizes(benchmark::internal::Benchmark* bench) {
  bench->Arg(100'000)->Arg(2'049'000)->Arg(2'750'000)->Unit(benchmark::kMillisecond);
}

// Arguments: floats, intra-op threads (the sampler splits its chunks over them).
void BM_SecureGaussianNoise(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  std::vector<float> gradient(state.range(0), 0.0f);
  for (auto _ : state) AddSecureGaussianNoise(gradient.data(), state.range(0), 1.0);
  state.SetItemsProcessed(state.iterations() * state.range(0));
  at::set_num_threads(1);
}
BENCHMARK(BM_SecureGaussianNoise)
    ->ArgsProduct({{100'000, 2'049'000, 2'750'000},
                   {1, static_cast<int64_t>(std::thread::hardware_concurrency())}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The random bytes the sampler draws (four 64-bit words per coordinate), from OpenSSL's DRBG as
// the sampler does, and straight from the kernel's getrandom(2).
void BM_SamplerRandomBytes(benchmark::State& state) {
  std::vector<uint64_t> words(4 * state.range(0));
  for (auto _ : state) FillSecureRandomBytes(words.data(), words.size() * sizeof(uint64_t));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SamplerRandomBytes)->Apply(GradientSizes);

void BM_GetrandomBytes(benchmark::State& state) {
  std::vector<uint64_t> words(4 * state.range(0));
  for (auto _ : state) {
    auto* cursor = reinterpret_cast<unsigned char*>(words.data());
    size_t left = words.size() * sizeof(uint64_t);
    while (left > 0) {
      const ssize_t got = getrandom(cursor, left, 0);
      if (got < 0) state.SkipWithError("getrandom failed");
      if (got <= 0) break;
      cursor += got;
      left -= static_cast<size_t>(got);
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_GetrandomBytes)->Apply(GradientSizes);

// What a non-private noise source would cost: not usable for DP (predictable generator).
void BM_TorchRandn(benchmark::State& state) {
  at::Tensor gradient = at::zeros({state.range(0)});
  for (auto _ : state) gradient.add_(at::randn({state.range(0)}));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_TorchRandn)->Apply(GradientSizes);

}  // namespace
}  // namespace dpfleet::worker

BENCHMARK_MAIN();

#include "worker/secure_random.h"

#include <ATen/Parallel.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dpfleet::worker {
namespace {

// Uniform in (0, 1], 53 bits: never 0, so log() is finite.
double UniformOpenZero(uint64_t bits) { return ((bits >> 11) + 1) * 0x1.0p-53; }

constexpr int64_t kChunk = 4096;

}  // namespace

void FillSecureRandomBytes(void* out, size_t bytes) {
  auto* cursor = static_cast<unsigned char*>(out);
  while (bytes > 0) {
    // RAND_priv_bytes takes an int length.
    const int request = static_cast<int>(std::min<size_t>(bytes, 1 << 30));
    if (RAND_priv_bytes(cursor, request) != 1) {
      std::fprintf(stderr,
                   "dpfleet: OpenSSL's DRBG failed (%s); refusing to continue without privacy "
                   "randomness\n",
                   ERR_error_string(ERR_get_error(), nullptr));
      std::abort();
    }
    cursor += request;
    bytes -= static_cast<size_t>(request);
  }
}

std::vector<int64_t> SecurePoissonSample(int64_t n, double q) {
  std::vector<int64_t> sample;
  if (q >= 1.0) {
    sample.resize(n);
    for (int64_t i = 0; i < n; ++i) sample[i] = i;
    return sample;
  }
  sample.reserve(static_cast<size_t>(n * q * 1.2) + 16);
  // Include index i when a uniform 64-bit word falls below q * 2^64.
  const auto threshold = static_cast<uint64_t>(std::ldexp(q, 64));
  uint64_t words[kChunk];
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t count = std::min(kChunk, n - start);
    FillSecureRandomBytes(words, count * sizeof(uint64_t));
    for (int64_t i = 0; i < count; ++i) {
      if (words[i] < threshold) sample.push_back(start + i);
    }
  }
  return sample;
}

void AddSecureGaussianNoise(float* data, int64_t n, double stddev) {
  constexpr int kSummands = 4;
  // stddev / sqrt(4) is an exact power-of-two scaling of stddev.
  const double summand_stddev = stddev / 2;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  // Chunks are independent, so they run on the intra-op threads; OpenSSL keeps one DRBG per thread.
  at::parallel_for(0, chunks, 1, [&](int64_t first_chunk, int64_t end_chunk) {
    std::vector<uint64_t> words(kChunk);
    std::vector<double> noise(kChunk);
    for (int64_t chunk = first_chunk; chunk < end_chunk; ++chunk) {
      const int64_t start = chunk * kChunk;
      const int64_t count = std::min(kChunk, n - start);
      std::fill(noise.begin(), noise.begin() + count, 0.0);
      for (int summand = 0; summand < kSummands; ++summand) {
        // Two uniforms give two normals, which go to different coordinates.
        FillSecureRandomBytes(words.data(), ((count + 1) / 2) * 2 * sizeof(uint64_t));
        for (int64_t i = 0; i < count; i += 2) {
          const double radius = std::sqrt(-2.0 * std::log(UniformOpenZero(words[i])));
          const double angle = 2.0 * M_PI * UniformOpenZero(words[i + 1]);
          noise[i] += radius * std::cos(angle);
          if (i + 1 < count) noise[i + 1] += radius * std::sin(angle);
        }
      }
      for (int64_t i = 0; i < count; ++i) {
        data[start + i] += static_cast<float>(summand_stddev * noise[i]);
      }
    }
  });
}

}  // namespace dpfleet::worker

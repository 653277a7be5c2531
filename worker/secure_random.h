#ifndef DPFLEET_WORKER_SECURE_RANDOM_H_
#define DPFLEET_WORKER_SECURE_RANDOM_H_

// The one source of privacy randomness in dpfleet: Poisson sampling decisions and Gaussian noise.
// Every bit comes from the kernel's CSPRNG (getrandom(2)), seeded by the operating system, never
// from a job's public seed, so neither the sample nor the noise can be reproduced by anyone who
// knows the job spec.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dpfleet::worker {

// Fills `out` with `bytes` uniformly random bytes from getrandom(2). Aborts the process if the
// kernel CSPRNG fails: continuing without privacy randomness is never acceptable.
void FillSecureRandomBytes(void* out, size_t bytes);

// Returns the indices in [0, n), ascending, of a Poisson sample: each index independently with
// probability q (q in [0, 1]; q = 1 returns every index).
std::vector<int64_t> SecurePoissonSample(int64_t n, double q);

// Adds independent N(0, stddev^2) samples to data[0..n). Box-Muller on 53-bit uniforms, computed in
// double precision.
// TODO(issue 5): guard against the floating-point attacks on continuous samplers (Mironov 2012;
// Jin et al. 2022), e.g. by sampling a discrete Gaussian on a fine grid.
void AddSecureGaussianNoise(float* data, int64_t n, double stddev);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_SECURE_RANDOM_H_

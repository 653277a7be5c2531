#ifndef DPFLEET_WORKER_SECURE_RANDOM_H_
#define DPFLEET_WORKER_SECURE_RANDOM_H_

// The one source of privacy randomness in dpfleet: Poisson sampling decisions and Gaussian noise.
// Every bit comes from OpenSSL's private CTR-DRBG (AES-256, NIST SP 800-90A), which seeds and
// reseeds itself from the kernel's getrandom(2), never from a job's public seed, so neither the
// sample nor the noise can be reproduced by anyone who knows the job spec.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dpfleet::worker {

// Fills `out` with `bytes` uniformly random bytes from OpenSSL's RAND_priv_bytes (11x the
// throughput of getrandom(2) here, see bench/noise_bench). Aborts the process if the generator
// fails: continuing without privacy randomness is never acceptable.
void FillSecureRandomBytes(void* out, size_t bytes);

// Returns the indices in [0, n), ascending, of a Poisson sample: each index independently with
// probability q (q in [0, 1]; q = 1 returns every index).
std::vector<int64_t> SecurePoissonSample(int64_t n, double q);

// Adds independent N(0, stddev^2) samples to data[0..n), each the sum of four Box-Muller normals
// of scale stddev / 2, computed in double precision from 53-bit uniforms and rounded to float once.
// Summing 2n samples is the mitigation of Holohan & Braghin 2021 ("Secure Random Sampling in
// Differential Privacy", Sec. 5.1; also Opacus' secure mode) against the floating-point attacks on
// continuous samplers (Mironov 2012; Jin et al. 2022): inverting one sample to its uniforms takes
// ~2^53 guesses, inverting the sum ~2^(53*3). It raises the attacker's cost; it is not a proof that
// every float output is reachable from every input, which only a discrete Gaussian on a grid with
// the input snapped to it would give (Canonne, Kamath, Steinke 2020). Runs on the intra-op threads
// (at::set_num_threads).
void AddSecureGaussianNoise(float* data, int64_t n, double stddev);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_SECURE_RANDOM_H_

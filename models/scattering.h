#ifndef DPFLEET_MODELS_SCATTERING_H_
#define DPFLEET_MODELS_SCATTERING_H_

// The 2-D scattering transform (Mallat 2012, "Group Invariant Scattering"; Bruna and Mallat 2013)
// with the Morlet filter bank and the algorithm of Kymatio (Andreux et al. 2020, JMLR 21(60)), as
// Tramer and Boneh (2021, "Differentially Private Learning Needs Better Features") use it in front
// of private linear models and CNNs. It has no trainable parameters and reads nothing but the
// example it transforms, so it may be computed once per example and cached: a model that starts
// with it is still trained privately on the examples themselves.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::models {

struct ScatteringOptions {
  int64_t height = 28;
  int64_t width = 28;
  int scales = 2;        // J: the averaging window is 2^J pixels wide.
  int orientations = 8;  // L.
};

// A second-order scattering transform for images of one size. Thread-safe after construction.
class Scattering2d {
 public:
  // Returns the transform for `options`. Errors: kInvalidArgument for J outside [1, 4], L outside
  // [1, 16], or an image side below 2^J.
  static absl::StatusOr<Scattering2d> Create(const ScatteringOptions& options);

  // Returns the scattering coefficients of `images` [B, C, height, width] (any floating type) as
  // float32 [B, C * channels_per_input(), height / 2^J, width / 2^J]. For each input channel, in
  // Kymatio's order: the low-pass average S0 = x * phi; then for each first-order wavelet
  // (j1, theta1), S1 = |x * psi_{j1,theta1}| * phi followed by its second-order coefficients
  // S2 = ||x * psi_{j1,theta1}| * psi_{j2,theta2}| * phi for every j2 > j1 and every theta2.
  // Convolutions are circular on the image reflect-padded to a multiple of 2^J with at least 2^J
  // pixels of margin, each computed in Fourier at the coarsest resolution its bandwidth allows.
  at::Tensor Transform(const at::Tensor& images) const;

  // 1 + J L + L^2 J (J - 1) / 2: 81 for J = 2, L = 8.
  int64_t channels_per_input() const;
  int64_t output_height() const { return options_.height >> options_.scales; }
  int64_t output_width() const { return options_.width >> options_.scales; }

  // The filters' Fourier transforms on the padded grid at full resolution (real: the filters are
  // symmetric up to conjugation): the low-pass phi [P, Q] and the wavelets [J L, P, Q], indexed
  // j L + theta. For tests.
  const at::Tensor& low_pass() const { return phi_[0]; }
  const at::Tensor& wavelets() const { return psi_[0]; }
  int64_t padded_height() const { return padded_height_; }
  int64_t padded_width() const { return padded_width_; }

 private:
  explicit Scattering2d(const ScatteringOptions& options) : options_(options) {}

  ScatteringOptions options_;
  int64_t padded_height_ = 0;
  int64_t padded_width_ = 0;
  // phi_[r]: the low-pass cropped to resolution 2^-r, [P / 2^r, Q / 2^r], r in [0, J).
  std::vector<at::Tensor> phi_;
  // psi_[r]: every wavelet cropped to resolution 2^-r, [J L, P / 2^r, Q / 2^r]; a wavelet of
  // scale j is used at resolutions r <= j only.
  std::vector<at::Tensor> psi_;
};

}  // namespace dpfleet::models

#endif  // DPFLEET_MODELS_SCATTERING_H_

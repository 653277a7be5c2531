#include "models/scattering.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dpfleet::models {
namespace {

constexpr int64_t kImagesPerChunk = 128;  // Bounds the second order's [n, L, L, P, Q] products.

// The Gabor filter g(u) = exp(-u^T A u + i xi (u_1 cos theta + u_2 sin theta)) / (2 pi sigma^2 /
// slant), A = R diag(1, slant^2) R^T / (2 sigma^2), on a P x Q grid periodised over the 5 x 5
// nearest periods. Returns {real, imaginary} in double.
std::pair<at::Tensor, at::Tensor> Gabor(int64_t p, int64_t q, double sigma, double theta, double xi,
                                        double slant) {
  const double c = std::cos(theta), s = std::sin(theta);
  // R diag(1, slant^2) R^T, entry by entry.
  const double a00 = (c * c + slant * slant * s * s) / (2 * sigma * sigma);
  const double a11 = (s * s + slant * slant * c * c) / (2 * sigma * sigma);
  const double a01 = (c * s - slant * slant * c * s) / (2 * sigma * sigma);
  const auto options = at::TensorOptions().dtype(at::kDouble);
  at::Tensor real = at::zeros({p, q}, options);
  at::Tensor imaginary = at::zeros({p, q}, options);
  for (int64_t ex = -2; ex <= 2; ++ex) {
    for (int64_t ey = -2; ey <= 2; ++ey) {
      const at::Tensor x = (at::arange(p, options) + static_cast<double>(ex * p)).unsqueeze(1);
      const at::Tensor y = (at::arange(q, options) + static_cast<double>(ey * q)).unsqueeze(0);
      const at::Tensor envelope = at::exp(-(a00 * x * x + 2 * a01 * x * y + a11 * y * y));
      const at::Tensor phase = xi * (x * c + y * s);
      real += envelope * at::cos(phase);
      imaginary += envelope * at::sin(phase);
    }
  }
  const double norm = 2 * M_PI * sigma * sigma / slant;
  return {real / norm, imaginary / norm};
}

// Returns the real part of the DFT of the complex filter {real, imaginary}.
at::Tensor RealSpectrum(const at::Tensor& real, const at::Tensor& imaginary) {
  return at::real(at::fft_fft2(at::complex(real, imaginary)));
}

// The Morlet wavelet: a Gabor filter minus the multiple of its envelope that gives it zero mean.
at::Tensor MorletSpectrum(int64_t p, int64_t q, double sigma, double theta, double xi,
                          double slant) {
  const auto [wave_re, wave_im] = Gabor(p, q, sigma, theta, xi, slant);
  const auto [envelope, zero] = Gabor(p, q, sigma, theta, 0, slant);
  const double total = envelope.sum().item<double>();
  const double k_re = wave_re.sum().item<double>() / total;
  const double k_im = wave_im.sum().item<double>() / total;
  return RealSpectrum(wave_re - k_re * envelope, wave_im - k_im * envelope);
}

// The spectrum of a filter for signals subsampled by 2^res: its frequencies below the new
// Nyquist rate, folded onto the smaller grid.
at::Tensor CropSpectrum(const at::Tensor& spectrum, int res) {
  const int64_t p = spectrum.size(-2), q = spectrum.size(-1);
  const int64_t k = int64_t{1} << res;
  at::Tensor masked = spectrum.clone();
  const int64_t row_start = p / (2 * k), row_length = p - p / k;
  const int64_t col_start = q / (2 * k), col_length = q - q / k;
  masked.narrow(-2, row_start, row_length).zero_();
  masked.narrow(-1, col_start, col_length).zero_();
  std::vector<int64_t> shape = masked.sizes().vec();
  shape.pop_back();
  shape.pop_back();
  const int64_t lead = static_cast<int64_t>(shape.size());
  for (int64_t d : {k, p / k, k, q / k}) shape.push_back(d);
  return masked.reshape(shape).sum({lead, lead + 2});
}

// Returns the spectrum of (u * filter) subsampled by k in space: the mean of the k x k aliased
// copies of the product u * filter (u complex, filter real, broadcast). The copies are multiplied
// and summed into the small grid one at a time, in real arithmetic, so the full-resolution
// product is never materialised.
at::Tensor FilterAndSubsample(const at::Tensor& u, const at::Tensor& filter, int64_t k) {
  const int64_t p = u.size(-2) / k, q = u.size(-1) / k;
  const at::Tensor u_real = at::view_as_real(u);  // [..., P, Q, 2]
  std::vector<int64_t> shape = at::infer_size(u.sizes(), filter.sizes());
  shape[shape.size() - 2] = p;
  shape.back() = q;
  shape.push_back(2);
  at::Tensor sum = at::zeros(shape, u_real.options());
  for (int64_t a = 0; a < k; ++a) {
    for (int64_t b = 0; b < k; ++b) {
      sum.addcmul_(u_real.narrow(-3, a * p, p).narrow(-2, b * q, q),
                   filter.narrow(-2, a * p, p).narrow(-1, b * q, q).unsqueeze(-1));
    }
  }
  if (k > 1) sum.div_(static_cast<double>(k * k));
  return at::view_as_complex(sum);
}

// Low-pass filters the spectrum `u` and subsamples it by k, back in space, without the one-pixel
// border the padding leaves.
at::Tensor Average(const at::Tensor& u, const at::Tensor& phi, int64_t k) {
  const at::Tensor averaged = at::real(at::fft_ifft2(FilterAndSubsample(u, phi, k)));
  const int64_t h = averaged.size(-2), w = averaged.size(-1);
  return averaged.narrow(-2, 1, h - 2).narrow(-1, 1, w - 2);
}

// The spectrum of |u * psi| subsampled by k.
at::Tensor ModulusSpectrum(const at::Tensor& u, const at::Tensor& psi, int64_t k) {
  return at::fft_fft2(at::abs(at::fft_ifft2(FilterAndSubsample(u, psi, k))).to(at::kComplexFloat));
}

}  // namespace

absl::StatusOr<Scattering2d> Scattering2d::Create(const ScatteringOptions& options) {
  const int j = options.scales;
  if (j < 1 || j > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("scattering scales J must be in [1, 4], got ", j));
  }
  if (options.orientations < 1 || options.orientations > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("scattering orientations L must be in [1, 16], got ", options.orientations));
  }
  // The reflect padding is up to 2^J on each side, and may not exceed the image.
  const int64_t minimum = int64_t{2} << j;
  if (options.height < minimum || options.width < minimum) {
    return absl::InvalidArgumentError(absl::StrCat("scattering with J = ", j, " takes images of ",
                                                   minimum, "x", minimum, " or more, got ",
                                                   options.height, "x", options.width));
  }
  Scattering2d scattering(options);
  const int64_t window = int64_t{1} << j;
  scattering.padded_height_ = ((options.height + window) / window + 1) * window;
  scattering.padded_width_ = ((options.width + window) / window + 1) * window;
  const int64_t p = scattering.padded_height_, q = scattering.padded_width_;
  const int l = options.orientations;

  const auto [phi_re, phi_im] = Gabor(p, q, 0.8 * (1 << (j - 1)), 0, 0, 1.0);
  const at::Tensor phi = RealSpectrum(phi_re, phi_im);
  std::vector<at::Tensor> wavelets;
  for (int scale = 0; scale < j; ++scale) {
    for (int theta = 0; theta < l; ++theta) {
      const double angle = (static_cast<int>(l - l / 2 - 1) - theta) * M_PI / l;
      wavelets.push_back(
          MorletSpectrum(p, q, 0.8 * (1 << scale), angle, 0.75 * M_PI / (1 << scale), 4.0 / l));
    }
  }
  const at::Tensor psi = at::stack(wavelets);
  for (int res = 0; res < j; ++res) {
    scattering.phi_.push_back(CropSpectrum(phi, res).to(at::kFloat));
    scattering.psi_.push_back(CropSpectrum(psi, res).to(at::kFloat));
  }
  return scattering;
}

int64_t Scattering2d::channels_per_input() const {
  const int64_t j = options_.scales, l = options_.orientations;
  return 1 + j * l + l * l * j * (j - 1) / 2;
}

at::Tensor Scattering2d::Transform(const at::Tensor& images) const {
  at::NoGradGuard no_grad;
  const int64_t batch = images.size(0), channels = images.size(1);
  const int j = options_.scales;
  const int64_t l = options_.orientations;
  const int64_t top = (padded_height_ - options_.height) / 2;
  const int64_t left = (padded_width_ - options_.width) / 2;
  const at::Tensor flat =
      images.to(at::kFloat).reshape({batch * channels, 1, options_.height, options_.width});
  std::vector<at::Tensor> chunks;
  for (int64_t start = 0; start < flat.size(0); start += kImagesPerChunk) {
    const at::Tensor x = flat.slice(0, start, std::min(flat.size(0), start + kImagesPerChunk));
    const int64_t n = x.size(0);
    const at::Tensor padded = at::reflection_pad2d(x, {left, padded_width_ - options_.width - left,
                                                       top, padded_height_ - options_.height - top})
                                  .squeeze(1);
    const at::Tensor spectrum = at::fft_fft2(padded.to(at::kComplexFloat));
    std::vector<at::Tensor> coefficients = {
        Average(spectrum, phi_[0], int64_t{1} << j).unsqueeze(1)};
    for (int j1 = 0; j1 < j; ++j1) {
      const at::Tensor first =
          ModulusSpectrum(spectrum.unsqueeze(1), psi_[0].narrow(0, j1 * l, l), int64_t{1} << j1);
      // [n, L, 1 + (J - j1 - 1) L, h, w]: each S1 followed by its second order.
      std::vector<at::Tensor> per_first = {
          Average(first, phi_[j1], int64_t{1} << (j - j1)).unsqueeze(2)};
      for (int j2 = j1 + 1; j2 < j; ++j2) {
        const at::Tensor second = ModulusSpectrum(first.unsqueeze(2), psi_[j1].narrow(0, j2 * l, l),
                                                  int64_t{1} << (j2 - j1));
        per_first.push_back(Average(second, phi_[j2], int64_t{1} << (j - j2)));
      }
      const at::Tensor block = at::cat(per_first, 2);
      coefficients.push_back(block.reshape({n, -1, block.size(-2), block.size(-1)}));
    }
    chunks.push_back(at::cat(coefficients, 1));
  }
  const at::Tensor all = at::cat(chunks, 0);
  return all.reshape({batch, channels * all.size(1), all.size(-2), all.size(-1)}).contiguous();
}

}  // namespace dpfleet::models

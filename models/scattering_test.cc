#include "models/scattering.h"

#include <cmath>
#include <complex>
#include <vector>

#include "gtest/gtest.h"

namespace dpfleet::models {
namespace {

using Complex = std::complex<double>;

// A spatial filter on a P x P grid, written out from its formula here, independently of the
// Fourier-domain construction under test: f(u) summed over the 5 x 5 nearest periods.
template <typename F>
std::vector<Complex> Periodised(int64_t p, F f) {
  std::vector<Complex> filter(p * p);
  for (int64_t a = 0; a < p; ++a) {
    for (int64_t b = 0; b < p; ++b) {
      for (int64_t ex = -2; ex <= 2; ++ex) {
        for (int64_t ey = -2; ey <= 2; ++ey) {
          filter[a * p + b] += f(static_cast<double>(a + ex * p), static_cast<double>(b + ey * p));
        }
      }
    }
  }
  return filter;
}

// The low-pass: an isotropic Gaussian of width sigma with unit mass.
std::vector<Complex> GaussianFilter(int64_t p, double sigma) {
  return Periodised(p, [sigma](double x, double y) {
    return Complex(std::exp(-(x * x + y * y) / (2 * sigma * sigma)) / (2 * M_PI * sigma * sigma));
  });
}

// The Morlet wavelet of scale 0 (sigma 0.8, xi 3 pi / 4, slant 1/2) at angle theta: a Gabor filter
// minus the multiple of its envelope that gives it zero mean.
std::vector<Complex> MorletFilter(int64_t p, double theta) {
  const double sigma = 0.8, xi = 0.75 * M_PI, slant = 0.5;
  const double c = std::cos(theta), s = std::sin(theta);
  auto envelope = [&](double x, double y) {
    // Along the wave (u = c x + s y) the width is sigma; across it, sigma / slant.
    const double along = c * x + s * y, across = -s * x + c * y;
    return std::exp(-(along * along + slant * slant * across * across) / (2 * sigma * sigma)) /
           (2 * M_PI * sigma * sigma / slant);
  };
  const std::vector<Complex> wave = Periodised(p, [&](double x, double y) {
    return envelope(x, y) * std::polar(1.0, xi * (c * x + s * y));
  });
  const std::vector<Complex> bump =
      Periodised(p, [&](double x, double y) { return Complex(envelope(x, y)); });
  Complex wave_sum, bump_sum;
  for (size_t i = 0; i < wave.size(); ++i) wave_sum += wave[i], bump_sum += bump[i];
  std::vector<Complex> morlet(wave.size());
  for (size_t i = 0; i < wave.size(); ++i) morlet[i] = wave[i] - wave_sum / bump_sum * bump[i];
  return morlet;
}

// Circular convolution on the P x P grid, term by term.
std::vector<Complex> Convolve(const std::vector<Complex>& x, const std::vector<Complex>& f,
                              int64_t p) {
  std::vector<Complex> y(p * p);
  for (int64_t a = 0; a < p; ++a) {
    for (int64_t b = 0; b < p; ++b) {
      Complex sum;
      for (int64_t u = 0; u < p; ++u) {
        for (int64_t v = 0; v < p; ++v) {
          sum += x[((a - u + p) % p) * p + (b - v + p) % p] * f[u * p + v];
        }
      }
      y[a * p + b] = sum;
    }
  }
  return y;
}

// The 28x28 image reflect-padded to 36x36 (4 pixels each side), as a grid.
std::vector<Complex> ReflectPadded(const at::Tensor& image, int64_t p) {
  const int64_t n = image.size(-1), pad = (p - n) / 2;
  auto reflect = [n](int64_t i) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); };
  const at::Tensor pixels = image.to(at::kDouble).reshape({n, n}).contiguous();
  const double* data = pixels.data_ptr<double>();
  std::vector<Complex> grid(p * p);
  for (int64_t a = 0; a < p; ++a) {
    for (int64_t b = 0; b < p; ++b) {
      grid[a * p + b] = data[reflect(a - pad) * n + reflect(b - pad)];
    }
  }
  return grid;
}

at::Tensor RandomImages(int64_t batch, int64_t channels, int64_t side) {
  at::manual_seed(5);
  return at::rand({batch, channels, side, side});
}

TEST(Scattering2d, HasKymatiosShapeFor28x28) {
  const Scattering2d scattering = *Scattering2d::Create({});
  EXPECT_EQ(scattering.channels_per_input(), 81);
  EXPECT_EQ(scattering.padded_height(), 36);
  const at::Tensor out = scattering.Transform(RandomImages(3, 1, 28));
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{3, 81, 7, 7}));
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  // Colour images: 81 coefficients per channel. CIFAR-size 32x32 gives 8x8.
  const Scattering2d cifar = *Scattering2d::Create({.height = 32, .width = 32});
  EXPECT_EQ(cifar.Transform(RandomImages(2, 3, 32)).sizes(), (at::IntArrayRef{2, 243, 8, 8}));
  // Chunking images does not change any of them.
  const at::Tensor many = RandomImages(300, 1, 28);
  EXPECT_TRUE(at::allclose(scattering.Transform(many).slice(0, 290, 300),
                           scattering.Transform(many.slice(0, 290, 300)), 1e-5, 1e-6));
}

TEST(Scattering2d, RefusesWhatItCannotTransform) {
  EXPECT_FALSE(Scattering2d::Create({.scales = 0}).ok());
  EXPECT_FALSE(Scattering2d::Create({.scales = 5}).ok());
  EXPECT_FALSE(Scattering2d::Create({.orientations = 0}).ok());
  EXPECT_FALSE(Scattering2d::Create({.height = 7, .width = 28}).ok());
}

// S0 and the first order of scale 0 involve no resolution change before the final average, so
// they equal direct spatial convolutions with the filters as their formulas define them.
TEST(Scattering2d, MatchesDirectConvolutionsWithTheFilters) {
  const Scattering2d scattering = *Scattering2d::Create({});
  const int64_t p = scattering.padded_height();
  const at::Tensor image = RandomImages(1, 1, 28);
  const at::Tensor out = scattering.Transform(image).to(at::kDouble);
  const std::vector<Complex> x = ReflectPadded(image, p);
  const std::vector<Complex> phi = GaussianFilter(p, 1.6);
  // Output (a, b) is the padded grid's point 4 (a + 1), 4 (b + 1): subsampled by 2^J = 4, less
  // the one-pixel border.
  auto sample = [p](const std::vector<Complex>& grid, int64_t a, int64_t b) {
    return grid[(4 * (a + 1)) * p + 4 * (b + 1)].real();
  };
  const std::vector<Complex> s0 = Convolve(x, phi, p);
  double worst = 0;
  for (int64_t a = 0; a < 7; ++a) {
    for (int64_t b = 0; b < 7; ++b) {
      worst = std::max(worst, std::abs(out[0][0][a][b].item<double>() - sample(s0, a, b)));
    }
  }
  EXPECT_LT(worst, 1e-5) << "S0";
  // Kymatio's angles for L = 8: (8 - 4 - 1 - theta) pi / 8. Each S1 of scale 0 sits after the S0
  // and the 9 coefficients (its own and its 8 second-order ones) of each earlier orientation.
  for (int theta = 0; theta < 8; theta += 3) {
    std::vector<Complex> modulus = Convolve(x, MorletFilter(p, (3 - theta) * M_PI / 8), p);
    for (Complex& value : modulus) value = std::abs(value);
    const std::vector<Complex> s1 = Convolve(modulus, phi, p);
    double worst_relative = 0;
    for (int64_t a = 0; a < 7; ++a) {
      for (int64_t b = 0; b < 7; ++b) {
        const double expected = sample(s1, a, b);
        const double got = out[0][1 + 9 * theta][a][b].item<double>();
        worst_relative = std::max(worst_relative, std::abs(got - expected) / expected);
      }
    }
    EXPECT_LT(worst_relative, 1e-4) << "S1 at orientation " << theta;
  }
}

// A 10x10 pattern in the middle of a dark 28x28 image, so that the padding sees only background.
at::Tensor CentredPattern() {
  at::Tensor image = at::zeros({1, 1, 28, 28});
  at::manual_seed(9);
  image.slice(2, 9, 19).slice(3, 9, 19).copy_(at::rand({10, 10}));
  return image;
}

// Rotating an image by 90 degrees rotates every coefficient map and moves each wavelet's
// orientation by L / 2. The exact rotation of the padded 36x36 grid, k -> -k mod 36, is rot90
// (image rows k -> 27 - k) and a one-pixel shift of the reversed axis; on the coefficient grid
// (the padded grid's multiples of 4 less its border) it is rot90 shifted by one row.
TEST(Scattering2d, RotatesWithTheImageAndItsOrientations) {
  const Scattering2d scattering = *Scattering2d::Create({});
  const at::Tensor image = CentredPattern();
  const at::Tensor out = scattering.Transform(image)[0];
  const at::Tensor rotated =
      scattering.Transform(at::roll(at::rot90(image, 1, {2, 3}), {1}, {2}))[0];
  auto matches = [&](int64_t rotated_channel, int64_t channel) {
    return at::allclose(rotated[rotated_channel].slice(0, 1, 7),
                        at::rot90(out[channel], 1, {0, 1}).slice(0, 0, 6), 1e-4,
                        1e-5 * out.abs().max().item<double>());
  };
  EXPECT_TRUE(matches(0, 0)) << "S0";
  // Scale 0: each orientation's S1 then its 8 second-order coefficients (theta2 < 0: S1).
  auto channel = [](int theta1, int theta2) { return 1 + 9 * theta1 + 1 + theta2; };
  for (int t1 = 0; t1 < 8; ++t1) {
    for (int t2 = -1; t2 < 8; ++t2) {
      EXPECT_TRUE(matches(channel((t1 + 4) % 8, t2 < 0 ? -1 : (t2 + 4) % 8), channel(t1, t2)))
          << t1 << " " << t2;
    }
    // The coarse scale's first order sits after all of scale 0's.
    EXPECT_TRUE(matches(73 + (t1 + 4) % 8, 73 + t1)) << t1;
  }
}

// Translating an image by 2^J pixels translates its coefficients by one.
TEST(Scattering2d, TranslatesByOneCoefficientPerWindow) {
  const Scattering2d scattering = *Scattering2d::Create({});
  const at::Tensor image = CentredPattern();
  const at::Tensor shifted = at::roll(image, {4, 4}, {2, 3});
  const at::Tensor out = scattering.Transform(image);
  const at::Tensor moved = scattering.Transform(shifted);
  EXPECT_TRUE(at::allclose(moved.slice(2, 1, 7).slice(3, 1, 7), out.slice(2, 0, 6).slice(3, 0, 6),
                           1e-3, 1e-4 * out.abs().max().item<double>()));
}

// The filter bank covers the frequencies of natural images without amplifying any: Kymatio's
// Morlet bank has a Littlewood-Paley sum |phi|^2 + sum_{j, theta} (|psi(w)|^2 + |psi(-w)|^2) / 2
// of at most about 1, and the low-pass passes the mean exactly while every wavelet removes it.
TEST(Scattering2d, FilterBankIsNonExpansiveAndAdmissible) {
  const Scattering2d scattering = *Scattering2d::Create({});
  const at::Tensor phi = scattering.low_pass().to(at::kDouble);
  const at::Tensor psi = scattering.wavelets().to(at::kDouble);
  EXPECT_NEAR(phi[0][0].item<double>(), 1.0, 1e-6);
  EXPECT_LT(psi.select(1, 0).select(1, 0).abs().max().item<double>(), 1e-6);
  const at::Tensor flipped = at::roll(at::flip(psi, {1, 2}), {1, 1}, {1, 2});  // psi(-w).
  const at::Tensor littlewood_paley = phi.square() + 0.5 * (psi.square() + flipped.square()).sum(0);
  EXPECT_LT(littlewood_paley.max().item<double>(), 1.1);
  EXPECT_GT(littlewood_paley.max().item<double>(), 0.5);
}

}  // namespace
}  // namespace dpfleet::models

#ifndef DPFLEET_ACCOUNTANT_PLD_H_
#define DPFLEET_ACCOUNTANT_PLD_H_

// Privacy loss distribution (PLD) accounting for T steps of the Poisson-subsampled Gaussian, the
// tightest general method (Koskela, Jalko and Honkela 2020; Google's dp_accounting).
//
// The privacy loss L = log(P(o) / Q(o)), o ~ P, of a pair of output distributions determines its
// whole (epsilon, delta) curve: delta(epsilon) = E[(1 - e^(epsilon - L))_+] (the hockey-stick
// divergence), and the loss of a composition is the sum of the losses, so T steps are a T-fold
// convolution of the one-step PLD. Under add/remove neighbours both orders of the pair matter:
//   remove: P = (1 - q) N(0, s^2) + q N(1, s^2) against Q = N(0, s^2),
//   add:    P = N(0, s^2) against Q = (1 - q) N(0, s^2) + q N(1, s^2),
// (s the noise multiplier; Mironov, Talwar and Zhang 2019, Section 3) and epsilon is the larger of
// the two.
//
// Each one-step PLD is discretised with the pessimistic connect-the-dots algorithm (Doroshenko,
// Ghazi, Kamath, Kumar and Manurangsi 2022, "Connect the Dots", Algorithm 1): on a grid of losses
// k * h it puts the masses whose hockey-stick curve interpolates the exact one-step delta(epsilon)
// at every grid point and lies above it in between, so the discrete pair dominates the true one;
// that dominance survives composition, so the reported epsilon is an upper bound. The T-fold
// convolution runs through one FFT, on a window outside which Chernoff bounds leave at most
// `tail_mass` on each side; that mass, and the round-off noise floor of the FFT, are added to
// delta.

#include <cstdint>

#include "absl/status/statusor.h"
#include "accountant/mechanism.h"

namespace dpfleet::accountant {

struct PldOptions {
  // Grid step h of privacy-loss values. Smaller is tighter and slower (linear in 1/h).
  double discretization = 1e-4;
  // Probability mass left outside the truncated supports, on each side; it is added to delta.
  double tail_mass = 1e-15;
  // Also compute at discretization 2h and report the difference (costs about half again).
  bool estimate_error = false;
};

struct PldResult {
  // Upper bound on epsilon at the requested delta (already net of delta_slack).
  double epsilon = 0;
  // Delta spent on truncation and FFT round-off, included in the delta the epsilon is valid for.
  double delta_slack = 0;
  // Length of the FFT that composed the steps.
  int64_t fft_size = 0;
  // With estimate_error: epsilon at discretization 2h minus epsilon at h. The pessimistic error
  // shrinks with h, so this estimates how far `epsilon` may still be above the true value. An
  // estimate, not a certified bound: only the upper bound itself is guaranteed.
  double discretization_error_estimate = 0;
};

// Returns the PLD epsilon of `mechanism` at `delta`. Errors: kInvalidArgument from
// ValidateMechanism or ValidateDelta, or for options not finite and > 0; kResourceExhausted when
// the composed grid would exceed 2^24 points (raise the discretization).
absl::StatusOr<PldResult> PldEpsilon(const SubsampledGaussian& mechanism, double delta,
                                     const PldOptions& options = {});

// Returns the PLD upper bound on delta(epsilon) of `mechanism`. Errors as PldEpsilon.
absl::StatusOr<double> PldDelta(const SubsampledGaussian& mechanism, double epsilon,
                                const PldOptions& options = {});

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_PLD_H_

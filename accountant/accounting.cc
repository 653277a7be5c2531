#include "accountant/accounting.h"

#include "absl/strings/str_cat.h"
#include "accountant/gaussian.h"
#include "accountant/rdp.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

absl::Status CheckMethodApplies(AccountingMethod method, double q) {
  if (method == AccountingMethod::kPld) {
    return absl::UnimplementedError("PLD accounting is not available yet; use rdp or exact");
  }
  if (method == AccountingMethod::kExact && q != 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("exact accounting needs full batch (sampling_rate 1), got sampling_rate ", q));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AccountingMethod> ParseAccountingMethod(const std::string& name) {
  if (name == "auto" || name.empty()) return AccountingMethod::kAuto;
  if (name == "rdp") return AccountingMethod::kRdp;
  if (name == "pld") return AccountingMethod::kPld;
  if (name == "exact") return AccountingMethod::kExact;
  return absl::InvalidArgumentError(
      absl::StrCat("accountant must be auto, rdp, pld or exact, got '", name, "'"));
}

std::string AccountingMethodName(AccountingMethod method) {
  switch (method) {
    case AccountingMethod::kAuto:
      return "auto";
    case AccountingMethod::kRdp:
      return "rdp";
    case AccountingMethod::kPld:
      return "pld";
    case AccountingMethod::kExact:
      return "exact";
  }
  return "unknown";
}

AccountingMethod ResolveMethod(AccountingMethod method, double q) {
  if (method != AccountingMethod::kAuto) return method;
  return q == 1.0 ? AccountingMethod::kExact : AccountingMethod::kRdp;
}

absl::StatusOr<double> MechanismEpsilon(const SubsampledGaussian& mechanism, double delta,
                                        AccountingMethod method) {
  method = ResolveMethod(method, mechanism.sampling_rate);
  DPFLEET_RETURN_IF_ERROR(CheckMethodApplies(method, mechanism.sampling_rate));
  if (method == AccountingMethod::kExact) {
    return FullBatchEpsilon(mechanism.noise_multiplier, mechanism.steps, delta);
  }
  DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder result, RdpEpsilon(mechanism, delta));
  return result.epsilon;
}

absl::StatusOr<CalibratedNoise> CalibrateNoise(double q, int64_t steps, double target_epsilon,
                                               double delta, AccountingMethod method) {
  method = ResolveMethod(method, q);
  DPFLEET_RETURN_IF_ERROR(CheckMethodApplies(method, q));
  if (method == AccountingMethod::kExact) return CalibrateFullBatchNoise(steps, target_epsilon, delta);
  return CalibrateNoiseMultiplier(q, steps, target_epsilon, delta);
}

}  // namespace dpfleet::accountant

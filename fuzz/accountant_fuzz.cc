// The accountant's requests, as its service turns them into ledger and accounting calls, in
// sequences against one fresh ledger per input. Input: records [kind][length][a serialized
// request of that kind, `length` bytes]; kind % 11 picks the request, kind / 11 % 3 the caller.
// After every request the ledger must still never admit beyond a dataset's budget, and no
// request may fail with an internal error or lose data.
//
// PLD is accounted as RDP here: one PLD call may take seconds by design (its cost is bounded per
// caller by the service instead), which would starve the fuzzer.

#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "accountant/accountant_service.h"
#include "accountant/accounting.h"
#include "accountant/ledger.h"
#include "accountant/privacy_filter.h"
#include "fuzz/fuzz_support.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::accountant {
namespace {

using fuzz::Require;

void RequireNoLedgerFault(const absl::Status& status, const std::string& what) {
  Require(status.code() != absl::StatusCode::kInternal &&
              status.code() != absl::StatusCode::kUnknown &&
              status.code() != absl::StatusCode::kDataLoss,
          what + " failed with " + status.ToString());
}

AccountingMethod Affordable(v1::AccountingMethod method) {
  return method == v1::ACCOUNTING_EXACT ? AccountingMethod::kExact : AccountingMethod::kRdp;
}

void CheckFilterText(const std::string& text) {
  const absl::StatusOr<PrivacyFilter> filter = PrivacyFilter::Parse(text);
  if (!filter.ok()) {
    Require(filter.status().code() == absl::StatusCode::kDataLoss, filter.status().ToString());
    return;
  }
  const absl::StatusOr<PrivacyFilter> again = PrivacyFilter::Parse(filter->Serialize());
  Require(again.ok() && again->Serialize() == filter->Serialize(), "filter round trip: " + text);
  AdmittedMechanisms admitted;
  Require(admitted.Compose({.sampling_rate = 0.01, .noise_multiplier = 1, .steps = 100}).ok(),
          "compose");
  const absl::StatusOr<double> epsilon = filter->Epsilon(admitted, 1e-5);
  Require(epsilon.ok() && !std::isnan(*epsilon) && *epsilon > 0, "filter level of " + text);
}

void Run(Ledger& ledger, int kind, const std::string& caller, const std::string& bytes,
         std::set<std::string>& datasets) {
  switch (kind) {
    case 0: {
      v1::RegisterDatasetRequest r;
      if (!r.ParseFromString(bytes)) return;
      const absl::Status s =
          ledger.RegisterDataset(caller, r.dataset(), r.epsilon_budget(), r.delta());
      RequireNoLedgerFault(s, "RegisterDataset");
      if (s.ok()) datasets.insert(r.dataset());
      return;
    }
    case 1: {
      v1::GetBudgetRequest r;
      if (!r.ParseFromString(bytes)) return;
      RequireNoLedgerFault(ledger.GetBudget(r.dataset()).status(), "GetBudget");
      if (r.has_mechanism()) {
        RequireNoLedgerFault(ledger
                                 .MaxSteps(r.dataset(), r.mechanism().sampling_rate(),
                                           r.mechanism().noise_multiplier())
                                 .status(),
                             "MaxSteps");
      }
      return;
    }
    case 2: {
      v1::ReserveRequest r;
      if (!r.ParseFromString(bytes)) return;
      const absl::StatusOr<SubsampledGaussian> mechanism = MechanismFromProto(r.mechanism());
      if (!mechanism.ok()) return;
      RequireNoLedgerFault(ledger
                               .Reserve(caller, {.dataset = r.dataset(),
                                                 .job_id = r.job_id(),
                                                 .mechanism = *mechanism,
                                                 .clip_norm = r.clip_norm(),
                                                 .idempotency_key = r.idempotency_key(),
                                                 .submitter = r.submitter()})
                               .status(),
                           "Reserve");
      return;
    }
    case 3: {
      v1::LeaseRequest r;
      if (!r.ParseFromString(bytes)) return;
      const absl::StatusOr<std::string> session = SessionOfGroup(r);
      if (!session.ok()) return;
      RequireNoLedgerFault(
          ledger.Lease(caller, r.reservation_id(), *session, r.first_step(), r.end_step()).status(),
          "Lease");
      return;
    }
    case 4: {
      v1::CommitRequest r;
      if (!r.ParseFromString(bytes)) return;
      RequireNoLedgerFault(ledger.Commit(caller, r.reservation_id(), r.steps_run()).status(),
                           "Commit");
      return;
    }
    case 5: {
      v1::ReleaseRequest r;
      if (!r.ParseFromString(bytes)) return;
      RequireNoLedgerFault(ledger.Release(caller, r.reservation_id()), "Release");
      return;
    }
    case 6:
    case 7: {
      v1::GrantAccessRequest r;
      if (!r.ParseFromString(bytes)) return;
      RequireNoLedgerFault(kind == 6 ? ledger.GrantAccess(caller, r.dataset(), r.principal())
                                     : ledger.RevokeAccess(caller, r.dataset(), r.principal()),
                           "GrantAccess/RevokeAccess");
      return;
    }
    case 8: {
      v1::ComputeEpsilonRequest r;
      if (!r.ParseFromString(bytes)) return;
      const absl::StatusOr<SubsampledGaussian> mechanism = MechanismFromProto(r.mechanism());
      if (!mechanism.ok()) return;
      const absl::StatusOr<double> epsilon =
          MechanismEpsilon(*mechanism, r.delta(), Affordable(r.method()));
      if (epsilon.ok()) {
        Require(*epsilon >= 0 && !std::isnan(*epsilon), absl::StrCat("epsilon ", *epsilon));
      }
      return;
    }
    case 9: {
      v1::CalibrateNoiseRequest r;
      if (!r.ParseFromString(bytes)) return;
      const absl::StatusOr<CalibratedNoise> noise = CalibrateNoise(
          r.sampling_rate(), r.steps(), r.target_epsilon(), r.delta(), Affordable(r.method()));
      if (noise.ok()) {
        Require(std::isfinite(noise->noise_multiplier) && noise->noise_multiplier > 0,
                absl::StrCat("calibrated sigma ", noise->noise_multiplier));
        Require(noise->epsilon <= r.target_epsilon() + 1e-9,
                absl::StrCat("calibrated epsilon ", noise->epsilon, " above the target ",
                             r.target_epsilon()));
      }
      return;
    }
    default:
      CheckFilterText(bytes);  // What the ledger stores for each dataset's filter.
      return;
  }
}

}  // namespace
}  // namespace dpfleet::accountant

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dpfleet::accountant;
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open({.path = ":memory:"});
  dpfleet::fuzz::Require(ledger.ok(), "open: " + ledger.status().ToString());
  static const char* const kCallers[] = {"admin", "coordinator", "coordinator-b"};
  std::set<std::string> datasets;
  size_t at = 0;
  while (at + 2 <= size) {
    const int kind = data[at];
    const size_t length = std::min<size_t>(data[at + 1], size - at - 2);
    const std::string bytes(reinterpret_cast<const char*>(data + at + 2), length);
    at += 2 + length;
    Run(**ledger, kind % 11, kCallers[kind / 11 % 3], bytes, datasets);
    for (const std::string& dataset : datasets) {
      const absl::StatusOr<BudgetSummary> budget = (*ledger)->GetBudget(dataset);
      dpfleet::fuzz::Require(budget.ok(), "GetBudget of a registered dataset");
      dpfleet::fuzz::Require(
          budget->epsilon_reserved <= budget->epsilon_budget * (1 + 1e-12),
          absl::StrCat("dataset '", dataset, "' admitted ", budget->epsilon_reserved, " of ",
                       budget->epsilon_budget));
      dpfleet::fuzz::Require(budget->epsilon_committed <= budget->epsilon_reserved * (1 + 1e-12),
                             "committed above committed + reserved");
    }
  }
  return 0;
}

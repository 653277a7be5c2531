#include "accountant/ledger.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "accountant/privacy_filter.h"
#include "common/random_id.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

// On-disk charge states. Frozen: never renumber.
enum ChargeState : int64_t {
  kReserved = 1,
  kCommitted = 2,
  kReleased = 3,
};

// Version 2 added charges.principal; version 3 charges.clip_norm and charges.submitter, the
// leases and the grants. Older ledgers are migrated: reservations of version 1 have no principal
// ('') and any coordinator may settle them; reservations before version 3 have no clip norm (0)
// and cannot be leased, so they are settled without running a step; no one holds a grant on their
// datasets until an admin gives one.
constexpr int kSchemaVersion = 4;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS datasets (
  name TEXT PRIMARY KEY,
  epsilon_budget REAL NOT NULL,
  delta REAL NOT NULL,
  created_unix_ms INTEGER NOT NULL,
  filter TEXT  -- PrivacyFilter::Serialize(); NULL until the first reservation is admitted.
);
CREATE TABLE IF NOT EXISTS charges (
  reservation_id TEXT PRIMARY KEY,
  dataset TEXT NOT NULL REFERENCES datasets(name),
  job_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  sampling_rate REAL NOT NULL,
  noise_multiplier REAL NOT NULL,
  reserved_steps INTEGER NOT NULL,
  committed_steps INTEGER NOT NULL DEFAULT 0,
  state INTEGER NOT NULL,
  updated_unix_ms INTEGER NOT NULL,
  principal TEXT NOT NULL DEFAULT '',
  clip_norm REAL NOT NULL DEFAULT 0,
  submitter TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS charges_by_dataset ON charges(dataset, state);
CREATE TABLE IF NOT EXISTS leases (
  reservation_id TEXT NOT NULL REFERENCES charges(reservation_id),
  session TEXT NOT NULL,
  first_step INTEGER NOT NULL,
  end_step INTEGER NOT NULL,
  updated_unix_ms INTEGER NOT NULL,
  PRIMARY KEY (reservation_id, session)
);
CREATE TABLE IF NOT EXISTS grants (
  dataset TEXT NOT NULL REFERENCES datasets(name),
  principal TEXT NOT NULL,
  granted_unix_ms INTEGER NOT NULL,
  PRIMARY KEY (dataset, principal)
);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  unix_ms INTEGER NOT NULL,
  principal TEXT NOT NULL,
  operation TEXT NOT NULL,
  detail TEXT NOT NULL,
  outcome TEXT NOT NULL
);
)sql";

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<std::string> NewReservationId() { return RandomId("res-", 12); }

// OK when `principal` may settle a reservation that `owner` made: only its maker may, so that no
// other holder of the coordinator role can commit a running job's reservation short or release it.
// Reservations of a version-1 ledger have no owner.
absl::Status CheckOwner(const std::string& reservation_id, const std::string& owner,
                        const std::string& principal, const char* what) {
  if (owner.empty() || owner == principal) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("reservation '", reservation_id,
                                                  "' was made by '", owner, "'; '", principal,
                                                  "' may not ", what, " it"));
}

// The refusal `status`, saying so when it could not be written to the audit log (`audited`): the
// refusal stands either way, and no error is dropped.
absl::Status WithAuditFailure(const absl::Status& status, const absl::Status& audited) {
  if (audited.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(status.message(), " (and the refusal could not be audited: ",
                                   audited.message(), ")"));
}

std::string Describe(const SubsampledGaussian& m) {
  return absl::StrFormat("q=%.17g sigma=%.17g steps=%d", m.sampling_rate, m.noise_multiplier,
                         m.steps);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const LedgerOptions& options) {
  DPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(options.path));
  DPFLEET_ASSIGN_OR_RETURN(auto version_query, db->Prepare("PRAGMA user_version"));
  DPFLEET_ASSIGN_OR_RETURN(const bool has_row, version_query->Step());
  const int64_t version = has_row ? version_query->ColumnInt(0) : 0;
  version_query.reset();
  if (version < 0 || version > kSchemaVersion) {
    return absl::DataLossError(absl::StrCat("ledger ", options.path, " has schema version ",
                                            version, "; this accountant understands ",
                                            kSchemaVersion));
  }
  DPFLEET_RETURN_IF_ERROR(db->Transaction([&] {
    if (version == 1) {
      DPFLEET_RETURN_IF_ERROR(
          db->Exec("ALTER TABLE charges ADD COLUMN principal TEXT NOT NULL DEFAULT ''"));
    }
    if (version == 1 || version == 2) {
      DPFLEET_RETURN_IF_ERROR(
          db->Exec("ALTER TABLE charges ADD COLUMN clip_norm REAL NOT NULL DEFAULT 0; "
                   "ALTER TABLE charges ADD COLUMN submitter TEXT NOT NULL DEFAULT ''"));
    }
    if (version >= 1 && version <= 3) {
      // Datasets charged before filters were fitted keep the filter they were admitted under.
      DPFLEET_RETURN_IF_ERROR(db->Exec("ALTER TABLE datasets ADD COLUMN filter TEXT"));
      DPFLEET_ASSIGN_OR_RETURN(auto legacy,
                               db->Prepare("UPDATE datasets SET filter = ? "
                                           "WHERE name IN (SELECT dataset FROM charges)"));
      DPFLEET_RETURN_IF_ERROR(legacy->Bind(1, PrivacyFilter::Legacy().Serialize()).Run());
    }
    DPFLEET_RETURN_IF_ERROR(db->Exec(kSchema));
    return db->Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion));
  }));
  return std::unique_ptr<Ledger>(new Ledger(std::move(db)));
}

absl::Status Ledger::Audit(const std::string& principal, const std::string& operation,
                           const std::string& detail, const absl::Status& outcome) {
  DPFLEET_ASSIGN_OR_RETURN(
      auto insert,
      db_->Prepare("INSERT INTO audit_log(unix_ms, principal, operation, detail, outcome) "
                   "VALUES (?, ?, ?, ?, ?)"));
  return insert->Bind(1, NowUnixMs())
      .Bind(2, principal)
      .Bind(3, operation)
      .Bind(4, detail)
      .Bind(5, outcome.ok() ? std::string("OK") : outcome.ToString())
      .Run();
}

absl::StatusOr<const RdpCurve*> Ledger::OneStepCurve(double q, double sigma) {
  const auto key = std::make_pair(q, sigma);
  auto it = one_step_curves_.find(key);
  if (it == one_step_curves_.end()) {
    RdpCurve curve;
    DPFLEET_RETURN_IF_ERROR(
        curve.Compose({.sampling_rate = q, .noise_multiplier = sigma, .steps = 1}));
    it = one_step_curves_.emplace(key, std::move(curve)).first;
  }
  return &it->second;
}

absl::StatusOr<AdmittedMechanisms> Ledger::ComposeCharges(const std::string& dataset,
                                                          bool include_reserved) {
  DPFLEET_ASSIGN_OR_RETURN(
      auto query, db_->Prepare("SELECT sampling_rate, noise_multiplier, state, reserved_steps, "
                               "committed_steps FROM charges WHERE dataset = ? AND state != ?"));
  query->Bind(1, dataset).Bind(2, int64_t{kReleased});
  AdmittedMechanisms total;
  while (true) {
    DPFLEET_ASSIGN_OR_RETURN(const bool has_row, query->Step());
    if (!has_row) break;
    const int64_t state = query->ColumnInt(2);
    if (state == kReserved && !include_reserved) continue;
    const int64_t steps = state == kReserved ? query->ColumnInt(3) : query->ColumnInt(4);
    const double sigma = query->ColumnDouble(1);
    DPFLEET_ASSIGN_OR_RETURN(const RdpCurve* one_step, OneStepCurve(query->ColumnDouble(0), sigma));
    total.ComposeSteps(*one_step, steps, sigma);
  }
  return total;
}

absl::StatusOr<std::optional<PrivacyFilter>> Ledger::FilterOf(const std::string& dataset) {
  DPFLEET_ASSIGN_OR_RETURN(auto query, db_->Prepare("SELECT filter FROM datasets WHERE name = ?"));
  query->Bind(1, dataset);
  DPFLEET_ASSIGN_OR_RETURN(const bool exists, query->Step());
  if (!exists) return absl::NotFoundError(absl::StrCat("unknown dataset '", dataset, "'"));
  if (query->ColumnIsNull(0)) return std::nullopt;
  DPFLEET_ASSIGN_OR_RETURN(PrivacyFilter filter, PrivacyFilter::Parse(query->ColumnText(0)));
  return filter;
}

absl::Status Ledger::RegisterDataset(const std::string& principal, const std::string& dataset,
                                     double epsilon_budget, double delta) {
  absl::MutexLock lock(&mu_);
  const std::string detail =
      absl::StrFormat("dataset=%s epsilon=%.17g delta=%.17g", dataset, epsilon_budget, delta);
  absl::Status status = [&]() -> absl::Status {
    if (dataset.empty()) return absl::InvalidArgumentError("dataset name must not be empty");
    if (!std::isfinite(epsilon_budget) || epsilon_budget <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("epsilon_budget must be finite and > 0, got ", epsilon_budget));
    }
    DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
    return db_->Transaction([&]() -> absl::Status {
      DPFLEET_ASSIGN_OR_RETURN(
          auto existing, db_->Prepare("SELECT epsilon_budget, delta FROM datasets WHERE name = ?"));
      existing->Bind(1, dataset);
      DPFLEET_ASSIGN_OR_RETURN(const bool exists, existing->Step());
      if (exists) {
        if (existing->ColumnDouble(0) == epsilon_budget && existing->ColumnDouble(1) == delta) {
          return Audit(principal, "RegisterDataset", detail + " (already registered)",
                       absl::OkStatus());
        }
        return absl::AlreadyExistsError(
            absl::StrCat("dataset '", dataset, "' is registered with epsilon_budget ",
                         existing->ColumnDouble(0), " and delta ", existing->ColumnDouble(1)));
      }
      DPFLEET_ASSIGN_OR_RETURN(auto insert,
                               db_->Prepare("INSERT INTO datasets(name, epsilon_budget, delta, "
                                            "created_unix_ms) VALUES (?, ?, ?, ?)"));
      DPFLEET_RETURN_IF_ERROR(insert->Bind(1, dataset)
                                  .Bind(2, epsilon_budget)
                                  .Bind(3, delta)
                                  .Bind(4, NowUnixMs())
                                  .Run());
      DPFLEET_ASSIGN_OR_RETURN(auto grant, db_->Prepare("INSERT INTO grants VALUES (?, ?, ?)"));
      DPFLEET_RETURN_IF_ERROR(
          grant->Bind(1, dataset).Bind(2, principal).Bind(3, NowUnixMs()).Run());
      return Audit(principal, "RegisterDataset", detail, absl::OkStatus());
    });
  }();
  if (!status.ok())
    status = WithAuditFailure(status, Audit(principal, "RegisterDataset", detail, status));
  return status;
}

absl::StatusOr<BudgetSummary> Ledger::GetBudgetLocked(const std::string& dataset) {
  DPFLEET_ASSIGN_OR_RETURN(
      auto query, db_->Prepare("SELECT epsilon_budget, delta FROM datasets WHERE name = ?"));
  query->Bind(1, dataset);
  DPFLEET_ASSIGN_OR_RETURN(const bool exists, query->Step());
  if (!exists) return absl::NotFoundError(absl::StrCat("unknown dataset '", dataset, "'"));
  BudgetSummary summary;
  summary.dataset = dataset;
  summary.epsilon_budget = query->ColumnDouble(0);
  summary.delta = query->ColumnDouble(1);
  DPFLEET_ASSIGN_OR_RETURN(const std::optional<PrivacyFilter> filter, FilterOf(dataset));
  // Until a filter is fixed nothing was admitted: every level is 0.
  if (filter.has_value()) {
    summary.filter = filter->Serialize();
    DPFLEET_ASSIGN_OR_RETURN(const AdmittedMechanisms committed, ComposeCharges(dataset, false));
    DPFLEET_ASSIGN_OR_RETURN(const AdmittedMechanisms reserved, ComposeCharges(dataset, true));
    DPFLEET_ASSIGN_OR_RETURN(summary.epsilon_committed, filter->Epsilon(committed, summary.delta));
    DPFLEET_ASSIGN_OR_RETURN(summary.epsilon_reserved, filter->Epsilon(reserved, summary.delta));
    DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder fixed, committed.rdp().Epsilon(summary.delta));
    summary.epsilon_committed_fixed_composition = fixed.epsilon;
  }
  summary.epsilon_remaining = std::max(0.0, summary.epsilon_budget - summary.epsilon_reserved);
  DPFLEET_ASSIGN_OR_RETURN(
      auto open, db_->Prepare("SELECT count(*) FROM charges WHERE dataset = ? AND state = ?"));
  open->Bind(1, dataset).Bind(2, int64_t{kReserved});
  DPFLEET_ASSIGN_OR_RETURN(const bool counted, open->Step());
  summary.open_reservations = counted ? static_cast<int>(open->ColumnInt(0)) : 0;
  return summary;
}

absl::StatusOr<BudgetSummary> Ledger::GetBudget(const std::string& dataset) {
  absl::MutexLock lock(&mu_);
  return GetBudgetLocked(dataset);
}

absl::StatusOr<int64_t> Ledger::MaxSteps(const std::string& dataset, double q, double sigma) {
  absl::MutexLock lock(&mu_);
  DPFLEET_ASSIGN_OR_RETURN(const BudgetSummary budget, GetBudgetLocked(dataset));
  DPFLEET_ASSIGN_OR_RETURN(const std::optional<PrivacyFilter> filter, FilterOf(dataset));
  if (!filter.has_value()) {
    return MaxStepsOfFirstJob(q, sigma, budget.epsilon_budget, budget.delta);
  }
  DPFLEET_ASSIGN_OR_RETURN(const AdmittedMechanisms reserved, ComposeCharges(dataset, true));
  return filter->MaxSteps(reserved, q, sigma, budget.epsilon_budget, budget.delta);
}

absl::Status Ledger::SetGrant(const std::string& principal, const std::string& dataset,
                              const std::string& grantee, bool granted, const char* operation) {
  const std::string detail = absl::StrCat("dataset=", dataset, " principal=", grantee);
  absl::Status status = [&]() -> absl::Status {
    if (grantee.empty()) return absl::InvalidArgumentError("principal must not be empty");
    return db_->Transaction([&]() -> absl::Status {
      DPFLEET_RETURN_IF_ERROR(GetBudgetLocked(dataset).status());
      DPFLEET_ASSIGN_OR_RETURN(
          auto change,
          db_->Prepare(granted ? "INSERT OR IGNORE INTO grants VALUES (?, ?, ?)"
                               : "DELETE FROM grants WHERE dataset = ? AND principal = ?"));
      change->Bind(1, dataset).Bind(2, grantee);
      if (granted) change->Bind(3, NowUnixMs());
      DPFLEET_RETURN_IF_ERROR(change->Run());
      return Audit(principal, operation, detail, absl::OkStatus());
    });
  }();
  if (!status.ok()) status = WithAuditFailure(status, Audit(principal, operation, detail, status));
  return status;
}

absl::Status Ledger::GrantAccess(const std::string& principal, const std::string& dataset,
                                 const std::string& grantee) {
  absl::MutexLock lock(&mu_);
  return SetGrant(principal, dataset, grantee, true, "GrantAccess");
}

absl::Status Ledger::RevokeAccess(const std::string& principal, const std::string& dataset,
                                  const std::string& grantee) {
  absl::MutexLock lock(&mu_);
  return SetGrant(principal, dataset, grantee, false, "RevokeAccess");
}

absl::StatusOr<Reservation> Ledger::Reserve(const std::string& principal,
                                            const ReservationRequest& request) {
  absl::MutexLock lock(&mu_);
  const SubsampledGaussian& mechanism = request.mechanism;
  const std::string detail = absl::StrFormat(
      "dataset=%s job=%s key=%s submitter=%s %s clip_norm=%.17g", request.dataset, request.job_id,
      request.idempotency_key, request.submitter, Describe(mechanism), request.clip_norm);
  Reservation reservation;
  absl::Status status = [&]() -> absl::Status {
    DPFLEET_RETURN_IF_ERROR(ValidateMechanism(mechanism));
    if (!std::isfinite(request.clip_norm) || request.clip_norm <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("clip_norm must be finite and > 0, got ", request.clip_norm));
    }
    if (request.job_id.empty()) return absl::InvalidArgumentError("job_id must not be empty");
    if (request.idempotency_key.empty())
      return absl::InvalidArgumentError("idempotency_key must not be empty");
    if (request.submitter.empty()) return absl::InvalidArgumentError("submitter must not be empty");
    return db_->Transaction([&]() -> absl::Status {
      DPFLEET_ASSIGN_OR_RETURN(const BudgetSummary budget, GetBudgetLocked(request.dataset));
      DPFLEET_ASSIGN_OR_RETURN(
          auto grant, db_->Prepare("SELECT 1 FROM grants WHERE dataset = ? AND principal = ?"));
      grant->Bind(1, request.dataset).Bind(2, request.submitter);
      DPFLEET_ASSIGN_OR_RETURN(const bool granted, grant->Step());
      if (!granted) {
        return absl::PermissionDeniedError(
            absl::StrCat("'", request.submitter, "' holds no grant on dataset '", request.dataset,
                         "' (an admin gives one with dpctl grant)"));
      }
      DPFLEET_ASSIGN_OR_RETURN(
          auto previous,
          db_->Prepare("SELECT reservation_id, dataset, job_id, sampling_rate, noise_multiplier, "
                       "reserved_steps, principal, clip_norm, submitter FROM charges "
                       "WHERE idempotency_key = ?"));
      previous->Bind(1, request.idempotency_key);
      DPFLEET_ASSIGN_OR_RETURN(const bool replayed, previous->Step());
      if (replayed) {
        if (previous->ColumnText(1) != request.dataset ||
            previous->ColumnText(2) != request.job_id ||
            previous->ColumnDouble(3) != mechanism.sampling_rate ||
            previous->ColumnDouble(4) != mechanism.noise_multiplier ||
            previous->ColumnInt(5) != mechanism.steps || previous->ColumnText(6) != principal ||
            previous->ColumnDouble(7) != request.clip_norm ||
            previous->ColumnText(8) != request.submitter) {
          return absl::AlreadyExistsError(absl::StrCat("idempotency_key '", request.idempotency_key,
                                                       "' was used for a different reservation (",
                                                       previous->ColumnText(0), ")"));
        }
        reservation.reservation_id = previous->ColumnText(0);
        reservation.epsilon_after = budget.epsilon_reserved;
        return Audit(principal, "Reserve", detail + " replay", absl::OkStatus());
      }
      // The dataset's first admitted reservation fixes its filter (privacy_filter.h).
      DPFLEET_ASSIGN_OR_RETURN(std::optional<PrivacyFilter> filter, FilterOf(request.dataset));
      const bool fixes_filter = !filter.has_value();
      if (fixes_filter) {
        DPFLEET_ASSIGN_OR_RETURN(
            filter, PrivacyFilter::FittedTo(mechanism, budget.epsilon_budget, budget.delta));
      }
      DPFLEET_ASSIGN_OR_RETURN(AdmittedMechanisms total, ComposeCharges(request.dataset, true));
      DPFLEET_RETURN_IF_ERROR(total.Compose(mechanism));
      DPFLEET_ASSIGN_OR_RETURN(const double after, filter->Epsilon(total, budget.delta));
      if (after > budget.epsilon_budget) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "dataset '%s' cannot pay for job '%s': its epsilon would reach %.4f of a budget of "
            "%.4f (delta %g; %.4f already committed or reserved; filter: %s)",
            request.dataset, request.job_id, after, budget.epsilon_budget, budget.delta,
            budget.epsilon_reserved, filter->Describe()));
      }
      if (fixes_filter) {
        DPFLEET_ASSIGN_OR_RETURN(auto fix,
                                 db_->Prepare("UPDATE datasets SET filter = ? WHERE name = ?"));
        DPFLEET_RETURN_IF_ERROR(fix->Bind(1, filter->Serialize()).Bind(2, request.dataset).Run());
      }
      DPFLEET_ASSIGN_OR_RETURN(reservation.reservation_id, NewReservationId());
      reservation.epsilon_after = after;
      DPFLEET_ASSIGN_OR_RETURN(
          auto insert,
          db_->Prepare("INSERT INTO charges(reservation_id, dataset, job_id, idempotency_key, "
                       "sampling_rate, noise_multiplier, reserved_steps, state, updated_unix_ms, "
                       "principal, clip_norm, submitter) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
      DPFLEET_RETURN_IF_ERROR(insert->Bind(1, reservation.reservation_id)
                                  .Bind(2, request.dataset)
                                  .Bind(3, request.job_id)
                                  .Bind(4, request.idempotency_key)
                                  .Bind(5, mechanism.sampling_rate)
                                  .Bind(6, mechanism.noise_multiplier)
                                  .Bind(7, mechanism.steps)
                                  .Bind(8, int64_t{kReserved})
                                  .Bind(9, NowUnixMs())
                                  .Bind(10, principal)
                                  .Bind(11, request.clip_norm)
                                  .Bind(12, request.submitter)
                                  .Run());
      return Audit(principal, "Reserve", detail + " -> " + reservation.reservation_id,
                   absl::OkStatus());
    });
  }();
  if (!status.ok()) {
    status = WithAuditFailure(status, Audit(principal, "Reserve", detail, status));
    return status;
  }
  return reservation;
}

absl::StatusOr<Ledger::Charge> Ledger::OwnedCharge(const std::string& principal,
                                                   const std::string& reservation_id,
                                                   const char* what) {
  DPFLEET_ASSIGN_OR_RETURN(
      auto query,
      db_->Prepare("SELECT dataset, job_id, sampling_rate, noise_multiplier, clip_norm, state, "
                   "reserved_steps, committed_steps, principal FROM charges "
                   "WHERE reservation_id = ?"));
  query->Bind(1, reservation_id);
  DPFLEET_ASSIGN_OR_RETURN(const bool exists, query->Step());
  if (!exists) {
    return absl::NotFoundError(absl::StrCat("unknown reservation '", reservation_id, "'"));
  }
  DPFLEET_RETURN_IF_ERROR(CheckOwner(reservation_id, query->ColumnText(8), principal, what));
  return Charge{.dataset = query->ColumnText(0),
                .job_id = query->ColumnText(1),
                .sampling_rate = query->ColumnDouble(2),
                .noise_multiplier = query->ColumnDouble(3),
                .clip_norm = query->ColumnDouble(4),
                .state = query->ColumnInt(5),
                .reserved_steps = query->ColumnInt(6),
                .committed_steps = query->ColumnInt(7)};
}

absl::StatusOr<int64_t> Ledger::LeasedSteps(const std::string& reservation_id) {
  DPFLEET_ASSIGN_OR_RETURN(
      auto query, db_->Prepare("SELECT COALESCE(SUM(end_step - first_step), 0) FROM leases "
                               "WHERE reservation_id = ?"));
  query->Bind(1, reservation_id);
  DPFLEET_ASSIGN_OR_RETURN(const bool has_row, query->Step());
  return has_row ? query->ColumnInt(0) : 0;
}

absl::StatusOr<LeaseGrant> Ledger::Lease(const std::string& principal,
                                         const std::string& reservation_id,
                                         const std::string& session, int64_t first_step,
                                         int64_t end_step) {
  absl::MutexLock lock(&mu_);
  const std::string detail = absl::StrCat("reservation=", reservation_id, " session=", session,
                                          " steps=[", first_step, ", ", end_step, ")");
  LeaseGrant grant;
  absl::Status status = [&]() -> absl::Status {
    if (session.empty()) return absl::InvalidArgumentError("the group's session is empty");
    if (first_step < 0 || end_step < first_step) {
      return absl::InvalidArgumentError(absl::StrCat("step range [", first_step, ", ", end_step,
                                                     ") is not a range of step indices"));
    }
    return db_->Transaction([&]() -> absl::Status {
      DPFLEET_ASSIGN_OR_RETURN(const Charge charge,
                               OwnedCharge(principal, reservation_id, "lease"));
      grant.dataset = charge.dataset;
      grant.job_id = charge.job_id;
      grant.sampling_rate = charge.sampling_rate;
      grant.noise_multiplier = charge.noise_multiplier;
      grant.clip_norm = charge.clip_norm;
      const int64_t state = charge.state;
      const int64_t reserved_steps = charge.reserved_steps;
      if (state != kReserved) {
        return absl::FailedPreconditionError(absl::StrCat(
            "reservation '", reservation_id, "' was ",
            state == kCommitted ? "committed" : "released", "; its steps can no longer run"));
      }
      if (grant.clip_norm <= 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("reservation '", reservation_id,
                         "' was made before admission tickets and states no "
                         "clip norm; it cannot be leased"));
      }
      DPFLEET_ASSIGN_OR_RETURN(grant.steps_leased, LeasedSteps(reservation_id));
      DPFLEET_ASSIGN_OR_RETURN(auto existing,
                               db_->Prepare("SELECT first_step, end_step FROM leases "
                                            "WHERE reservation_id = ? AND session = ?"));
      existing->Bind(1, reservation_id).Bind(2, session);
      DPFLEET_ASSIGN_OR_RETURN(const bool known_group, existing->Step());
      grant.first_step = known_group ? existing->ColumnInt(0) : first_step;
      grant.end_step = known_group ? existing->ColumnInt(1) : first_step;
      existing.reset();
      if (grant.first_step != first_step) {
        return absl::InvalidArgumentError(absl::StrCat("the group's lease on reservation '",
                                                       reservation_id, "' starts at step ",
                                                       grant.first_step, ", not ", first_step));
      }
      if (end_step <= grant.end_step && known_group) {  // A repeat: nothing new is covered.
        return Audit(principal, "Lease", detail + " repeat", absl::OkStatus());
      }
      const int64_t added =
          std::min(end_step - grant.end_step, reserved_steps - grant.steps_leased);
      if (end_step > grant.end_step && added <= 0) {
        return absl::ResourceExhaustedError(
            absl::StrCat("reservation '", reservation_id, "' has leased all its ", reserved_steps,
                         " steps; step ", grant.end_step, " needs a new reservation"));
      }
      grant.end_step += std::max<int64_t>(added, 0);
      grant.steps_leased += std::max<int64_t>(added, 0);
      DPFLEET_ASSIGN_OR_RETURN(
          auto upsert, db_->Prepare("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)"));
      DPFLEET_RETURN_IF_ERROR(upsert->Bind(1, reservation_id)
                                  .Bind(2, session)
                                  .Bind(3, grant.first_step)
                                  .Bind(4, grant.end_step)
                                  .Bind(5, NowUnixMs())
                                  .Run());
      return Audit(principal, "Lease",
                   absl::StrCat(detail, " -> [", grant.first_step, ", ", grant.end_step, ")"),
                   absl::OkStatus());
    });
  }();
  if (!status.ok()) {
    status = WithAuditFailure(status, Audit(principal, "Lease", detail, status));
    return status;
  }
  return grant;
}

absl::StatusOr<CommitResult> Ledger::Commit(const std::string& principal,
                                            const std::string& reservation_id, int64_t steps_run) {
  absl::MutexLock lock(&mu_);
  std::string detail = absl::StrCat("reservation=", reservation_id, " steps_run=", steps_run);
  CommitResult result;
  absl::Status status = db_->Transaction([&]() -> absl::Status {
    DPFLEET_ASSIGN_OR_RETURN(const Charge charge, OwnedCharge(principal, reservation_id, "commit"));
    const std::string& dataset = charge.dataset;
    const int64_t state = charge.state;
    const int64_t reserved_steps = charge.reserved_steps;
    const int64_t already_committed = charge.committed_steps;
    if (steps_run < 0 || steps_run > reserved_steps) {
      return absl::InvalidArgumentError(absl::StrCat("steps_run must be in [0, ", reserved_steps,
                                                     "] for reservation '", reservation_id,
                                                     "', got ", steps_run));
    }
    if (state == kReleased) {
      return absl::FailedPreconditionError(
          absl::StrCat("reservation '", reservation_id, "' was released"));
    }
    // Leased steps may have run whatever the caller says: they are charged.
    DPFLEET_ASSIGN_OR_RETURN(const int64_t leased, LeasedSteps(reservation_id));
    result.steps_committed = std::max(steps_run, leased);
    if (result.steps_committed > steps_run) {
      absl::StrAppend(&detail, " charged ", result.steps_committed, " (leased)");
    }
    if (state == kCommitted && already_committed != result.steps_committed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "reservation '", reservation_id, "' was committed with ", already_committed, " steps"));
    }
    if (state == kReserved) {
      DPFLEET_ASSIGN_OR_RETURN(auto update,
                               db_->Prepare("UPDATE charges SET state = ?, committed_steps = ?, "
                                            "updated_unix_ms = ? WHERE reservation_id = ?"));
      DPFLEET_RETURN_IF_ERROR(update->Bind(1, int64_t{kCommitted})
                                  .Bind(2, result.steps_committed)
                                  .Bind(3, NowUnixMs())
                                  .Bind(4, reservation_id)
                                  .Run());
    }
    DPFLEET_ASSIGN_OR_RETURN(const BudgetSummary budget, GetBudgetLocked(dataset));
    result.epsilon_committed = budget.epsilon_committed;
    return Audit(principal, "Commit", detail, absl::OkStatus());
  });
  if (!status.ok()) {
    status = WithAuditFailure(status, Audit(principal, "Commit", detail, status));
    return status;
  }
  return result;
}

absl::Status Ledger::Release(const std::string& principal, const std::string& reservation_id) {
  absl::MutexLock lock(&mu_);
  const std::string detail = absl::StrCat("reservation=", reservation_id);
  absl::Status status = db_->Transaction([&]() -> absl::Status {
    DPFLEET_ASSIGN_OR_RETURN(const Charge charge,
                             OwnedCharge(principal, reservation_id, "release"));
    const int64_t state = charge.state;
    if (state == kCommitted) {
      return absl::FailedPreconditionError(
          absl::StrCat("reservation '", reservation_id, "' was committed; it cannot be released"));
    }
    if (state == kReserved) {
      DPFLEET_ASSIGN_OR_RETURN(const int64_t leased, LeasedSteps(reservation_id));
      if (leased > 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("reservation '", reservation_id, "' has leased ", leased,
                         " steps to workers, which may have run them; commit it instead"));
      }
      DPFLEET_ASSIGN_OR_RETURN(
          auto update,
          db_->Prepare(
              "UPDATE charges SET state = ?, updated_unix_ms = ? WHERE reservation_id = ?"));
      DPFLEET_RETURN_IF_ERROR(
          update->Bind(1, int64_t{kReleased}).Bind(2, NowUnixMs()).Bind(3, reservation_id).Run());
    }
    return Audit(principal, "Release", detail, absl::OkStatus());
  });
  if (!status.ok()) status = WithAuditFailure(status, Audit(principal, "Release", detail, status));
  return status;
}

}  // namespace dpfleet::accountant

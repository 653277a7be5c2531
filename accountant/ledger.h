#ifndef DPFLEET_ACCOUNTANT_LEDGER_H_
#define DPFLEET_ACCOUNTANT_LEDGER_H_

// The durable record of every dataset's privacy budget and every charge against it.
//
// A charge is a reservation for `steps` steps of a SubsampledGaussian mechanism. It is created by
// Reserve, and resolved by Commit (the steps that actually ran become a permanent charge) or
// Release (nothing ran). Until it is resolved a reservation counts as if all its steps ran, so a
// job whose fate is unknown (its coordinator crashed) can never make the ledger under-count.
//
// Leases: before a group of workers runs steps of a reservation, it leases them (Lease), and the
// accountant signs a ticket the workers check (common/admission_ticket.h). A leased step counts
// as run: Commit charges at least the leased steps, and a reservation that leased a step cannot be
// released. The caller's word on how many steps ran can raise a charge, never lower it below what
// the workers could have run.
//
// Access: a reservation names the submitter it is made for, who must hold a grant on the dataset
// (GrantAccess; registering a dataset grants its registrant).
//
// Admission: Reserve admits a charge only if the dataset's privacy filter (privacy_filter.h) at
// its (epsilon_budget, delta) admits every committed charge, every open reservation and the new
// one; this stays valid when jobs are chosen after seeing earlier results. The filter is fitted to
// the first reservation the dataset admits and stored with the dataset from then on.
//
// Durability: SQLite in WAL mode with synchronous=FULL; each request is one transaction, so a
// request that returned OK survives kill -9 or power loss, and one that did not return left no
// partial change. Every request, admitted or refused, is appended to an audit log with the
// principal that made it.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "accountant/mechanism.h"
#include "accountant/privacy_filter.h"
#include "accountant/rdp.h"
#include "common/sqlite.h"

namespace dpfleet::accountant {

struct LedgerOptions {
  // Path of the SQLite file; created if missing.
  std::string path;
};

// Epsilons are PrivacyFilter::Epsilon levels of the charges, unless said otherwise.
struct BudgetSummary {
  std::string dataset;
  double epsilon_budget = 0;
  double delta = 0;
  double epsilon_committed = 0;  // Committed charges.
  double epsilon_reserved = 0;   // Committed charges and open reservations.
  double epsilon_remaining = 0;  // max(0, epsilon_budget - epsilon_reserved).
  int open_reservations = 0;
  // PrivacyFilter::Serialize() of the dataset's filter; empty until the first reservation fixes it.
  std::string filter;
  // Committed charges composed as if fixed in advance (RdpCurve::Epsilon): tighter, not adaptive.
  double epsilon_committed_fixed_composition = 0;
};

struct ReservationRequest {
  std::string dataset;
  std::string job_id;
  SubsampledGaussian mechanism;
  double clip_norm = 0;  // Bound into the reservation's tickets.
  std::string idempotency_key;
  std::string submitter;  // Whom the reservation is for: needs a grant on the dataset.
};

struct Reservation {
  std::string reservation_id;
  double epsilon_after = 0;  // Dataset epsilon with this reservation counted in full.
};

// What a lease covers, and what the ticket for it states.
struct LeaseGrant {
  std::string dataset;
  std::string job_id;
  double sampling_rate = 0;
  double noise_multiplier = 0;
  double clip_norm = 0;
  int64_t first_step = 0;  // The group's step indices [first_step, end_step).
  int64_t end_step = 0;
  int64_t steps_leased = 0;  // By the reservation, over every group.
};

struct CommitResult {
  double epsilon_committed = 0;  // The dataset's, afterwards.
  int64_t steps_committed = 0;   // Charged to the reservation.
};

// Thread-safe: every method may be called concurrently; requests are serialised.
class Ledger {
 public:
  // Opens or creates the ledger. Errors: those of SqliteDb::Open; kDataLoss when the schema is from
  // an unknown version.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const LedgerOptions& options);

  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Creates `dataset` with a total (epsilon_budget, delta) budget and grants `principal` access to
  // it. Registering it again with the same budget is OK (idempotent). Errors: kInvalidArgument for
  // an empty name, epsilon not finite and > 0, delta outside (0, 1); kAlreadyExists when it exists
  // with a different budget.
  absl::Status RegisterDataset(const std::string& principal, const std::string& dataset,
                               double epsilon_budget, double delta);

  // Returns what `dataset` has spent and has left. Errors: kNotFound for an unknown dataset.
  absl::StatusOr<BudgetSummary> GetBudget(const std::string& dataset);

  // Returns the most steps of the mechanism (q, sigma) that `dataset`'s budget still admits after
  // every committed charge and open reservation. Errors: kNotFound; kInvalidArgument for q or
  // sigma.
  absl::StatusOr<int64_t> MaxSteps(const std::string& dataset, double q, double sigma);

  // Lets `grantee` reserve budget on `dataset` (RevokeAccess: no longer; reservations it holds
  // are kept). Both are idempotent. Errors: kInvalidArgument for an empty grantee; kNotFound for an
  // unknown dataset.
  absl::Status GrantAccess(const std::string& principal, const std::string& dataset,
                           const std::string& grantee);
  absl::Status RevokeAccess(const std::string& principal, const std::string& dataset,
                            const std::string& grantee);

  // Reserves request.mechanism for request.job_id on request.dataset. A retry with the same
  // idempotency key and the same contents returns the original reservation. Errors:
  // kInvalidArgument for a bad mechanism or clip norm, an empty job_id, idempotency key or
  // submitter; kNotFound for an unknown dataset; kPermissionDenied when the submitter holds no
  // grant on it; kAlreadyExists when the key was used with other contents or by another
  // principal; kResourceExhausted when the budget cannot pay for it. The reservation belongs to
  // `principal`: only it may lease, commit or release it.
  absl::StatusOr<Reservation> Reserve(const std::string& principal,
                                      const ReservationRequest& request);

  // Leases step indices [first_step, end_step) of the reservation to the group `session` (the
  // ranks' nonces), for it to run under a ticket: each step index new to the group counts against
  // the reservation's steps, once, whatever happens after. A group's first lease fixes its
  // first_step; later ones extend end_step, and a repeated one charges nothing. Grants fewer steps
  // than asked when the reservation has fewer left. Errors: kNotFound; kPermissionDenied when
  // another principal made it; kInvalidArgument for a step range that is empty-ended backwards,
  // negative, or starts elsewhere than the group's first lease; kFailedPrecondition when it was
  // committed or released, or predates tickets (no clip norm); kResourceExhausted when it has no
  // step left for the group's next step.
  absl::StatusOr<LeaseGrant> Lease(const std::string& principal, const std::string& reservation_id,
                                   const std::string& session, int64_t first_step,
                                   int64_t end_step);

  // Makes max(steps_run, leased steps) steps of the reservation a permanent charge and frees the
  // rest. Committing again with the same steps is OK. Errors: kNotFound for an unknown
  // reservation; kPermissionDenied when another principal made it; kInvalidArgument when
  // steps_run is negative or exceeds the reservation; kFailedPrecondition when it was already
  // released or committed with another charge.
  absl::StatusOr<CommitResult> Commit(const std::string& principal,
                                      const std::string& reservation_id, int64_t steps_run);

  // Drops a reservation that leased no step. Releasing twice is OK. Errors: kNotFound for an
  // unknown reservation; kPermissionDenied when another principal made it; kFailedPrecondition
  // when it was committed or has leased steps (commit it instead).
  absl::Status Release(const std::string& principal, const std::string& reservation_id);

 private:
  explicit Ledger(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  absl::Status Audit(const std::string& principal, const std::string& operation,
                     const std::string& detail, const absl::Status& outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Composes the charges on `dataset`: committed ones only, or committed plus open reservations.
  absl::StatusOr<AdmittedMechanisms> ComposeCharges(const std::string& dataset,
                                                    bool include_reserved)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The dataset's filter; nullopt until its first reservation is admitted. Errors: kNotFound;
  // kDataLoss when the stored filter is malformed.
  absl::StatusOr<std::optional<PrivacyFilter>> FilterOf(const std::string& dataset)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The RDP curve of one step of (q, sigma), memoised: the ledger composes the same few mechanisms
  // over and over.
  absl::StatusOr<const RdpCurve*> OneStepCurve(double q, double sigma)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<BudgetSummary> GetBudgetLocked(const std::string& dataset)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A reservation as the ledger holds it.
  struct Charge {
    std::string dataset;
    std::string job_id;
    double sampling_rate = 0;
    double noise_multiplier = 0;
    double clip_norm = 0;
    int64_t state = 0;
    int64_t reserved_steps = 0;
    int64_t committed_steps = 0;
  };
  // Returns reservation `reservation_id` for `principal` to `what` ("lease", "commit", ...).
  // Errors: kNotFound for an unknown reservation; kPermissionDenied when another principal made it.
  absl::StatusOr<Charge> OwnedCharge(const std::string& principal,
                                     const std::string& reservation_id, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The steps the reservation has leased, over every group.
  absl::StatusOr<int64_t> LeasedSteps(const std::string& reservation_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets (or clears) a grant; `operation` names it in the audit log.
  absl::Status SetGrant(const std::string& principal, const std::string& dataset,
                        const std::string& grantee, bool granted, const char* operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<double, double>, RdpCurve> one_step_curves_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_LEDGER_H_

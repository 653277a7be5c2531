#ifndef DPFLEET_COORDINATOR_STEP_LEASER_H_
#define DPFLEET_COORDINATOR_STEP_LEASER_H_

// Keeps one group of workers (one attempt of a job) supplied with admission tickets: it leases
// step indices from the accountant a few at a time, from the job's reservations in order, and
// hands out a ticket that covers the step about to run and stays valid long enough to run it.
//
// A leased step is charged by the ledger whether or not it runs, so leasing `lease_steps` at a
// time trades accountant round trips (one per lease) against over-charging: a job that fails, is
// cancelled or is suspended is charged up to lease_steps - 1 steps it did not run, per attempt.
// A job that runs to its end is charged exactly its steps.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::coordinator {

class StepLeaser {
 public:
  // Leases from the accountant (AccountantService.Lease).
  using LeaseCall = std::function<absl::StatusOr<v1::LeaseResponse>(const v1::LeaseRequest&)>;
  // Reserves more steps, to run from `step` on, and appends the reservation to the job's list;
  // called when every reservation the job holds is leased out.
  using ReserveMore = std::function<absl::Status(int64_t step)>;

  // `group` has the ranks' nonces and shards in rank order, and starts at step `first_step` (its
  // checkpoint); `reservations` (the job's, first to last) must outlive the leaser.
  StepLeaser(std::vector<std::string> rank_nonces, std::vector<v1::ShardRange> shards,
             int64_t first_step, int64_t total_steps, int64_t lease_steps,
             const google::protobuf::RepeatedPtrField<v1::Reservation>* reservations,
             LeaseCall lease, ReserveMore reserve_more);

  // Returns a ticket that admits the group and covers none of its steps yet (JoinCollective),
  // charging nothing. Errors: those of the lease call.
  absl::StatusOr<v1::AdmissionTicket> JoinTicket();

  // Returns true when the last ticket covers `step` and is valid for at least `margin` from `now`.
  bool Covers(int64_t step, absl::Time now, absl::Duration margin) const;

  // Returns the group's leased steps from `step` on (0 when the last ticket does not cover it).
  int64_t LeasedFrom(int64_t step) const;

  // Returns a ticket that covers `step` (the group's next step) and is valid for at least
  // `margin` from `now`; leases more steps only when the last ticket does not. Errors:
  // kResourceExhausted when no more steps can be reserved; those of the calls.
  absl::StatusOr<v1::AdmissionTicket> TicketFor(int64_t step, absl::Time now,
                                                absl::Duration margin);

 private:
  // Leases [first, end) of reservation `index` for the group; keeps the ticket.
  absl::StatusOr<v1::LeaseResponse> LeaseFrom(int index, int64_t first, int64_t end);

  const std::vector<std::string> rank_nonces_;
  const std::vector<v1::ShardRange> shards_;
  const int64_t first_step_;
  const int64_t total_steps_;
  const int64_t lease_steps_;
  const google::protobuf::RepeatedPtrField<v1::Reservation>* const reservations_;
  const LeaseCall lease_;
  const ReserveMore reserve_more_;

  int current_ = 0;                   // The reservation leased from.
  std::vector<int64_t> group_first_;  // Per reservation: the group's first step on it, or -1.
  v1::AdmissionTicket ticket_;
  v1::TicketBody covered_;  // What ticket_ says (the accountant's own numbers).
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_STEP_LEASER_H_

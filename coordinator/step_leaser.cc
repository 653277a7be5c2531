#include "coordinator/step_leaser.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace dpfleet::coordinator {

StepLeaser::StepLeaser(std::vector<std::string> rank_nonces, std::vector<v1::ShardRange> shards,
                       int64_t first_step, int64_t total_steps, int64_t lease_steps,
                       const google::protobuf::RepeatedPtrField<v1::Reservation>* reservations,
                       LeaseCall lease, ReserveMore reserve_more)
    : rank_nonces_(std::move(rank_nonces)),
      shards_(std::move(shards)),
      first_step_(first_step),
      total_steps_(total_steps),
      lease_steps_(std::max<int64_t>(1, lease_steps)),
      reservations_(reservations),
      lease_(std::move(lease)),
      reserve_more_(std::move(reserve_more)) {}

absl::StatusOr<v1::LeaseResponse> StepLeaser::LeaseFrom(int index, int64_t first, int64_t end) {
  v1::LeaseRequest request;
  request.set_reservation_id(reservations_->Get(index).reservation_id());
  for (const std::string& nonce : rank_nonces_) request.add_rank_nonces(nonce);
  for (const v1::ShardRange& shard : shards_) *request.add_shards() = shard;
  request.set_first_step(first);
  request.set_end_step(end);
  DPFLEET_ASSIGN_OR_RETURN(v1::LeaseResponse response, lease_(request));
  v1::TicketBody covered;
  if (!covered.ParseFromString(response.ticket().body())) {
    return absl::InternalError("the accountant's lease carries no readable ticket");
  }
  ticket_ = response.ticket();
  covered_ = std::move(covered);
  group_first_.resize(reservations_->size(), -1);
  group_first_[index] = first;
  return response;
}

absl::StatusOr<v1::AdmissionTicket> StepLeaser::JoinTicket() {
  if (reservations_->empty()) return absl::InternalError("the job holds no reservation");
  current_ = 0;
  DPFLEET_RETURN_IF_ERROR(LeaseFrom(0, first_step_, first_step_).status());
  return ticket_;
}

bool StepLeaser::Covers(int64_t step, absl::Time now, absl::Duration margin) const {
  return LeasedFrom(step) > 0 && absl::FromUnixMillis(covered_.expires_unix_ms()) - now >= margin;
}

int64_t StepLeaser::LeasedFrom(int64_t step) const {
  if (ticket_.body().empty() || step < covered_.first_step()) return 0;
  return std::max<int64_t>(0, covered_.end_step() - step);
}

absl::StatusOr<v1::AdmissionTicket> StepLeaser::TicketFor(int64_t step, absl::Time now,
                                                          absl::Duration margin) {
  if (Covers(step, now, margin)) return ticket_;
  const int64_t end = std::max(step + 1, std::min(step + lease_steps_, total_steps_));
  while (true) {
    if (current_ >= reservations_->size()) {
      const int held = reservations_->size();
      DPFLEET_RETURN_IF_ERROR(reserve_more_(step));
      if (reservations_->size() <= held) {
        return absl::InternalError("reserving more steps added no reservation");
      }
    }
    group_first_.resize(reservations_->size(), -1);
    const int64_t first = group_first_[current_] >= 0 ? group_first_[current_] : step;
    const absl::StatusOr<v1::LeaseResponse> leased = LeaseFrom(current_, first, end);
    if (leased.ok()) {
      if (step < covered_.first_step() || step >= covered_.end_step()) {
        return absl::InternalError(absl::StrCat("the accountant leased [", covered_.first_step(),
                                                ", ", covered_.end_step(), "), not step ", step));
      }
      return ticket_;
    }
    if (!absl::IsResourceExhausted(leased.status())) return leased.status();
    ++current_;  // This reservation is leased out: go on to the next.
  }
}

}  // namespace dpfleet::coordinator

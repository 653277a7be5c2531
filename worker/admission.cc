#include "worker/admission.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "accountant/mechanism.h"

namespace dpfleet::worker {
namespace {

absl::Status Refuse(const std::string& what) {
  return absl::PermissionDeniedError(
      absl::StrCat("the admission ticket does not cover this: ", what));
}

// The mechanism's numbers must be exactly those admitted: they pass through protobuf as doubles,
// bit for bit.
absl::Status CheckSame(const char* what, double admitted, double assigned) {
  if (admitted == assigned) return absl::OkStatus();
  return Refuse(absl::StrFormat("the assignment's %s is %.17g, the ticket's %.17g", what, assigned,
                                admitted));
}

}  // namespace

absl::Status CheckTicketCovers(const v1::TicketBody& ticket, const v1::ShardAssignment& assignment,
                               const std::string& session_nonce, std::optional<int64_t> step,
                               absl::Time now) {
  if (ticket.job_id() != assignment.job_id()) {
    return Refuse(
        absl::StrCat("the ticket is for job ", ticket.job_id(), ", not ", assignment.job_id()));
  }
  if (ticket.dataset() != assignment.spec().dataset()) {
    return Refuse(absl::StrCat("the ticket is for dataset '", ticket.dataset(), "', not '",
                               assignment.spec().dataset(), "'"));
  }
  if (absl::Status same =
          CheckSame("sampling rate", ticket.sampling_rate(), assignment.sampling_rate());
      !same.ok()) {
    return same;
  }
  // The noise of everything the step releases (the gradient, and the loss if it is noised) must
  // be at least what the accountant charged for.
  const double noise = accountant::CombinedNoiseMultiplier(
      assignment.noise_multiplier(), assignment.spec().loss_noise_multiplier());
  if (!(noise >= ticket.noise_multiplier())) {
    return Refuse(absl::StrFormat(
        "the assignment's noise multiplier is %.17g (%.17g combined with a noised loss's "
        "%.17g), the ticket's %.17g",
        assignment.noise_multiplier(), noise, assignment.spec().loss_noise_multiplier(),
        ticket.noise_multiplier()));
  }
  if (absl::Status same = CheckSame("clip norm", ticket.clip_norm(), assignment.spec().clip_norm());
      !same.ok()) {
    return same;
  }
  const int rank = assignment.rank();
  if (ticket.rank_nonces_size() != assignment.world_size() ||
      ticket.shards_size() != assignment.world_size()) {
    return Refuse(absl::StrCat("the ticket is for a group of ", ticket.rank_nonces_size(),
                               " ranks, the assignment's has ", assignment.world_size()));
  }
  if (rank < 0 || rank >= assignment.world_size()) {
    return Refuse(absl::StrCat("the assignment's rank ", rank, " is outside its group of ",
                               assignment.world_size(), " ranks"));
  }
  if (ticket.rank_nonces(rank) != session_nonce) {
    return Refuse(absl::StrCat("the ticket's rank ", rank,
                               " is another worker, or this worker's earlier assignment"));
  }
  const v1::ShardRange& shard = ticket.shards(rank);
  if (shard.begin() != assignment.shard_begin() || shard.end() != assignment.shard_end()) {
    return Refuse(absl::StrCat("rank ", rank, "'s shard is [", assignment.shard_begin(), ", ",
                               assignment.shard_end(), "), the ticket's [", shard.begin(), ", ",
                               shard.end(), ")"));
  }
  if (step.has_value() && (*step < ticket.first_step() || *step >= ticket.end_step())) {
    return Refuse(absl::StrCat("step ", *step, " is outside the leased steps [",
                               ticket.first_step(), ", ", ticket.end_step(), ")"));
  }
  if (now >= absl::FromUnixMillis(ticket.expires_unix_ms())) {
    return Refuse(absl::StrCat("the ticket expired at ",
                               absl::FormatTime(absl::FromUnixMillis(ticket.expires_unix_ms()))));
  }
  return absl::OkStatus();
}

}  // namespace dpfleet::worker

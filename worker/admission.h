#ifndef DPFLEET_WORKER_ADMISSION_H_
#define DPFLEET_WORKER_ADMISSION_H_

// What a worker checks before it touches a training example: that the accountant's admission
// ticket (common/admission_ticket.h), already verified, covers its assignment. The ticket names
// the mechanism (dataset, q, sigma, C), the group (every rank's session nonce and shard) and the
// step indices the group may run; the worker compares each with what it was told to do, so a
// coordinator cannot run a step the accountant did not lease, with a mechanism it did not admit,
// on a group it did not lease it to.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::worker {

// Returns OK when `ticket` covers `assignment` for the worker that drew `session_nonce` for it,
// and, when `step` is set, step index *step; at time `now`. The sampling rate and clip norm must
// be the ticket's; the noise at least the ticket's (the gradient's multiplier, combined with a
// noised loss's, accountant/mechanism.h). Errors: kPermissionDenied naming the first thing that
// differs (job, dataset, sampling rate, noise multiplier, clip norm, group, shard, step, expiry).
absl::Status CheckTicketCovers(const v1::TicketBody& ticket, const v1::ShardAssignment& assignment,
                               const std::string& session_nonce, std::optional<int64_t> step,
                               absl::Time now);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_ADMISSION_H_

#include "worker/admission.h"

#include "accountant/mechanism.h"
#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const std::string kNonce(16, 'n');

v1::ShardAssignment Assignment() {
  v1::ShardAssignment assignment;
  assignment.set_job_id("job-1");
  assignment.mutable_spec()->set_dataset("fashion-mnist");
  assignment.mutable_spec()->set_clip_norm(1.0);
  assignment.set_sampling_rate(0.01);
  assignment.set_noise_multiplier(1.1);
  assignment.set_rank(1);
  assignment.set_world_size(2);
  assignment.set_shard_begin(30000);
  assignment.set_shard_end(60000);
  return assignment;
}

// A ticket that covers Assignment() for steps [10, 20).
v1::TicketBody Ticket() {
  v1::TicketBody ticket;
  ticket.set_job_id("job-1");
  ticket.set_dataset("fashion-mnist");
  ticket.set_sampling_rate(0.01);
  ticket.set_noise_multiplier(1.1);
  ticket.set_clip_norm(1.0);
  ticket.add_rank_nonces(std::string(16, 'o'));
  ticket.add_rank_nonces(kNonce);
  v1::ShardRange* first = ticket.add_shards();
  first->set_begin(0);
  first->set_end(30000);
  v1::ShardRange* second = ticket.add_shards();
  second->set_begin(30000);
  second->set_end(60000);
  ticket.set_first_step(10);
  ticket.set_end_step(20);
  ticket.set_expires_unix_ms(absl::ToUnixMillis(kNow + absl::Minutes(5)));
  return ticket;
}

// The message of the refusal of `assignment` at `step` under `ticket`, or "" when it is covered.
std::string Refusal(const v1::TicketBody& ticket, const v1::ShardAssignment& assignment,
                    std::optional<int64_t> step = 10, absl::Time now = kNow) {
  const absl::Status status = CheckTicketCovers(ticket, assignment, kNonce, step, now);
  if (!status.ok()) EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  return std::string(status.message());
}

TEST(CheckTicketCovers, CoversItsStepsOnly) {
  EXPECT_EQ(Refusal(Ticket(), Assignment(), std::nullopt), "");
  EXPECT_EQ(Refusal(Ticket(), Assignment(), 10), "");
  EXPECT_EQ(Refusal(Ticket(), Assignment(), 19), "");
  EXPECT_NE(Refusal(Ticket(), Assignment(), 20).find("step 20 is outside the leased steps"),
            std::string::npos);
  EXPECT_NE(Refusal(Ticket(), Assignment(), 9).find("outside"), std::string::npos);
  EXPECT_NE(Refusal(Ticket(), Assignment(), 10, kNow + absl::Minutes(5)).find("expired"),
            std::string::npos);
}

TEST(CheckTicketCovers, RefusesAnyOtherMechanism) {
  v1::ShardAssignment noiseless = Assignment();
  noiseless.set_noise_multiplier(0);
  EXPECT_NE(Refusal(Ticket(), noiseless).find("noise multiplier is 0"), std::string::npos);
  v1::ShardAssignment less_noise = Assignment();
  less_noise.set_noise_multiplier(1.0999999);
  EXPECT_NE(Refusal(Ticket(), less_noise).find("noise multiplier"), std::string::npos);
  v1::ShardAssignment bigger_sample = Assignment();
  bigger_sample.set_sampling_rate(0.02);
  EXPECT_NE(Refusal(Ticket(), bigger_sample).find("sampling rate"), std::string::npos);
  v1::ShardAssignment bigger_clip = Assignment();
  bigger_clip.mutable_spec()->set_clip_norm(2.0);
  EXPECT_NE(Refusal(Ticket(), bigger_clip).find("clip norm"), std::string::npos);
  v1::ShardAssignment other_dataset = Assignment();
  other_dataset.mutable_spec()->set_dataset("cifar10");
  EXPECT_NE(Refusal(Ticket(), other_dataset).find("dataset"), std::string::npos);
  v1::ShardAssignment other_job = Assignment();
  other_job.set_job_id("job-2");
  EXPECT_NE(Refusal(Ticket(), other_job).find("job job-1, not job-2"), std::string::npos);
}

TEST(CheckTicketCovers, AcceptsMoreNoiseAndCountsANoisedLossAgainstIt) {
  v1::ShardAssignment more_noise = Assignment();
  more_noise.set_noise_multiplier(1.5);
  EXPECT_EQ(Refusal(Ticket(), more_noise), "");
  // The accountant charged for the gradient at 1.1 and a loss at 3, combined.
  v1::TicketBody both = Ticket();
  both.set_noise_multiplier(accountant::CombinedNoiseMultiplier(1.1, 3.0));
  v1::ShardAssignment noised_loss = Assignment();
  noised_loss.mutable_spec()->set_loss_noise_multiplier(3.0);
  EXPECT_EQ(Refusal(both, noised_loss), "");
  EXPECT_EQ(Refusal(both, Assignment()), "");  // Releasing no loss is more private still.
  noised_loss.mutable_spec()->set_loss_noise_multiplier(2.9);
  EXPECT_NE(Refusal(both, noised_loss).find("combined with a noised loss's"), std::string::npos);
  // A noised loss on top of a gradient charged alone spends more than was admitted.
  noised_loss.mutable_spec()->set_loss_noise_multiplier(100.0);
  EXPECT_NE(Refusal(Ticket(), noised_loss).find("noise multiplier"), std::string::npos);
}

TEST(CheckTicketCovers, RefusesAnotherGroupOrShard) {
  // A ticket leased to an earlier group (another nonce at this rank) cannot be replayed.
  v1::TicketBody replayed = Ticket();
  replayed.set_rank_nonces(1, std::string(16, 'x'));
  EXPECT_NE(Refusal(replayed, Assignment()).find("another worker"), std::string::npos);
  v1::ShardAssignment bigger_world = Assignment();
  bigger_world.set_world_size(3);
  EXPECT_NE(Refusal(Ticket(), bigger_world).find("group of 2 ranks"), std::string::npos);
  // Sampling rows the ticket gave to another rank would count them twice.
  v1::ShardAssignment whole_dataset = Assignment();
  whole_dataset.set_shard_begin(0);
  EXPECT_NE(Refusal(Ticket(), whole_dataset).find("shard"), std::string::npos);
  // A rank outside the group names no nonce or shard of the ticket (found by fuzz/admission_fuzz).
  for (int rank : {-1, 2}) {
    v1::ShardAssignment outside = Assignment();
    outside.set_rank(rank);
    EXPECT_NE(Refusal(Ticket(), outside).find("outside its group"), std::string::npos) << rank;
  }
}

}  // namespace
}  // namespace dpfleet::worker

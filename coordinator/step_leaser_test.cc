#include "coordinator/step_leaser.h"

#include <map>

#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// The accountant's leases, as the ledger grants them: per (reservation, group) a range of steps
// that only grows, and per reservation no more steps than it holds. Tickets are unsigned here:
// the leaser only reads them.
class FakeAccountant {
 public:
  explicit FakeAccountant(google::protobuf::RepeatedPtrField<v1::Reservation>* reservations)
      : reservations_(reservations) {}

  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& request) {
    ++calls;
    int64_t capacity = 0;
    for (const v1::Reservation& r : *reservations_) {
      if (r.reservation_id() == request.reservation_id()) capacity = r.steps();
    }
    auto& [first, end] = groups_[request.reservation_id()];
    if (end == 0 && first == 0) first = end = request.first_step();
    EXPECT_EQ(first, request.first_step());
    if (request.end_step() > end) {
      const int64_t added =
          std::min(request.end_step() - end, capacity - leased[request.reservation_id()]);
      if (added <= 0) return absl::ResourceExhaustedError("leased out");
      end += added;
      leased[request.reservation_id()] += added;
    }
    v1::TicketBody body;
    body.set_reservation_id(request.reservation_id());
    body.set_first_step(first);
    body.set_end_step(end);
    body.set_expires_unix_ms(absl::ToUnixMillis(kNow + lifetime));
    v1::LeaseResponse response;
    response.mutable_ticket()->set_body(body.SerializeAsString());
    return response;
  }

  int calls = 0;
  absl::Duration lifetime = absl::Minutes(10);
  std::map<std::string, int64_t> leased;

 private:
  google::protobuf::RepeatedPtrField<v1::Reservation>* reservations_;
  std::map<std::string, std::pair<int64_t, int64_t>> groups_;
};

v1::TicketBody Body(const absl::StatusOr<v1::AdmissionTicket>& ticket) {
  EXPECT_TRUE(ticket.ok()) << ticket.status();
  v1::TicketBody body;
  if (ticket.ok()) body.ParseFromString(ticket->body());
  return body;
}

struct Fixture {
  Fixture(int64_t reserved, int64_t first_step, int64_t total_steps, int64_t lease_steps)
      : accountant(&reservations),
        leaser(
            {"n0", "n1"}, {v1::ShardRange(), v1::ShardRange()}, first_step, total_steps,
            lease_steps, &reservations,
            [this](const v1::LeaseRequest& r) { return accountant.Lease(r); },
            [this, total_steps](int64_t step) {
              v1::Reservation* more = reservations.Add();
              more->set_reservation_id("res-" + std::to_string(reservations.size()));
              more->set_steps(total_steps - step);
              return absl::OkStatus();
            }) {
    v1::Reservation* own = reservations.Add();
    own->set_reservation_id("res-1");
    own->set_steps(reserved);
  }
  google::protobuf::RepeatedPtrField<v1::Reservation> reservations;
  FakeAccountant accountant;
  StepLeaser leaser;
};

TEST(StepLeaser, JoinsForFreeThenLeasesAFewStepsAtATime) {
  Fixture f(/*reserved=*/10, /*first_step=*/0, /*total_steps=*/10, /*lease_steps=*/4);
  EXPECT_EQ(Body(f.leaser.JoinTicket()).end_step(), 0);
  EXPECT_EQ(f.accountant.leased["res-1"], 0);
  for (int64_t step = 0; step < 10; ++step) {
    const v1::TicketBody body = Body(f.leaser.TicketFor(step, kNow, absl::Minutes(1)));
    EXPECT_LE(body.first_step(), step);
    EXPECT_GT(body.end_step(), step);
  }
  EXPECT_EQ(f.accountant.leased["res-1"], 10);  // Never past the job's last step.
  EXPECT_EQ(f.accountant.calls, 1 + 3);         // Join, then [0,4), [4,8), [8,10).
}

TEST(StepLeaser, RenewsATicketThatWouldExpireMidStep) {
  Fixture f(10, 0, 10, 10);
  f.accountant.lifetime = absl::Seconds(30);
  ASSERT_TRUE(f.leaser.JoinTicket().ok());
  ASSERT_TRUE(f.leaser.TicketFor(0, kNow, absl::Seconds(10)).ok());
  const int calls = f.accountant.calls;
  ASSERT_TRUE(f.leaser.TicketFor(1, kNow, absl::Seconds(10)).ok());
  EXPECT_EQ(f.accountant.calls, calls);  // Still good.
  ASSERT_TRUE(f.leaser.TicketFor(2, kNow + absl::Seconds(25), absl::Seconds(10)).ok());
  EXPECT_EQ(f.accountant.calls, calls + 1);  // Renewed, at no charge.
  EXPECT_EQ(f.accountant.leased["res-1"], 10);
}

TEST(StepLeaser, MovesOnToTheNextReservationAndReservesWhenAllAreLeasedOut) {
  // Resuming at step 6 of 10 after a failure: the first reservation had 10 steps, 8 of them leased
  // by the failed group. 2 are left, then the leaser must reserve the rest anew.
  Fixture f(10, 6, 10, 4);
  f.accountant.leased["res-1"] = 8;
  ASSERT_TRUE(f.leaser.JoinTicket().ok());
  v1::TicketBody body = Body(f.leaser.TicketFor(6, kNow, absl::Minutes(1)));
  EXPECT_EQ(body.reservation_id(), "res-1");
  EXPECT_EQ(body.end_step(), 8);  // Partly granted.
  body = Body(f.leaser.TicketFor(7, kNow, absl::Minutes(1)));
  EXPECT_EQ(body.reservation_id(), "res-1");
  body = Body(f.leaser.TicketFor(8, kNow, absl::Minutes(1)));
  EXPECT_EQ(body.reservation_id(), "res-2");
  EXPECT_EQ(body.first_step(), 8);
  EXPECT_EQ(body.end_step(), 10);
  ASSERT_EQ(f.reservations.size(), 2);
  EXPECT_EQ(f.reservations[1].steps(), 2);
}

TEST(StepLeaser, SaysWhenNoMoreCanBeReserved) {
  google::protobuf::RepeatedPtrField<v1::Reservation> reservations;
  v1::Reservation* own = reservations.Add();
  own->set_reservation_id("res-1");
  own->set_steps(1);
  FakeAccountant accountant(&reservations);
  StepLeaser leaser(
      {"n0"}, {v1::ShardRange()}, 0, 5, 2, &reservations,
      [&](const v1::LeaseRequest& r) { return accountant.Lease(r); },
      [](int64_t) { return absl::ResourceExhaustedError("the dataset's budget is spent"); });
  ASSERT_TRUE(leaser.JoinTicket().ok());
  ASSERT_TRUE(leaser.TicketFor(0, kNow, absl::Minutes(1)).ok());
  const auto exhausted = leaser.TicketFor(1, kNow, absl::Minutes(1));
  EXPECT_EQ(exhausted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(exhausted.status().message().find("budget"), std::string::npos);
}

}  // namespace
}  // namespace dpfleet::coordinator

#include "accountant/ledger.h"

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "accountant/gaussian.h"
#include "accountant/privacy_filter.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

constexpr SubsampledGaussian kSmallJob{
    .sampling_rate = 0.01, .noise_multiplier = 1.0, .steps = 300};

// A reservation request for the dataset's registrant, "admin" (who holds a grant on it).
ReservationRequest Request(const std::string& dataset, const std::string& job_id,
                           const SubsampledGaussian& mechanism, const std::string& key) {
  return {.dataset = dataset,
          .job_id = job_id,
          .mechanism = mechanism,
          .clip_norm = 1.0,
          .idempotency_key = key,
          .submitter = "admin"};
}

std::string FreshPath(const std::string& name) {
  const std::string path =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return path;
}

std::unique_ptr<Ledger> OpenLedger(const std::string& path) {
  auto ledger = Ledger::Open({.path = path});
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  return std::move(ledger).value();
}

double EpsilonUnder(const PrivacyFilter& filter, const SubsampledGaussian& mechanism) {
  AdmittedMechanisms admitted;
  EXPECT_TRUE(admitted.Compose(mechanism).ok());
  return *filter.Epsilon(admitted, 1e-5);
}

// What a dataset with budget `budget` at delta 1e-5, whose first job was kSmallJob, charges for
// `mechanism` alone.
double EpsilonOf(const SubsampledGaussian& mechanism, double budget) {
  return EpsilonUnder(*PrivacyFilter::FittedTo(kSmallJob, budget, 1e-5), mechanism);
}

SubsampledGaussian SmallJobs(int64_t jobs) {
  SubsampledGaussian all = kSmallJob;
  all.steps *= jobs;
  return all;
}

// The budget b = budget_of(b): the filter is fitted to the budget, so budgets that are defined by
// what the filter charges are fixed points (found in a few rounds: b only moves the filter's
// orders over the grid).
template <typename BudgetOf>
double FixedPointBudget(BudgetOf budget_of) {
  double budget = 5.0;
  for (int round = 0; round < 20; ++round) budget = budget_of(budget);
  EXPECT_NEAR(budget_of(budget), budget, 1e-12);
  return budget;
}

// A budget with room for one kSmallJob but not two.
double RoomForOneSmallJob() {
  return FixedPointBudget(
      [](double b) { return (EpsilonOf(SmallJobs(1), b) + EpsilonOf(SmallJobs(2), b)) / 2; });
}

TEST(Ledger, RegisterIsIdempotentButRefusesAChangedBudget) {
  auto ledger = OpenLedger(FreshPath("register.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 3.0, 1e-5).ok());
  EXPECT_TRUE(ledger->RegisterDataset("admin", "mnist", 3.0, 1e-5).ok());
  const absl::Status changed = ledger->RegisterDataset("admin", "mnist", 30.0, 1e-5);
  EXPECT_EQ(changed.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger->GetBudget("mnist")->epsilon_budget, 3.0);
  EXPECT_EQ(ledger->RegisterDataset("admin", "", 3.0, 1e-5).code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status bad_delta = ledger->RegisterDataset("admin", "x", 3.0, 1.0);
  EXPECT_EQ(bad_delta.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_delta.message().find("delta"), std::string::npos);
  EXPECT_EQ(ledger->GetBudget("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(Ledger, ReservationCountsInFullUntilCommitted) {
  auto ledger = OpenLedger(FreshPath("reserve.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 5.0, 1e-5).ok());
  const Reservation reservation =
      *ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1"));
  EXPECT_NEAR(reservation.epsilon_after, EpsilonOf(kSmallJob, 5.0), 1e-12);
  BudgetSummary budget = *ledger->GetBudget("mnist");
  EXPECT_EQ(budget.epsilon_committed, 0.0);
  EXPECT_NEAR(budget.epsilon_reserved, EpsilonOf(kSmallJob, 5.0), 1e-12);
  EXPECT_EQ(budget.filter, PrivacyFilter::FittedTo(kSmallJob, 5.0, 1e-5)->Serialize());
  EXPECT_EQ(budget.open_reservations, 1);

  const double committed =
      ledger->Commit("coordinator", reservation.reservation_id, 100)->epsilon_committed;
  SubsampledGaussian ran = kSmallJob;
  ran.steps = 100;
  EXPECT_NEAR(committed, EpsilonOf(ran, 5.0), 1e-12);
  budget = *ledger->GetBudget("mnist");
  EXPECT_NEAR(budget.epsilon_committed, budget.epsilon_reserved, 1e-12);
  EXPECT_EQ(budget.open_reservations, 0);
  EXPECT_NEAR(budget.epsilon_remaining, 5.0 - budget.epsilon_reserved, 1e-12);
  EXPECT_NEAR(budget.epsilon_committed_fixed_composition, RdpEpsilon(ran, 1e-5)->epsilon, 1e-12);
  EXPECT_LT(budget.epsilon_committed_fixed_composition, budget.epsilon_committed);
}

// On a fresh dataset (whose first reservation will fit its filter) and on one already charged.
TEST(Ledger, MaxStepsIsWhatReserveStillAdmits) {
  for (const bool fresh : {true, false}) {
    SCOPED_TRACE(fresh ? "fresh" : "charged");
    auto ledger = OpenLedger(FreshPath(fresh ? "maxsteps-fresh.db" : "maxsteps.db"));
    ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 2.0, 1e-5).ok());
    if (!fresh) {
      ASSERT_TRUE(ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1")).ok());
    }
    const int64_t steps = *ledger->MaxSteps("mnist", 0.01, 1.0);
    ASSERT_GT(steps, 0);
    if (fresh) EXPECT_EQ(steps, *MaxStepsOfFirstJob(0.01, 1.0, 2.0, 1e-5));
    SubsampledGaussian fits = kSmallJob;
    fits.steps = steps + 1;
    EXPECT_EQ(ledger->Reserve("coordinator", Request("mnist", "job-2", fits, "k2")).status().code(),
              absl::StatusCode::kResourceExhausted);
    fits.steps = steps;
    EXPECT_TRUE(ledger->Reserve("coordinator", Request("mnist", "job-2", fits, "k3")).ok());
    EXPECT_EQ(*ledger->MaxSteps("mnist", 0.01, 1.0), 0);
    EXPECT_EQ(ledger->MaxSteps("nope", 0.01, 1.0).status().code(), absl::StatusCode::kNotFound);
  }
}

TEST(Ledger, RefusesWhatTheBudgetCannotPayAndChangesNothing) {
  auto ledger = OpenLedger(FreshPath("refuse.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", RoomForOneSmallJob(), 1e-5).ok());
  ASSERT_TRUE(ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1")).ok());
  const BudgetSummary before = *ledger->GetBudget("mnist");
  const auto second = ledger->Reserve("coordinator", Request("mnist", "job-2", kSmallJob, "k2"));
  ASSERT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(second.status().message().find("mnist"), std::string::npos);
  const BudgetSummary after = *ledger->GetBudget("mnist");
  EXPECT_EQ(after.epsilon_reserved, before.epsilon_reserved);
  EXPECT_EQ(after.open_reservations, 1);
}

TEST(Ledger, ReleaseFreesTheBudget) {
  auto ledger = OpenLedger(FreshPath("release.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", RoomForOneSmallJob(), 1e-5).ok());
  const Reservation first =
      *ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1"));
  ASSERT_TRUE(ledger->Release("coordinator", first.reservation_id).ok());
  EXPECT_TRUE(ledger->Release("coordinator", first.reservation_id).ok());
  EXPECT_EQ(ledger->Commit("coordinator", first.reservation_id, 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ledger->Reserve("coordinator", Request("mnist", "job-2", kSmallJob, "k2")).ok());
}

TEST(Ledger, IdempotencyKeyReplaysOrConflicts) {
  auto ledger = OpenLedger(FreshPath("idempotent.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 5.0, 1e-5).ok());
  const Reservation first =
      *ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1"));
  const Reservation again =
      *ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1"));
  EXPECT_EQ(first.reservation_id, again.reservation_id);
  EXPECT_EQ(ledger->GetBudget("mnist")->open_reservations, 1);
  SubsampledGaussian other = kSmallJob;
  other.steps = 301;
  const auto conflict = ledger->Reserve("coordinator", Request("mnist", "job-1", other, "k1"));
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(conflict.status().message().find("idempotency_key"), std::string::npos);
}

TEST(Ledger, TheFirstAdmittedReservationFixesTheFilterForGood) {
  const std::string path = FreshPath("filter.db");
  const SubsampledGaussian full_batch = {.sampling_rate = 1.0, .noise_multiplier = 30, .steps = 10};
  {
    auto ledger = OpenLedger(path);
    ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 2.0, 1e-5).ok());
    EXPECT_EQ(ledger->GetBudget("mnist")->filter, "");
    // Refused (it does not fit): nothing was admitted, so nothing is fixed.
    SubsampledGaussian huge = kSmallJob;
    huge.steps = 1000000;
    EXPECT_EQ(ledger->Reserve("c", Request("mnist", "job-0", huge, "k0")).status().code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(ledger->GetBudget("mnist")->filter, "");
    // A full-batch first job gets the Gaussian filter: charged within 1% of its exact epsilon.
    const Reservation first = *ledger->Reserve("c", Request("mnist", "job-1", full_batch, "k1"));
    const PrivacyFilter gaussian = *PrivacyFilter::FittedTo(full_batch, 2.0, 1e-5);
    EXPECT_EQ(gaussian.parts()[0].kind, FilterPart::Kind::kGaussian);
    EXPECT_EQ(ledger->GetBudget("mnist")->filter, gaussian.Serialize());
    EXPECT_NEAR(first.epsilon_after, EpsilonUnder(gaussian, full_batch), 1e-12);
    EXPECT_LE(first.epsilon_after, 1.01 * *FullBatchEpsilon(30, 10, 1e-5));
    // Releasing it does not unfix the filter.
    ASSERT_TRUE(ledger->Release("c", first.reservation_id).ok());
    EXPECT_EQ(ledger->GetBudget("mnist")->filter, gaussian.Serialize());
  }
  // Nor does a restart, nor a later job of another kind.
  auto ledger = OpenLedger(path);
  const SubsampledGaussian sampled = {.sampling_rate = 0.01, .noise_multiplier = 2, .steps = 100};
  const Reservation second = *ledger->Reserve("c", Request("mnist", "job-2", sampled, "k2"));
  EXPECT_EQ(ledger->GetBudget("mnist")->filter,
            PrivacyFilter::FittedTo(full_batch, 2.0, 1e-5)->Serialize());
  EXPECT_NEAR(second.epsilon_after,
              EpsilonUnder(*PrivacyFilter::FittedTo(full_batch, 2.0, 1e-5), sampled), 1e-12);
}

TEST(Ledger, OnlyThePrincipalThatReservedMaySettleTheReservation) {
  auto ledger = OpenLedger(FreshPath("owner.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 100.0, 1e-5).ok());
  const Reservation mine =
      *ledger->Reserve("coordinator-a", Request("mnist", "job-1", kSmallJob, "k1"));
  // Another holder of the coordinator role cannot commit it short, nor release it.
  const absl::StatusOr<CommitResult> short_commit =
      ledger->Commit("coordinator-b", mine.reservation_id, 0);
  EXPECT_EQ(short_commit.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(short_commit.status().message().find("made by 'coordinator-a'"), std::string::npos)
      << short_commit.status();
  EXPECT_EQ(ledger->Release("coordinator-b", mine.reservation_id).code(),
            absl::StatusCode::kPermissionDenied);
  // Nor replay its idempotency key to learn or share the reservation.
  EXPECT_EQ(
      ledger->Reserve("coordinator-b", Request("mnist", "job-1", kSmallJob, "k1")).status().code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger->GetBudget("mnist")->open_reservations, 1);
  EXPECT_TRUE(ledger->Commit("coordinator-a", mine.reservation_id, 300).ok());
}

TEST(Ledger, AVersionOneLedgerIsMigratedAndItsReservationsStaySettleable) {
  const std::string path = FreshPath("v1.db");
  {
    auto db = *SqliteDb::Open(path);
    ASSERT_TRUE(db->Exec(R"sql(
      CREATE TABLE datasets (name TEXT PRIMARY KEY, epsilon_budget REAL NOT NULL,
                             delta REAL NOT NULL, created_unix_ms INTEGER NOT NULL);
      CREATE TABLE charges (reservation_id TEXT PRIMARY KEY, dataset TEXT NOT NULL,
                            job_id TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
                            sampling_rate REAL NOT NULL, noise_multiplier REAL NOT NULL,
                            reserved_steps INTEGER NOT NULL,
                            committed_steps INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL,
                            updated_unix_ms INTEGER NOT NULL);
      CREATE TABLE audit_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, unix_ms INTEGER NOT NULL,
                              principal TEXT NOT NULL, operation TEXT NOT NULL,
                              detail TEXT NOT NULL, outcome TEXT NOT NULL);
      INSERT INTO datasets VALUES ('mnist', 100.0, 1e-5, 0);
      INSERT INTO datasets VALUES ('never-charged', 100.0, 1e-5, 0);
      INSERT INTO charges VALUES ('res-old', 'mnist', 'job-0', 'k0', 0.01, 1.0, 300, 0, 1, 0);
      PRAGMA user_version = 1;
    )sql")
                    .ok());
  }
  auto ledger = OpenLedger(path);
  ASSERT_NE(ledger, nullptr);
  EXPECT_EQ(ledger->GetBudget("mnist")->open_reservations, 1);
  // It predates tickets: it states no clip norm, so no worker may run its steps.
  EXPECT_EQ(ledger->Lease("any-coordinator", "res-old", "s", 0, 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ledger->Commit("any-coordinator", "res-old", 300).ok());
  // A dataset charged before filters were fitted keeps the filter it was admitted under.
  EXPECT_EQ(ledger->GetBudget("mnist")->filter, PrivacyFilter::Legacy().Serialize());
  EXPECT_NEAR(ledger->GetBudget("mnist")->epsilon_committed,
              EpsilonUnder(PrivacyFilter::Legacy(), kSmallJob), 1e-12);
  // One that no job touched yet gets its filter fitted to its first job, like a new one.
  EXPECT_EQ(ledger->GetBudget("never-charged")->filter, "");
  // No one holds a grant on a migrated dataset until an admin gives one.
  EXPECT_EQ(ledger->Reserve("c", Request("mnist", "job-1", kSmallJob, "k1")).status().code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(ledger->GrantAccess("admin", "mnist", "admin").ok());
  EXPECT_TRUE(ledger->Reserve("c", Request("mnist", "job-1", kSmallJob, "k1")).ok());
}

TEST(Ledger, LeasedStepsAreChargedWhateverTheCommitSays) {
  auto ledger = OpenLedger(FreshPath("lease.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 5.0, 1e-5).ok());
  const Reservation r = *ledger->Reserve("c", Request("mnist", "job-1", kSmallJob, "k1"));
  // A group's first lease may cover no step: it admits the mechanism and charges nothing.
  LeaseGrant grant = *ledger->Lease("c", r.reservation_id, "group-1", 0, 0);
  EXPECT_EQ(grant.end_step, 0);
  EXPECT_EQ(grant.steps_leased, 0);
  EXPECT_EQ(grant.noise_multiplier, kSmallJob.noise_multiplier);
  EXPECT_EQ(grant.clip_norm, 1.0);
  EXPECT_EQ(grant.job_id, "job-1");
  grant = *ledger->Lease("c", r.reservation_id, "group-1", 0, 10);
  EXPECT_EQ(grant.first_step, 0);
  EXPECT_EQ(grant.end_step, 10);
  EXPECT_EQ(grant.steps_leased, 10);
  grant = *ledger->Lease("c", r.reservation_id, "group-1", 0, 4);  // A repeat charges nothing.
  EXPECT_EQ(grant.end_step, 10);
  EXPECT_EQ(grant.steps_leased, 10);
  grant = *ledger->Lease("c", r.reservation_id, "group-1", 0, 20);
  EXPECT_EQ(grant.steps_leased, 20);
  // A second group (the job resumed from a checkpoint at step 5) pays for its own steps.
  grant = *ledger->Lease("c", r.reservation_id, "group-2", 5, 15);
  EXPECT_EQ(grant.first_step, 5);
  EXPECT_EQ(grant.steps_leased, 30);
  EXPECT_EQ(ledger->Lease("c", r.reservation_id, "group-2", 6, 16).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Once a step is leased the reservation cannot be released, and a commit of fewer steps is
  // raised to the leased ones.
  const absl::Status release = ledger->Release("c", r.reservation_id);
  EXPECT_EQ(release.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(release.message().find("leased 30 steps"), std::string::npos);
  const CommitResult committed = *ledger->Commit("c", r.reservation_id, 3);
  EXPECT_EQ(committed.steps_committed, 30);
  SubsampledGaussian ran = kSmallJob;
  ran.steps = 30;
  EXPECT_NEAR(committed.epsilon_committed, EpsilonOf(ran, 5.0), 1e-12);
  EXPECT_TRUE(ledger->Commit("c", r.reservation_id, 3).ok());  // The same commit, retried.
  EXPECT_EQ(ledger->Lease("c", r.reservation_id, "group-1", 0, 21).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(Ledger, LeasesNeverExceedTheReservation) {
  auto ledger = OpenLedger(FreshPath("lease-limit.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 5.0, 1e-5).ok());
  const Reservation r = *ledger->Reserve("c", Request("mnist", "job-1", kSmallJob, "k1"));
  EXPECT_EQ(ledger->Lease("c", r.reservation_id, "a", 0, 200)->steps_leased, 200);
  const LeaseGrant partial = *ledger->Lease("c", r.reservation_id, "b", 0, 200);
  EXPECT_EQ(partial.end_step, 100);  // What is left of the 300 steps.
  EXPECT_EQ(partial.steps_leased, 300);
  const auto exhausted = ledger->Lease("c", r.reservation_id, "b", 0, 101);
  EXPECT_EQ(exhausted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(exhausted.status().message().find("needs a new reservation"), std::string::npos);
  EXPECT_EQ(ledger->Lease("other", r.reservation_id, "c", 0, 0).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ledger->Lease("c", "res-unknown", "c", 0, 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ledger->Lease("c", r.reservation_id, "c", 5, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger->Lease("c", r.reservation_id, "", 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger->Commit("c", r.reservation_id, 0)->steps_committed, 300);
}

TEST(Ledger, OnlyGrantedSubmittersReserve) {
  auto ledger = OpenLedger(FreshPath("grants.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 5.0, 1e-5).ok());
  ReservationRequest bobs = Request("mnist", "job-1", kSmallJob, "k1");
  bobs.submitter = "bob";
  const auto refused = ledger->Reserve("c", bobs);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("'bob' holds no grant on dataset 'mnist'"),
            std::string::npos);
  ASSERT_TRUE(ledger->GrantAccess("admin", "mnist", "bob").ok());
  EXPECT_TRUE(ledger->GrantAccess("admin", "mnist", "bob").ok());
  const Reservation granted = *ledger->Reserve("c", bobs);
  ASSERT_TRUE(ledger->RevokeAccess("admin", "mnist", "bob").ok());
  bobs.idempotency_key = "k2";
  EXPECT_EQ(ledger->Reserve("c", bobs).status().code(), absl::StatusCode::kPermissionDenied);
  // What bob reserved before the revocation is still his job's to run and settle.
  EXPECT_TRUE(ledger->Lease("c", granted.reservation_id, "g", 0, 1).ok());
  EXPECT_EQ(ledger->GrantAccess("admin", "nope", "bob").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ledger->GrantAccess("admin", "mnist", "").code(), absl::StatusCode::kInvalidArgument);
  bobs.submitter = "";
  EXPECT_EQ(ledger->Reserve("c", bobs).status().code(), absl::StatusCode::kInvalidArgument);
  ReservationRequest no_clip = Request("mnist", "job-3", kSmallJob, "k3");
  no_clip.clip_norm = 0;
  EXPECT_EQ(ledger->Reserve("c", no_clip).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Ledger, CommitChecksItsArguments) {
  auto ledger = OpenLedger(FreshPath("commit.db"));
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 5.0, 1e-5).ok());
  const Reservation r = *ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1"));
  EXPECT_EQ(ledger->Commit("coordinator", r.reservation_id, 301).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger->Commit("coordinator", r.reservation_id, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger->Commit("coordinator", "res-unknown", 1).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(ledger->Commit("coordinator", r.reservation_id, 300).ok());
  EXPECT_TRUE(ledger->Commit("coordinator", r.reservation_id, 300).ok());
  EXPECT_EQ(ledger->Commit("coordinator", r.reservation_id, 200).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ledger->Release("coordinator", r.reservation_id).code(),
            absl::StatusCode::kFailedPrecondition);
  SubsampledGaussian bad = kSmallJob;
  bad.sampling_rate = 1.5;
  EXPECT_EQ(ledger->Reserve("coordinator", Request("mnist", "job-2", bad, "k2")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ledger->Reserve("coordinator", Request("nope", "job-2", kSmallJob, "k2")).status().code(),
      absl::StatusCode::kNotFound);
}

TEST(Ledger, SurvivesReopening) {
  const std::string path = FreshPath("reopen.db");
  std::string reservation_id;
  double reserved;
  {
    auto ledger = OpenLedger(path);
    ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", 5.0, 1e-5).ok());
    const Reservation committed =
        *ledger->Reserve("coordinator", Request("mnist", "job-1", kSmallJob, "k1"));
    ASSERT_TRUE(ledger->Commit("coordinator", committed.reservation_id, 300).ok());
    reservation_id =
        ledger->Reserve("coordinator", Request("mnist", "job-2", kSmallJob, "k2"))->reservation_id;
    reserved = ledger->GetBudget("mnist")->epsilon_reserved;
  }
  auto ledger = OpenLedger(path);
  const BudgetSummary budget = *ledger->GetBudget("mnist");
  EXPECT_EQ(budget.epsilon_reserved, reserved);
  EXPECT_EQ(budget.open_reservations, 1);
  EXPECT_TRUE(ledger->Commit("coordinator", reservation_id, 10).ok());
}

TEST(Ledger, ConcurrentReservationsNeverExceedTheBudget) {
  auto ledger = OpenLedger(FreshPath("race.db"));
  // Room for a few jobs, not for all 32 of them.
  const double room = FixedPointBudget([](double b) { return EpsilonOf(SmallJobs(4), b) * 1.01; });
  ASSERT_TRUE(ledger->RegisterDataset("admin", "mnist", room, 1e-5).ok());
  std::atomic<int> admitted{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 4; ++i) {
        const std::string job = "job-" + std::to_string(c) + "-" + std::to_string(i);
        if (ledger->Reserve("coordinator", Request("mnist", job, kSmallJob, job)).ok()) ++admitted;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const BudgetSummary budget = *ledger->GetBudget("mnist");
  EXPECT_GE(admitted.load(), 1);
  EXPECT_EQ(budget.open_reservations, admitted.load());
  EXPECT_LE(budget.epsilon_reserved, budget.epsilon_budget);
  EXPECT_NEAR(budget.epsilon_reserved, EpsilonOf(SmallJobs(admitted.load()), room), 1e-9);
  // One more would not have fit.
  EXPECT_GT(EpsilonOf(SmallJobs(admitted.load() + 1), room), budget.epsilon_budget);
}

}  // namespace
}  // namespace dpfleet::accountant

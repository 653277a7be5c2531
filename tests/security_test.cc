// The trust boundary over the real binaries on loopback (deploy/local_cluster.sh, TLS on): every
// RPC of every service called in plaintext, over TLS without a client certificate, and with a
// certificate of a role that may not call it, and a submitter acting on another submitter's job.
// Each is refused with the right code, and nothing changes in the job store or the ledger.

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/cluster_fixture.h"
#include "tests/fashion_mnist_jobs.h"

namespace dpfleet {
namespace {

// One RPC, callable on any channel to its server.
struct Rpc {
  std::string name;
  std::string server;  // "coordinator", "accountant" or "worker-0": whose port it is served on.
  Role server_role;
  std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&)> call;
  // A principal of the cluster that may not call it (empty: every role may).
  std::string refused_principal;
};

template <typename Stub, typename Request, typename Response>
std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&)> Unary(
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    std::unique_ptr<Stub> (*new_stub)(const std::shared_ptr<grpc::ChannelInterface>&,
                                      const grpc::StubOptions&),
    Request request) {
  return [=](const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = new_stub(channel, grpc::StubOptions());
    Response response;
    return ((*stub).*method)(Context().get(), request, &response);
  };
}

class SecurityTest : public LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (HasFatalFailure()) return;
    MakeCertificatesIn(state_dir_ + "/tls",
                       {"alice:submitter", "bob:submitter", "intruder:worker"});
  }

  std::shared_ptr<grpc::Channel> ChannelTo(const Rpc& rpc, const std::string& principal) {
    return MutualTlsChannel(Address(rpc.server), Certificate(principal), rpc.server_role);
  }
  std::string Address(const std::string& server) {
    return AddressIn(absl::StrCat(state_dir_, "/", server, ".port"));
  }

  // Whether `server`'s audit log records a refused call of `rpc` by `principal` whose message
  // holds `reason`.
  bool Audited(const std::string& server, const std::string& rpc, const std::string& principal,
               const std::string& reason = "") {
    std::istringstream log(ReadFile(absl::StrCat(state_dir_, "/", server, ".audit.log")));
    for (std::string line; std::getline(log, line);) {
      if (line.find(absl::StrCat("/", rpc, "\"")) != std::string::npos &&
          line.find(absl::StrCat("\"principal\":\"", principal, "\"")) != std::string::npos &&
          line.find(reason) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  // Everything a refused call might have changed: the jobs (as an admin sees them) and the budget.
  std::string State() {
    v1::ListJobsResponse jobs;
    EXPECT_TRUE(jobs_->ListJobs(Context().get(), {}, &jobs).ok());
    for (v1::Job& job : *jobs.mutable_jobs()) job.clear_progress();  // Moves while it runs.
    return absl::StrCat(jobs.SerializeAsString(), "|", Budget().SerializeAsString());
  }

  std::vector<Rpc> EveryRpc(const std::string& job_id) {
    v1::SubmitJobRequest submit;
    *submit.mutable_spec() = SmallJob(5);
    v1::GetJobRequest get;
    get.set_job_id(job_id);
    v1::CancelJobRequest cancel;
    cancel.set_job_id(job_id);
    v1::RegisterWorkerRequest register_worker;
    register_worker.set_address("127.0.0.1:1");
    v1::HeartbeatRequest heartbeat;
    heartbeat.set_worker_id("w-1");
    v1::AssignShardRequest assign;
    assign.mutable_assignment()->set_job_id("job-rogue");
    assign.mutable_assignment()->mutable_spec()->set_dataset("fashion-mnist");
    assign.mutable_assignment()->set_noise_multiplier(0);  // What an attacker would ask for.
    v1::JoinCollectiveRequest join;
    join.set_job_id(job_id);
    v1::RunStepRequest step;
    step.set_job_id(job_id);
    v1::EvaluateRequest evaluate;
    evaluate.set_job_id(job_id);
    v1::CheckpointRequest checkpoint;
    checkpoint.set_job_id(job_id);
    v1::ReleaseShardRequest release_shard;
    release_shard.set_job_id(job_id);
    v1::RegisterDatasetRequest register_dataset;
    register_dataset.set_dataset("stolen");
    register_dataset.set_epsilon_budget(100);
    register_dataset.set_delta(1e-5);
    v1::GetBudgetRequest budget;
    budget.set_dataset("fashion-mnist");
    v1::ReserveRequest reserve;
    reserve.set_dataset("fashion-mnist");
    reserve.set_job_id("job-rogue");
    reserve.set_idempotency_key("rogue");
    reserve.mutable_mechanism()->set_sampling_rate(0.01);
    reserve.mutable_mechanism()->set_noise_multiplier(1);
    reserve.mutable_mechanism()->set_steps(10);
    v1::CommitRequest commit;
    commit.set_reservation_id("r-1");
    v1::ReleaseRequest release;
    release.set_reservation_id("r-1");
    v1::LeaseRequest lease;
    lease.set_reservation_id("r-1");
    lease.add_rank_nonces(std::string(16, 'n'));
    lease.add_shards()->set_end(60000);
    lease.set_end_step(100);
    v1::GrantAccessRequest grant;
    grant.set_dataset("fashion-mnist");
    grant.set_principal("intruder");
    v1::RevokeAccessRequest revoke;
    revoke.set_dataset("fashion-mnist");
    revoke.set_principal("alice");
    v1::ComputeEpsilonRequest epsilon;
    *epsilon.mutable_mechanism() = reserve.mechanism();
    epsilon.set_delta(1e-5);
    v1::CalibrateNoiseRequest calibrate;
    calibrate.set_sampling_rate(0.01);
    calibrate.set_steps(10);
    calibrate.set_target_epsilon(1);
    calibrate.set_delta(1e-5);
    using v1::AccountantService;
    using v1::JobService;
    using v1::WorkerRegistry;
    using v1::WorkerService;
    const Role kC = Role::kCoordinator, kA = Role::kAccountant, kW = Role::kWorker;
    return {
        {"SubmitJob", "coordinator", kC,
         Unary(&JobService::Stub::SubmitJob, &JobService::NewStub, submit), "reader"},
        {"GetJob", "coordinator", kC, Unary(&JobService::Stub::GetJob, &JobService::NewStub, get),
         "intruder"},
        {"ListJobs", "coordinator", kC,
         Unary(&JobService::Stub::ListJobs, &JobService::NewStub, v1::ListJobsRequest()),
         "intruder"},
        {"CancelJob", "coordinator", kC,
         Unary(&JobService::Stub::CancelJob, &JobService::NewStub, cancel), "reader"},
        {"WatchJob", "coordinator", kC,
         [job_id](const std::shared_ptr<grpc::Channel>& channel) {
           v1::WatchJobRequest request;
           request.set_job_id(job_id);
           auto context = Context();
           auto stream = JobService::NewStub(channel)->WatchJob(context.get(), request);
           v1::JobEvent event;
           while (stream->Read(&event)) {
           }
           return stream->Finish();
         },
         "intruder"},
        {"RegisterWorker", "coordinator", kC,
         Unary(&WorkerRegistry::Stub::RegisterWorker, &WorkerRegistry::NewStub, register_worker),
         "alice"},
        {"Heartbeat", "coordinator", kC,
         Unary(&WorkerRegistry::Stub::Heartbeat, &WorkerRegistry::NewStub, heartbeat), "admin"},
        {"ListWorkers", "coordinator", kC,
         Unary(&WorkerRegistry::Stub::ListWorkers, &WorkerRegistry::NewStub,
               v1::ListWorkersRequest()),
         "alice"},
        {"AssignShard", "worker-0", kW,
         Unary(&WorkerService::Stub::AssignShard, &WorkerService::NewStub, assign), "admin"},
        {"JoinCollective", "worker-0", kW,
         Unary(&WorkerService::Stub::JoinCollective, &WorkerService::NewStub, join), "intruder"},
        {"RunStep", "worker-0", kW,
         Unary(&WorkerService::Stub::RunStep, &WorkerService::NewStub, step), "admin"},
        {"Evaluate", "worker-0", kW,
         Unary(&WorkerService::Stub::Evaluate, &WorkerService::NewStub, evaluate), "alice"},
        {"Checkpoint", "worker-0", kW,
         Unary(&WorkerService::Stub::Checkpoint, &WorkerService::NewStub, checkpoint), "admin"},
        {"ReleaseShard", "worker-0", kW,
         Unary(&WorkerService::Stub::ReleaseShard, &WorkerService::NewStub, release_shard),
         "intruder"},
        {"RegisterDataset", "accountant", kA,
         Unary(&AccountantService::Stub::RegisterDataset, &AccountantService::NewStub,
               register_dataset),
         "alice"},
        {"GetBudget", "accountant", kA,
         Unary(&AccountantService::Stub::GetBudget, &AccountantService::NewStub, budget),
         "intruder"},
        {"Reserve", "accountant", kA,
         Unary(&AccountantService::Stub::Reserve, &AccountantService::NewStub, reserve), "admin"},
        {"Commit", "accountant", kA,
         Unary(&AccountantService::Stub::Commit, &AccountantService::NewStub, commit), "alice"},
        {"Release", "accountant", kA,
         Unary(&AccountantService::Stub::Release, &AccountantService::NewStub, release), "reader"},
        {"Lease", "accountant", kA,
         Unary(&AccountantService::Stub::Lease, &AccountantService::NewStub, lease), "admin"},
        {"GrantAccess", "accountant", kA,
         Unary(&AccountantService::Stub::GrantAccess, &AccountantService::NewStub, grant), "alice"},
        {"RevokeAccess", "accountant", kA,
         Unary(&AccountantService::Stub::RevokeAccess, &AccountantService::NewStub, revoke),
         "coordinator"},
        {"ComputeEpsilon", "accountant", kA,
         Unary(&AccountantService::Stub::ComputeEpsilon, &AccountantService::NewStub, epsilon), ""},
        {"CalibrateNoise", "accountant", kA,
         Unary(&AccountantService::Stub::CalibrateNoise, &AccountantService::NewStub, calibrate),
         ""},
    };
  }
};

TEST_F(SecurityTest, EveryRpcRefusesPlaintextStrangersAndWrongRolesAndChangesNothing) {
  RegisterDataset(1000.0);
  Grant("alice");
  // A job of alice's, held on both workers while the calls below are made.
  v1::Job job;
  {
    auto as_alice = v1::JobService::NewStub(
        MutualTlsChannel(coordinator_address_, Certificate("alice"), Role::kCoordinator));
    v1::SubmitJobRequest request;
    *request.mutable_spec() = SmallJob(100000);
    v1::SubmitJobResponse response;
    const grpc::Status submitted = as_alice->SubmitJob(Context().get(), request, &response);
    ASSERT_TRUE(submitted.ok()) << submitted.error_message();
    job = response.job();
  }
  EXPECT_EQ(job.owner(), "alice");
  job =
      WaitFor(job.job_id(), [](const v1::Job& j) { return j.progress().step() >= 2 || Ended(j); });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error();

  const std::vector<Rpc> rpcs = EveryRpc(job.job_id());
  EXPECT_EQ(rpcs.size(), 24u) << "every RPC of JobService, WorkerRegistry, WorkerService and "
                                 "AccountantService";
  const std::string before = State();
  for (const Rpc& rpc : rpcs) {
    // (a) Plaintext: no TLS handshake, no call.
    EXPECT_EQ(rpc.call(grpc::CreateChannel(Address(rpc.server), grpc::InsecureChannelCredentials()))
                  .error_code(),
              grpc::StatusCode::UNAVAILABLE)
        << rpc.name << " in plaintext";
    // (b) TLS without a client certificate: the handshake fails.
    grpc::SslCredentialsOptions anonymous;
    anonymous.pem_root_certs = Certificate("admin").ca_cert_pem;
    grpc::ChannelArguments arguments;
    arguments.SetSslTargetNameOverride(RoleDnsName(rpc.server_role));
    EXPECT_EQ(rpc.call(grpc::CreateCustomChannel(Address(rpc.server),
                                                 grpc::SslCredentials(anonymous), arguments))
                  .error_code(),
              grpc::StatusCode::UNAVAILABLE)
        << rpc.name << " without a client certificate";
    // (c) A certificate of the cluster, of a role that may not call it.
    if (rpc.refused_principal.empty()) continue;
    const grpc::Status refused = rpc.call(ChannelTo(rpc, rpc.refused_principal));
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << rpc.name << " as " << rpc.refused_principal << ": " << refused.error_message();
    EXPECT_NE(refused.error_message().find(rpc.refused_principal), std::string::npos)
        << refused.error_message();
    EXPECT_TRUE(Audited(rpc.server, rpc.name, rpc.refused_principal, "PERMISSION_DENIED"))
        << rpc.name << " refused to " << rpc.refused_principal << " is not in " << rpc.server
        << "'s audit log";
  }
  EXPECT_EQ(State(), before) << "a refused call changed the jobs or the ledger";
  EXPECT_EQ(Get(job.job_id()).state(), v1::RUNNING);
  ASSERT_TRUE(Cancel(job.job_id()).ok());
  EXPECT_EQ(WaitFor(job.job_id(), Ended).state(), v1::CANCELLED);
}

TEST_F(SecurityTest, ASubmitterCannotTouchAnotherSubmittersJob) {
  RegisterDataset(1000.0);
  Grant("alice");
  Grant("bob");
  auto as = [&](const std::string& principal) {
    return v1::JobService::NewStub(
        MutualTlsChannel(coordinator_address_, Certificate(principal), Role::kCoordinator));
  };
  const auto alice = as("alice");
  const auto bob = as("bob");
  v1::SubmitJobRequest submit;
  *submit.mutable_spec() = SmallJob(100000);
  v1::SubmitJobResponse submitted;
  ASSERT_TRUE(alice->SubmitJob(Context().get(), submit, &submitted).ok());
  const std::string job_id = submitted.job().job_id();
  v1::Job job =
      WaitFor(job_id, [](const v1::Job& j) { return j.progress().step() >= 2 || Ended(j); });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error();
  const std::string before = State();

  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job seen;
  const grpc::Status read = bob->GetJob(Context().get(), get, &seen);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(read.error_message().find("belongs to 'alice'"), std::string::npos)
      << read.error_message();
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job_id);
  EXPECT_EQ(bob->CancelJob(Context().get(), cancel, &seen).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::WatchJobRequest watch;
  watch.set_job_id(job_id);
  auto context = Context();
  auto stream = bob->WatchJob(context.get(), watch);
  v1::JobEvent event;
  EXPECT_FALSE(stream->Read(&event));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::ListJobsResponse listed;
  ASSERT_TRUE(bob->ListJobs(Context().get(), {}, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0) << "bob sees alice's job";
  EXPECT_EQ(State(), before);

  // Alice sees her own job's private diagnostics; an admin sees the job without them.
  ASSERT_TRUE(alice->GetJob(Context().get(), get, &seen).ok());
  EXPECT_GT(seen.progress().batch_size(), 0);
  EXPECT_EQ(Get(job_id).progress().batch_size(), 0);
  ASSERT_TRUE(alice->CancelJob(Context().get(), cancel, &seen).ok());
  EXPECT_EQ(WaitFor(job_id, Ended).state(), v1::CANCELLED);
}

TEST_F(SecurityTest, ASubmitterWithoutAGrantCannotSpendADatasetsBudget) {
  RegisterDataset(1000.0);
  auto alice = v1::JobService::NewStub(
      MutualTlsChannel(coordinator_address_, Certificate("alice"), Role::kCoordinator));
  v1::SubmitJobRequest submit;
  *submit.mutable_spec() = SmallJob(5);
  v1::SubmitJobResponse submitted;
  const std::string before = State();
  const grpc::Status refused = alice->SubmitJob(Context().get(), submit, &submitted);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("'alice' holds no grant on dataset 'fashion-mnist'"),
            std::string::npos)
      << refused.error_message();
  EXPECT_EQ(State(), before);
  Grant("alice");
  EXPECT_TRUE(alice->SubmitJob(Context().get(), submit, &submitted).ok());
  EXPECT_EQ(WaitFor(submitted.job().job_id(), Ended).state(), v1::SUCCEEDED);
}

// A coordinator taken over by an attacker holds the coordinator's certificate: it can reserve and
// lease budget, and call the workers. It still cannot run a step with less noise than the
// accountant admitted, and what it leased stays charged.
TEST_F(SecurityTest, AWorkerRefusesAMechanismItsTicketDoesNotCover) {
  RegisterDataset(1000.0);
  const TlsMaterial coordinator = Certificate("coordinator");
  auto accountant = v1::AccountantService::NewStub(
      MutualTlsChannel(AddressIn(state_dir_ + "/accountant.port"), coordinator, Role::kAccountant));
  auto worker =
      v1::WorkerService::NewStub(MutualTlsChannel(Address("worker-0"), coordinator, Role::kWorker));
  const v1::JobSpec spec = SmallJob(10);
  v1::ReserveRequest reserve;
  reserve.set_dataset("fashion-mnist");
  reserve.set_job_id("job-rogue");
  reserve.set_idempotency_key("job-rogue");
  reserve.mutable_mechanism()->set_sampling_rate(0.01);
  reserve.mutable_mechanism()->set_noise_multiplier(1.0);
  reserve.mutable_mechanism()->set_steps(10);
  reserve.set_clip_norm(spec.clip_norm());
  reserve.set_submitter("admin");
  v1::ReserveResponse reserved;
  ASSERT_TRUE(accountant->Reserve(Context().get(), reserve, &reserved).ok());

  v1::AssignShardRequest assign;
  v1::ShardAssignment& assignment = *assign.mutable_assignment();
  assignment.set_job_id("job-rogue");
  *assignment.mutable_spec() = spec;
  assignment.set_world_size(1);
  assignment.set_sampling_rate(0.01);
  assignment.set_noise_multiplier(0);  // A noise-free step would release the raw gradient sum.
  assignment.set_total_steps(10);
  assignment.set_dataset_size(60000);
  assignment.set_shard_end(60000);
  assignment.set_collective_timeout_s(10);
  assignment.set_rendezvous_secret(std::string(16, 's'));
  v1::AssignShardResponse assigned;
  ASSERT_TRUE(worker->AssignShard(Context().get(), assign, &assigned).ok());

  // The accountant leases the admitted mechanism (sigma 1) to this worker's group.
  v1::LeaseRequest lease;
  lease.set_reservation_id(reserved.reservation_id());
  lease.add_rank_nonces(assigned.session_nonce());
  lease.add_shards()->set_end(60000);
  lease.set_end_step(1);
  v1::LeaseResponse leased;
  ASSERT_TRUE(accountant->Lease(Context().get(), lease, &leased).ok());
  v1::JoinCollectiveRequest join;
  join.set_job_id("job-rogue");
  *join.mutable_ticket() = leased.ticket();
  v1::JoinCollectiveResponse joined;
  const grpc::Status refused = worker->JoinCollective(Context().get(), join, &joined);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("noise multiplier is 0"), std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(Audited("worker-0", "JoinCollective", "coordinator", "noise multiplier is 0"));
  v1::RunStepRequest step;
  step.set_job_id("job-rogue");
  *step.mutable_ticket() = leased.ticket();
  v1::RunStepResponse stepped;
  EXPECT_EQ(worker->RunStep(Context().get(), step, &stepped).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION)
      << "a worker that refused the group has no trainer to step";

  // The leased step cannot be taken back: no release, and a commit of nothing charges it.
  v1::ReleaseRequest release;
  release.set_reservation_id(reserved.reservation_id());
  v1::ReleaseResponse released;
  EXPECT_EQ(accountant->Release(Context().get(), release, &released).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::CommitRequest commit;
  commit.set_reservation_id(reserved.reservation_id());
  v1::CommitResponse committed;
  ASSERT_TRUE(accountant->Commit(Context().get(), commit, &committed).ok());
  EXPECT_EQ(committed.steps_committed(), 1);
  v1::ReleaseShardRequest release_shard;
  release_shard.set_job_id("job-rogue");
  v1::ReleaseShardResponse shard_released;
  EXPECT_TRUE(worker->ReleaseShard(Context().get(), release_shard, &shard_released).ok());
}

}  // namespace
}  // namespace dpfleet

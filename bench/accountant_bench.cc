// Accountant benchmarks: the accounting math, and the service's throughput with 8 concurrent
// clients over loopback gRPC on a real SQLite ledger (WAL, synchronous=FULL).
//
//   bazel run -c opt //bench:accountant_bench

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "accountant/accountant_service.h"
#include "accountant/accounting.h"
#include "accountant/privacy_filter.h"
#include "bench/bench_certificates.h"
#include "benchmark/benchmark.h"
#include "common/serve.h"
#include "common/tls.h"

namespace dpfleet::accountant {
namespace {

// The MNIST DP-SGD setting of Abadi et al. (2016): batch 256 of 60000, sigma 1.1, 60 epochs.
constexpr SubsampledGaussian kMnist{
    .sampling_rate = 256.0 / 60000, .noise_multiplier = 1.1, .steps = 14063};
constexpr double kDelta = 1e-5;

void BM_RdpEpsilon(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(MechanismEpsilon(kMnist, kDelta, AccountingMethod::kRdp));
}
BENCHMARK(BM_RdpEpsilon)->Unit(benchmark::kMillisecond);

void BM_RdpCalibrateNoise(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        CalibrateNoise(kMnist.sampling_rate, kMnist.steps, 2.0, kDelta, AccountingMethod::kRdp));
  }
}
BENCHMARK(BM_RdpCalibrateNoise)->Unit(benchmark::kMillisecond);

void BM_PldEpsilon(benchmark::State& state) {
  double epsilon = 0;
  for (auto _ : state) epsilon = *MechanismEpsilon(kMnist, kDelta, AccountingMethod::kPld);
  state.counters["epsilon"] = epsilon;
  state.counters["rdp_epsilon"] = *MechanismEpsilon(kMnist, kDelta, AccountingMethod::kRdp);
}
BENCHMARK(BM_PldEpsilon)->Unit(benchmark::kMillisecond);

void BM_PldCalibrateNoise(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        CalibrateNoise(kMnist.sampling_rate, kMnist.steps, 2.0, kDelta, AccountingMethod::kPld));
  }
}
BENCHMARK(BM_PldCalibrateNoise)->Unit(benchmark::kMillisecond);

void BM_ExactFullBatchEpsilon(benchmark::State& state) {
  const SubsampledGaussian full{.sampling_rate = 1.0, .noise_multiplier = 1.19, .steps = 3};
  for (auto _ : state)
    benchmark::DoNotOptimize(MechanismEpsilon(full, 1e-6, AccountingMethod::kExact));
}
BENCHMARK(BM_ExactFullBatchEpsilon)->Unit(benchmark::kMillisecond);

void BM_ExactCalibrateNoise(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(CalibrateNoise(1.0, 1, 4.0, 1e-6, AccountingMethod::kExact));
}
BENCHMARK(BM_ExactCalibrateNoise)->Unit(benchmark::kMillisecond);

void BM_FilterEpsilon(benchmark::State& state) {
  AdmittedMechanisms admitted;
  admitted.Compose(kMnist).IgnoreError();
  const PrivacyFilter filter = *PrivacyFilter::FittedTo(kMnist, 8.0, kDelta);
  for (auto _ : state) benchmark::DoNotOptimize(filter.Epsilon(admitted, kDelta));
}
BENCHMARK(BM_FilterEpsilon)->Unit(benchmark::kMicrosecond);

// One accountant server shared by the service benchmarks' threads, over mutual TLS as deployed.
struct Service {
  Service() {
    dir = MakeBenchCertificates("accountant:accountant coordinator:coordinator");
    ledger = *Ledger::Open({.path = dir + "/ledger.db"});
    signer = *TicketSigner::FromFile(dir + "/ticket.key", "ticket.key");
    service = std::make_unique<AccountantServiceImpl>(ledger.get(), signer.get());
    server = *StartServer(
        {.listen_address = "127.0.0.1:0",
         .credentials = MutualTlsServerCredentials(BenchCertificate(dir, "accountant"))},
        {service.get()});
    ledger->RegisterDataset("bench", "mnist", 1e6, kDelta).IgnoreError();
  }

  // A client with the coordinator's certificate (which may reserve, lease, commit and read).
  std::unique_ptr<v1::AccountantService::Stub> NewStub() const {
    return v1::AccountantService::NewStub(MutualTlsChannel(absl::StrCat("127.0.0.1:", server.port),
                                                           BenchCertificate(dir, "coordinator"),
                                                           Role::kAccountant));
  }

  std::string dir;
  std::unique_ptr<Ledger> ledger;
  std::unique_ptr<TicketSigner> signer;
  std::unique_ptr<AccountantServiceImpl> service;
  RunningServer server;
};

Service& SharedService() {
  static Service* const service = new Service();
  return *service;
}

std::unique_ptr<grpc::ClientContext> Context() { return std::make_unique<grpc::ClientContext>(); }

// A reservation request for `steps` steps under a fresh key, for the dataset's registrant.
v1::ReserveRequest FreshReservation(int64_t steps) {
  static std::atomic<int64_t> next_key{0};
  const std::string key = absl::StrCat("bench-", next_key++);
  v1::ReserveRequest reserve;
  reserve.set_dataset("mnist");
  reserve.set_job_id(key);
  reserve.set_idempotency_key(key);
  reserve.mutable_mechanism()->set_sampling_rate(0.01);
  reserve.mutable_mechanism()->set_noise_multiplier(1.0);
  reserve.mutable_mechanism()->set_steps(steps);
  reserve.set_clip_norm(1.0);
  reserve.set_submitter("bench");
  return reserve;
}

void BM_ServiceGetBudget(benchmark::State& state) {
  auto stub = SharedService().NewStub();
  v1::GetBudgetRequest request;
  request.set_dataset("mnist");
  for (auto _ : state) {
    v1::GetBudgetResponse response;
    if (!stub->GetBudget(Context().get(), request, &response).ok())
      state.SkipWithError("GetBudget");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServiceGetBudget)->Threads(8)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_ServiceReserveCommit(benchmark::State& state) {
  auto stub = SharedService().NewStub();
  for (auto _ : state) {
    v1::ReserveResponse reserved;
    if (!stub->Reserve(Context().get(), FreshReservation(10), &reserved).ok()) {
      state.SkipWithError("Reserve");
      break;
    }
    v1::CommitRequest commit;
    commit.set_reservation_id(reserved.reservation_id());
    commit.set_steps_run(10);
    v1::CommitResponse committed;
    if (!stub->Commit(Context().get(), commit, &committed).ok()) state.SkipWithError("Commit");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServiceReserveCommit)->Threads(8)->UseRealTime()->Unit(benchmark::kMillisecond);

// What a running job pays per lease (StepLeaser): a durable ledger update and a signed ticket for
// the next 8 steps of a 4-rank group.
void BM_ServiceLease(benchmark::State& state) {
  auto stub = SharedService().NewStub();
  v1::ReserveResponse reserved;
  if (!stub->Reserve(Context().get(), FreshReservation(1'000'000), &reserved).ok()) {
    state.SkipWithError("Reserve");
    return;
  }
  v1::LeaseRequest lease;
  lease.set_reservation_id(reserved.reservation_id());
  for (int rank = 0; rank < 4; ++rank) {
    lease.add_rank_nonces(std::string(16, static_cast<char>(rank)));
    v1::ShardRange* shard = lease.add_shards();
    shard->set_begin(rank * 15000);
    shard->set_end(rank * 15000 + 15000);
  }
  for (auto _ : state) {
    lease.set_end_step(lease.end_step() + 8);
    v1::LeaseResponse leased;
    if (!stub->Lease(Context().get(), lease, &leased).ok()) state.SkipWithError("Lease");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServiceLease)->Threads(8)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace dpfleet::accountant

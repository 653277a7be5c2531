// What mutual TLS and admission tickets cost the control path, side by side in one run: the same
// gRPC server answers the same call over its mutual-TLS port and over its plaintext health port,
// on loopback; connecting (the handshake) is timed the same way; and the worker's per-step ticket
// check (Ed25519 verification and CheckTicketCovers) and the accountant's signature are timed
// alone. Every dpfleet step makes one RunStep call per worker and one ticket check per worker, so
// these times, against a step's, are the fraction TLS and tickets add.
//
//   bazel run -c opt //bench:tls_bench

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/bench_certificates.h"
#include "benchmark/benchmark.h"
#include "common/admission_ticket.h"
#include "common/serve.h"
#include "proto/health.grpc.pb.h"
#include "worker/admission.h"

namespace dpfleet {
namespace {

struct Servers {
  Servers() : dir(MakeBenchCertificates("worker:worker coordinator:coordinator")) {
    server =
        *StartServer({.listen_address = "127.0.0.1:0",
                      .credentials = MutualTlsServerCredentials(BenchCertificate(dir, "worker")),
                      .health_listen_address = "127.0.0.1:0"},
                     {});
  }
  std::shared_ptr<grpc::Channel> Channel(bool tls) const {
    grpc::ChannelArguments arguments;
    // A fresh connection per channel, so that a new channel's first call pays the handshake.
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (tls) {
      return MutualTlsChannel(absl::StrCat("127.0.0.1:", server.port),
                              BenchCertificate(dir, "coordinator"), Role::kWorker, arguments);
    }
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server.health_port),
                                     grpc::InsecureChannelCredentials(), arguments);
  }
  std::string dir;
  RunningServer server;
};

const Servers& SharedServers() {
  static const Servers* const servers = new Servers();
  return *servers;
}

bool Check(grpc::health::v1::Health::Stub& stub) {
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return stub.Check(&context, request, &response).ok();
}

// One unary call on an open channel: what a RunStep, Lease or Commit pays for the transport.
void BM_UnaryCall(benchmark::State& state) {
  const bool tls = state.range(0) == 1;
  auto stub = grpc::health::v1::Health::NewStub(SharedServers().Channel(tls));
  if (!Check(*stub)) state.SkipWithError("the first call failed");
  for (auto _ : state) {
    if (!Check(*stub)) state.SkipWithError("call failed");
  }
  state.SetLabel(tls ? "mutual TLS" : "plaintext");
}
BENCHMARK(BM_UnaryCall)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// A new connection and its first call: what a coordinator pays once per worker and job.
void BM_ConnectAndCall(benchmark::State& state) {
  const bool tls = state.range(0) == 1;
  for (auto _ : state) {
    auto stub = grpc::health::v1::Health::NewStub(SharedServers().Channel(tls));
    if (!Check(*stub)) state.SkipWithError("call failed");
  }
  state.SetLabel(tls ? "mutual TLS" : "plaintext");
}
BENCHMARK(BM_ConnectAndCall)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// A ticket as a 4-rank job's workers see it.
v1::TicketBody FourRankTicket(v1::ShardAssignment* assignment) {
  v1::TicketBody body;
  body.set_job_id("job-0123456789abcdef0123456789abcdef");
  body.set_dataset("fashion-mnist");
  body.set_reservation_id("res-0123456789abcdef01234567");
  body.set_sampling_rate(0.01);
  body.set_noise_multiplier(1.1);
  body.set_clip_norm(1.0);
  for (int rank = 0; rank < 4; ++rank) {
    body.add_rank_nonces(std::string(16, static_cast<char>('a' + rank)));
    v1::ShardRange* shard = body.add_shards();
    shard->set_begin(rank * 15000);
    shard->set_end(rank * 15000 + 15000);
  }
  body.set_end_step(8);
  body.set_expires_unix_ms(absl::ToUnixMillis(absl::Now() + absl::Hours(1)));
  assignment->set_job_id(body.job_id());
  assignment->mutable_spec()->set_dataset(body.dataset());
  assignment->mutable_spec()->set_clip_norm(body.clip_norm());
  assignment->set_sampling_rate(body.sampling_rate());
  assignment->set_noise_multiplier(body.noise_multiplier());
  assignment->set_rank(2);
  assignment->set_world_size(4);
  assignment->set_shard_begin(30000);
  assignment->set_shard_end(45000);
  return body;
}

// The accountant's cost per lease, beyond the ledger update.
void BM_SignTicket(benchmark::State& state) {
  const auto signer = *TicketSigner::FromFile(SharedServers().dir + "/ticket.key", "ticket.key");
  v1::ShardAssignment assignment;
  const v1::TicketBody body = FourRankTicket(&assignment);
  for (auto _ : state) benchmark::DoNotOptimize(signer->Sign(body));
}
BENCHMARK(BM_SignTicket)->Unit(benchmark::kMicrosecond);

// A worker's check of each step: the signature, then that the ticket covers the step.
void BM_CheckTicketPerStep(benchmark::State& state) {
  const auto signer = *TicketSigner::FromFile(SharedServers().dir + "/ticket.key", "ticket.key");
  const auto verifier =
      *TicketVerifier::FromFile(SharedServers().dir + "/ticket.pub", "ticket.pub");
  v1::ShardAssignment assignment;
  const v1::AdmissionTicket ticket = *signer->Sign(FourRankTicket(&assignment));
  const std::string nonce(16, 'c');
  for (auto _ : state) {
    const absl::StatusOr<v1::TicketBody> body = verifier->Verify(ticket);
    if (!body.ok() || !worker::CheckTicketCovers(*body, assignment, nonce, 3, absl::Now()).ok()) {
      state.SkipWithError("the ticket did not check out");
    }
  }
}
BENCHMARK(BM_CheckTicketPerStep)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace dpfleet

BENCHMARK_MAIN();

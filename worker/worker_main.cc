// dpfleet-worker: serves WorkerService, registers with the coordinator and keeps heartbeating.

#include <ATen/Parallel.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/serve.h"
#include "common/server_flags.h"
#include "worker/caching_allocator.h"
#include "worker/worker_service.h"

ABSL_FLAG(std::string, advertise_host, "127.0.0.1",
          "host (name or address) the coordinator uses to reach this worker's WorkerService");
ABSL_FLAG(std::string, collective_host, "",
          "this host's address on the collective network: the job's rendezvous store (when this "
          "worker is rank 0) and its Gloo device bind to it, and the other workers connect to it "
          "(default: --advertise_host)");
ABSL_FLAG(std::string, coordinator, "", "host:port of the coordinator (required)");
ABSL_FLAG(std::string, data_dir, "/usr/share/datasets", "folder of datasets, one sub-folder each");
ABSL_FLAG(int, threads, 1, "intra-op threads for tensor math (1 when workers share cores)");
ABSL_FLAG(std::string, collective, "gloo",
          "all-reduce backend: gloo (CPU) or nccl (GPU, CUDA build)");
ABSL_FLAG(int, gpu, 0, "GPU used by the nccl collective");
ABSL_FLAG(std::string, ticket_public_key, "",
          "the accountant's ticket key (Ed25519 public key, PEM; deploy/make_certs.sh makes it as "
          "ticket.pub): this worker runs only steps an admission ticket signed with it covers");

namespace {

using dpfleet::v1::WorkerRegistry;

// Registers until the coordinator answers; returns the worker id and heartbeat interval.
dpfleet::v1::RegisterWorkerResponse RegisterUntilAccepted(
    WorkerRegistry::Stub& registry, const dpfleet::v1::RegisterWorkerRequest& request,
    const std::atomic<bool>& stopping) {
  while (!stopping) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    dpfleet::v1::RegisterWorkerResponse response;
    const grpc::Status status = registry.RegisterWorker(&context, request, &response);
    if (status.ok()) return response;
    std::cerr << "dpfleet-worker: registration failed (" << status.error_message()
              << "); retrying\n";
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  dpfleet::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_coordinator).empty()) {
    std::cerr << "dpfleet-worker: --coordinator is required\n";
    return 2;
  }
  // One certificate (role worker) for its server and as the coordinator's client.
  const absl::StatusOr<dpfleet::TlsMaterial> tls = dpfleet::TlsFromFlags();
  if (!tls.ok()) {
    std::cerr << "dpfleet-worker: " << tls.status() << "\n";
    return 2;
  }
  const auto tickets = dpfleet::TicketVerifier::FromFile(absl::GetFlag(FLAGS_ticket_public_key),
                                                         "--ticket_public_key");
  if (!tickets.ok()) {
    std::cerr << "dpfleet-worker: " << tickets.status() << "\n";
    return 2;
  }
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  dpfleet::worker::InstallCachingCpuAllocator();
  auto datasets = dpfleet::worker::LoadDatasets(absl::GetFlag(FLAGS_data_dir));
  if (!datasets.ok()) {
    std::cerr << "dpfleet-worker: " << datasets.status() << "\n";
    return 1;
  }
  const dpfleet::worker::WorkerOptions options{
      .data_dir = absl::GetFlag(FLAGS_data_dir),
      .collective_host = absl::GetFlag(FLAGS_collective_host).empty()
                             ? absl::GetFlag(FLAGS_advertise_host)
                             : absl::GetFlag(FLAGS_collective_host),
      .collective = absl::GetFlag(FLAGS_collective),
      .gpu_device = absl::GetFlag(FLAGS_gpu)};
  if (absl::Status valid = dpfleet::worker::ValidateWorkerOptions(options); !valid.ok()) {
    std::cerr << "dpfleet-worker: " << valid << "\n";
    return 2;
  }
  dpfleet::worker::WorkerServiceImpl service(options, std::move(*datasets), tickets->get());
  auto server = dpfleet::StartServer(
      dpfleet::ServerOptionsFromFlags(*tls, dpfleet::worker::kMaxWorkerRequestBytes), {&service});
  if (!server.ok()) {
    std::cerr << "dpfleet-worker: " << server.status() << "\n";
    return 1;
  }

  dpfleet::v1::RegisterWorkerRequest registration;
  registration.set_address(absl::StrCat(absl::GetFlag(FLAGS_advertise_host), ":", server->port));
  for (const auto& info : service.DatasetInfos()) *registration.add_datasets() = info;
  // Reconnect quickly when the coordinator restarts, instead of gRPC's default backoff of up to 2
  // min.
  grpc::ChannelArguments channel_arguments;
  channel_arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  channel_arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto registry = WorkerRegistry::NewStub(dpfleet::MutualTlsChannel(
      absl::GetFlag(FLAGS_coordinator), *tls, dpfleet::Role::kCoordinator, channel_arguments));
  std::atomic<bool> stopping{false};
  std::thread heartbeat([&] {
    auto registered = RegisterUntilAccepted(*registry, registration, stopping);
    std::cerr << "dpfleet-worker: registered as " << registered.worker_id() << " serving "
              << registration.address() << " with " << registration.datasets_size()
              << " dataset(s)\n";
    while (!stopping) {
      std::this_thread::sleep_for(std::chrono::milliseconds(registered.heartbeat_interval_ms()));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      dpfleet::v1::HeartbeatRequest request;
      request.set_worker_id(registered.worker_id());
      dpfleet::v1::HeartbeatResponse response;
      const grpc::Status status = registry->Heartbeat(&context, request, &response);
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {  // The coordinator restarted.
        registered = RegisterUntilAccepted(*registry, registration, stopping);
      }
    }
  });
  dpfleet::WaitForTerminationSignal();
  stopping = true;
  server->server->Shutdown();
  heartbeat.join();
  return 0;
}

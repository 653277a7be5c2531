// dpfleet-coordinator: serves JobService to clients and WorkerRegistry to workers.

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/serve.h"
#include "common/server_flags.h"
#include "coordinator/coordinator_service.h"

ABSL_FLAG(std::string, accountant, "", "host:port of the accountant (required)");
ABSL_FLAG(std::string, jobs_db, "", "SQLite file of the job store (created if missing; required)");
ABSL_FLAG(int, heartbeat_interval_ms, 1000, "how often workers report that they are alive");
ABSL_FLAG(int, heartbeat_timeout_ms, 5000, "silence after which a worker counts as dead");
ABSL_FLAG(int, collective_timeout_s, 60, "how long workers wait for a peer in a collective");
ABSL_FLAG(int, checkpoint_every_steps, 25, "steps between checkpoints a failed job resumes from");
ABSL_FLAG(int, max_attempts, 3, "how many times a job is started in all, resumptions included");
ABSL_FLAG(int, resume_wait_s, 10,
          "after a failure, how long to wait for the job's workers before resuming on fewer");
ABSL_FLAG(int, lease_steps, 8,
          "steps leased from the accountant at a time: a job that stops early is charged up to "
          "this many minus one steps it did not run");

int main(int argc, char** argv) {
  dpfleet::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_accountant).empty()) {
    std::cerr << "dpfleet-coordinator: --accountant is required\n";
    return 2;
  }
  // One certificate (role coordinator) for its server, and as client of the accountant and of
  // the workers.
  const absl::StatusOr<dpfleet::TlsMaterial> tls = dpfleet::TlsFromFlags();
  if (!tls.ok()) {
    std::cerr << "dpfleet-coordinator: " << tls.status() << "\n";
    return 2;
  }
  using namespace dpfleet::coordinator;
  if (absl::GetFlag(FLAGS_jobs_db).empty()) {
    std::cerr << "dpfleet-coordinator: --jobs_db is required: jobs must survive a restart\n";
    return 2;
  }
  auto store = JobStore::Open(absl::GetFlag(FLAGS_jobs_db));
  if (!store.ok()) {
    std::cerr << "dpfleet-coordinator: " << store.status() << "\n";
    return 1;
  }
  JobTable jobs(store->get());
  WorkerPool workers(absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_timeout_ms)));
  AccountantClient accountant(
      dpfleet::MutualTlsChannel(absl::GetFlag(FLAGS_accountant), *tls, dpfleet::Role::kAccountant),
      absl::Seconds(30));
  WorkerRegistryImpl registry(&workers,
                              absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_interval_ms)));
  auto job_service = std::make_unique<JobServiceImpl>(
      &jobs, &workers, &accountant,
      JobRunnerOptions{.checkpoint_every_steps = absl::GetFlag(FLAGS_checkpoint_every_steps),
                       .max_attempts = absl::GetFlag(FLAGS_max_attempts),
                       .resume_wait = absl::Seconds(absl::GetFlag(FLAGS_resume_wait_s)),
                       .collective_timeout_s = absl::GetFlag(FLAGS_collective_timeout_s),
                       .lease_steps = absl::GetFlag(FLAGS_lease_steps),
                       .tls = *tls});
  if (absl::Status recovered = job_service->Recover(); !recovered.ok()) {
    std::cerr << "dpfleet-coordinator: recovering jobs: " << recovered << "\n";
    return 1;
  }
  auto server = dpfleet::StartServer(
      dpfleet::ServerOptionsFromFlags(*tls, dpfleet::coordinator::kMaxCoordinatorRequestBytes),
      {job_service.get(), &registry});
  if (!server.ok()) {
    std::cerr << "dpfleet-coordinator: " << server.status() << "\n";
    return 1;
  }
  std::cerr << "dpfleet-coordinator: serving on port " << server->port << ", accountant at "
            << absl::GetFlag(FLAGS_accountant) << "\n";
  dpfleet::WaitForTerminationSignal();
  server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  // Suspends running jobs at a step boundary and leaves queued ones queued: the next coordinator
  // on this job store resumes them.
  job_service.reset();
  return 0;
}

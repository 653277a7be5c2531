#include "common/serve.h"

#include <signal.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "proto/health.grpc.pb.h"

namespace dpfleet {
namespace {

// grpc.health.v1's Check for the server as a whole (service ""): SERVING while it runs.
class ServingHealth final : public grpc::health::v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override {
    if (!request->service().empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "health is reported for the whole server only (service \"\")");
    }
    response->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  const sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  const sigset_t set = TerminationSignals();
  int signal_number = 0;
  sigwait(&set, &signal_number);
  return signal_number;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << contents;
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", temp));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<RunningServer> StartServer(const ServerOptions& options,
                                          const std::vector<grpc::Service*>& services) {
  if (options.credentials == nullptr) {
    return absl::InvalidArgumentError("a dpfleet server needs TLS credentials");
  }
  RunningServer running;
  absl::StatusOr<std::unique_ptr<AuditLog>> audit_log = AuditLog::Open(options.audit_log);
  if (!audit_log.ok()) return audit_log.status();
  running.audit_log = *std::move(audit_log);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, options.credentials, &running.port);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(AuditRefusals(running.audit_log.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  running.health_services.push_back(std::make_unique<ServingHealth>());
  builder.RegisterService(running.health_services.back().get());
  running.server = builder.BuildAndStart();
  if (running.server == nullptr || running.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address));
  }
  if (!options.health_listen_address.empty()) {
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(options.health_listen_address,
                                    grpc::InsecureServerCredentials(), &running.health_port);
    running.health_services.push_back(std::make_unique<ServingHealth>());
    health_builder.RegisterService(running.health_services.back().get());
    running.health_server = health_builder.BuildAndStart();
    if (running.health_server == nullptr || running.health_port == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen for health checks on ", options.health_listen_address));
    }
  }
  for (const auto& [path, port] : {std::pair{options.port_file, running.port},
                                   std::pair{options.health_port_file, running.health_port}}) {
    if (path.empty()) continue;
    if (absl::Status written = WriteFileAtomically(path, absl::StrCat(port, "\n")); !written.ok()) {
      return written;
    }
  }
  return running;
}

}  // namespace dpfleet

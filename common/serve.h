#ifndef DPFLEET_COMMON_SERVE_H_
#define DPFLEET_COMMON_SERVE_H_

// Running a dpfleet gRPC server process: bind, publish the bound port, wait for SIGINT/SIGTERM,
// shut down gracefully.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/audit_log.h"
#include "grpcpp/grpcpp.h"

namespace dpfleet {

// Blocks SIGINT and SIGTERM in the calling thread and every thread it creates afterwards, so that
// WaitForTerminationSignal() receives them. Call first thing in main, before any thread starts.
void BlockTerminationSignals();

// Waits until SIGINT or SIGTERM arrives; returns the signal number.
int WaitForTerminationSignal();

struct ServerOptions {
  // host:port to listen on; port 0 picks a free port.
  std::string listen_address = "127.0.0.1:0";
  // When set, the bound port is written here (atomically: temp file, then rename) once serving.
  std::string port_file;
  // Mutual TLS (common/tls.h); required: no dpfleet service is served in plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // When set, a second, plaintext listener serving only gRPC's health service (grpc.health.v1),
  // for probes that cannot present a certificate (Kubernetes' gRPC probes). It reveals nothing
  // but whether the server runs. Its bound port goes to `health_port_file` when that is set.
  std::string health_listen_address;
  std::string health_port_file;
  // Where refused calls are recorded (common/audit_log.h); empty: stderr.
  std::string audit_log;
  // The largest request message the server accepts; a larger one is refused with
  // RESOURCE_EXHAUSTED before it is parsed. Each service sets it to what its RPCs carry.
  int max_request_bytes = 1 << 20;
};

struct RunningServer {
  std::unique_ptr<AuditLog> audit_log;  // Outlives the servers that append to it.
  // Each server's grpc.health.v1 service; declared first, so that it outlives the servers.
  std::vector<std::unique_ptr<grpc::Service>> health_services;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::unique_ptr<grpc::Server> health_server;  // Null without health_listen_address.
  int health_port = 0;
};

// Starts a server with `services` and grpc.health.v1's Check (SERVING for the whole server until it
// stops), auditing every refused call. Errors: kInvalidArgument without credentials; kUnavailable
// when an address cannot be bound; kInternal when a port file or the audit log cannot be written.
absl::StatusOr<RunningServer> StartServer(const ServerOptions& options,
                                          const std::vector<grpc::Service*>& services);

// Writes `contents` to `path` through a temporary file and rename, so readers never see a partial
// file. Errors: kInternal naming the path.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_SERVE_H_

#ifndef DPFLEET_COMMON_SERVE_H_
#define DPFLEET_COMMON_SERVE_H_

// Running a dpfleet gRPC server process: bind, publish the bound port, wait for SIGINT/SIGTERM,
// shut down gracefully.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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
};

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// Starts a server with `services` (insecure credentials: loopback or a private network) and gRPC's
// health service (grpc.health.v1), which reports SERVING for the whole server until it stops.
// Errors: kUnavailable when the address cannot be bound; kInternal when the port file cannot be
// written.
absl::StatusOr<RunningServer> StartServer(const ServerOptions& options,
                                          const std::vector<grpc::Service*>& services);

// Writes `contents` to `path` through a temporary file and rename, so readers never see a partial
// file. Errors: kInternal naming the path.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_SERVE_H_

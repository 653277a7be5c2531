#include "common/server_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "host:port to serve on (port 0: any free port)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving");
ABSL_FLAG(
    std::string, health_listen, "",
    "host:port of a plaintext listener serving only grpc.health.v1 (for probes; empty: none)");
ABSL_FLAG(std::string, health_port_file, "", "write the health listener's bound port here");
ABSL_FLAG(std::string, audit_log, "",
          "append every refused call (UNAUTHENTICATED, PERMISSION_DENIED) here, one JSON object "
          "per line (empty: stderr)");
ABSL_FLAG(std::string, tls_ca, "", "PEM certificate of the cluster CA (required)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate of this process, signed by the cluster CA (required)");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key of --tls_cert, which nobody but its owner (and group) may read "
          "(required)");

namespace dpfleet {

absl::StatusOr<TlsMaterial> TlsFromFlags() {
  return LoadTls({.ca_cert = absl::GetFlag(FLAGS_tls_ca),
                  .cert = absl::GetFlag(FLAGS_tls_cert),
                  .key = absl::GetFlag(FLAGS_tls_key)});
}

ServerOptions ServerOptionsFromFlags(const TlsMaterial& tls, int max_request_bytes) {
  return {.listen_address = absl::GetFlag(FLAGS_listen),
          .port_file = absl::GetFlag(FLAGS_port_file),
          .credentials = MutualTlsServerCredentials(tls),
          .health_listen_address = absl::GetFlag(FLAGS_health_listen),
          .health_port_file = absl::GetFlag(FLAGS_health_port_file),
          .audit_log = absl::GetFlag(FLAGS_audit_log),
          .max_request_bytes = max_request_bytes};
}

}  // namespace dpfleet

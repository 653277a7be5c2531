#ifndef DPFLEET_COMMON_SERVER_FLAGS_H_
#define DPFLEET_COMMON_SERVER_FLAGS_H_

// The flags every dpfleet server takes: where it listens (--listen, --port_file), its plaintext
// health listener (--health_listen, --health_port_file), its audit log of refused calls
// (--audit_log) and its TLS files (--tls_ca, --tls_cert, --tls_key).

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "common/serve.h"
#include "common/tls.h"

ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(std::string, health_listen);
ABSL_DECLARE_FLAG(std::string, health_port_file);
ABSL_DECLARE_FLAG(std::string, audit_log);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);

namespace dpfleet {

// Returns the TLS material the flags name. Errors: those of LoadTls.
absl::StatusOr<TlsMaterial> TlsFromFlags();

// Returns the options the flags give a server that presents `tls`, demands client certificates
// and accepts requests of up to `max_request_bytes`.
ServerOptions ServerOptionsFromFlags(const TlsMaterial& tls, int max_request_bytes);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_SERVER_FLAGS_H_

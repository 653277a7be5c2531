#ifndef DPFLEET_COMMON_AUDIT_LOG_H_
#define DPFLEET_COMMON_AUDIT_LOG_H_

// The audit log of refused calls: every RPC a server answers UNAUTHENTICATED or PERMISSION_DENIED
// (a missing or wrong certificate role, another submitter's job, an admission ticket that does
// not cover a step), with who asked, from where, and why it was refused. One JSON object per
// line, appended with one write(2) each to a file opened O_APPEND (so concurrent records never
// interleave), mode 0600. Handshakes that fail (plaintext, no client certificate) never reach an
// RPC and are not recorded here. The accountant keeps its own ledger audit (accountant/ledger.h)
// of every budget operation besides.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/server_interceptor.h"

namespace dpfleet {

struct AuditRecord {
  int64_t unix_ms = 0;
  std::string method;     // The full RPC name, e.g. "/dpfleet.v1.WorkerService/RunStep".
  std::string principal;  // From the verified certificate; empty when there is none.
  std::string peer;       // gRPC's peer address, e.g. "ipv4:10.0.0.7:51234".
  std::string code;       // "PERMISSION_DENIED" or "UNAUTHENTICATED".
  std::string message;
};

// Returns `record` as one line of JSON, newline included.
std::string FormatAuditRecord(const AuditRecord& record);

class AuditLog {
 public:
  // Opens (creating it, mode 0600) the log at `path` for appending; empty `path` writes the
  // records to stderr instead. Errors: kInternal naming the path.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path);
  ~AuditLog();

  // Appends `record`. Thread-safe. Errors: kInternal when the write fails.
  absl::Status Append(const AuditRecord& record);

 private:
  AuditLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  const int fd_;
  const std::string path_;
};

// A server interceptor that appends every refused call to `log` (which must outlive the server).
// A failed append is reported on stderr: the refusal itself stands.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> AuditRefusals(AuditLog* log);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_AUDIT_LOG_H_

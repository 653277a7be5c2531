#include "common/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/identity.h"

namespace dpfleet {
namespace {

// `text` as a JSON string literal.
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

const char* RefusalCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return nullptr;
  }
}

class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuditInterceptor(grpc::experimental::ServerRpcInfo* info, AuditLog* log)
      : info_(info), log_(log) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (const char* code = RefusalCodeName(status.error_code()); code != nullptr) {
        AuditRecord record{.unix_ms = absl::ToUnixMillis(absl::Now()),
                           .method = info_->method(),
                           .peer = info_->server_context()->peer(),
                           .code = code,
                           .message = status.error_message()};
        if (const absl::StatusOr<Principal> caller = CallerOf(*info_->server_context());
            caller.ok()) {
          record.principal = caller->name;
        }
        if (absl::Status appended = log_->Append(record); !appended.ok()) {
          std::cerr << "audit log: " << appended << "; lost record: " << FormatAuditRecord(record);
        }
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* const info_;
  AuditLog* const log_;
};

class AuditInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuditInterceptorFactory(AuditLog* log) : log_(log) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AuditInterceptor(info, log_);
  }

 private:
  AuditLog* const log_;
};

}  // namespace

std::string FormatAuditRecord(const AuditRecord& record) {
  return absl::StrCat("{\"unix_ms\":", record.unix_ms, ",\"method\":", JsonString(record.method),
                      ",\"principal\":", JsonString(record.principal),
                      ",\"peer\":", JsonString(record.peer), ",\"code\":", JsonString(record.code),
                      ",\"message\":", JsonString(record.message), "}\n");
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
  if (path.empty()) return std::unique_ptr<AuditLog>(new AuditLog(STDERR_FILENO, "stderr"));
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open the audit log ", path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(fd, path));
}

AuditLog::~AuditLog() {
  if (fd_ != STDERR_FILENO) close(fd_);
}

absl::Status AuditLog::Append(const AuditRecord& record) {
  const std::string line = FormatAuditRecord(record);
  // One write: O_APPEND places it whole at the end, whatever else is appending.
  const ssize_t written = write(fd_, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size())) {
    return absl::InternalError(absl::StrCat("cannot append to the audit log ", path_, ": ",
                                            written < 0 ? std::strerror(errno) : "short write"));
  }
  return absl::OkStatus();
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> AuditRefusals(
    AuditLog* log) {
  return std::make_unique<AuditInterceptorFactory>(log);
}

}  // namespace dpfleet

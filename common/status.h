#ifndef DPFLEET_COMMON_STATUS_H_
#define DPFLEET_COMMON_STATUS_H_

// Status helpers shared by every library: propagation macros and context annotation.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dpfleet {

// Returns `status` with `context + ": "` put in front of its message; OK stays OK.
absl::Status Annotate(const absl::Status& status, const std::string& context);

}  // namespace dpfleet

// Evaluates `expr` (an absl::Status); returns it from the enclosing function when it is not OK.
#define DPFLEET_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status dpfleet_status_ = (expr);           \
    if (!dpfleet_status_.ok()) return dpfleet_status_; \
  } while (0)

#define DPFLEET_CONCAT_INNER_(a, b) a##b
#define DPFLEET_CONCAT_(a, b) DPFLEET_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when it is not OK, otherwise moves
// its value into `lhs` (a declaration such as `auto x` or an existing variable).
#define DPFLEET_ASSIGN_OR_RETURN(lhs, rexpr) \
  DPFLEET_ASSIGN_OR_RETURN_IMPL_(DPFLEET_CONCAT_(dpfleet_statusor_, __LINE__), lhs, rexpr)

#define DPFLEET_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return statusor.status();              \
  lhs = std::move(statusor).value()

#endif  // DPFLEET_COMMON_STATUS_H_

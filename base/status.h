// Status propagation macros. Debian's Abseil (20220623) has no
// RETURN_IF_ERROR / ASSIGN_OR_RETURN, so gasp defines its own once, here.
#ifndef GASP_BASE_STATUS_H_
#define GASP_BASE_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function if it is not OK.
#define GASP_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::absl::Status gasp_status_ = (expr);           \
    if (!gasp_status_.ok()) return gasp_status_;    \
  } while (0)

#define GASP_STATUS_CONCAT_INNER_(a, b) a##b
#define GASP_STATUS_CONCAT_(a, b) GASP_STATUS_CONCAT_INNER_(a, b)

// `lhs` is assigned the value of `rexpr` (an absl::StatusOr<T>); on error the
// status is returned from the enclosing function. `lhs` may declare a
// variable: GASP_ASSIGN_OR_RETURN(auto fd, OpenFile(path));
#define GASP_ASSIGN_OR_RETURN(lhs, rexpr)                                          \
  GASP_ASSIGN_OR_RETURN_IMPL_(GASP_STATUS_CONCAT_(gasp_statusor_, __LINE__), lhs, \
                              rexpr)

#define GASP_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace gasp {

// Returns `status` with `context: ` prepended to its message (same code).
// OK stays OK. Used to say which layer or peer an error came through.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// errno-based error: "<what>: <strerror(errno_value)>", mapped to a fitting
// absl code (ENOMEM -> ResourceExhausted, EACCES/EPERM -> PermissionDenied,
// EEXIST -> AlreadyExists, EINVAL -> InvalidArgument, else Internal).
absl::Status ErrnoError(absl::string_view what, int errno_value);

}  // namespace gasp

#endif  // GASP_BASE_STATUS_H_

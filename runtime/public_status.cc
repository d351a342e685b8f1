#include "runtime/public_status.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gasp/version.h"

namespace gasp {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN_CODE";
}

Status ToPublic(const absl::Status& status) {
  if (status.ok()) return OkStatus();
  return Status(static_cast<StatusCode>(status.raw_code()), std::string(status.message()));
}

absl::Status ToAbsl(const Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

namespace internal {
void ResultValueFailed(const Status& status) {
  std::fprintf(stderr, "gasp: Result::value() on an error: %s\n", status.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace internal

#define GASP_STR_(x) #x
#define GASP_STR(x) GASP_STR_(x)
const char* Version() {
  return GASP_STR(GASP_VERSION_MAJOR) "." GASP_STR(GASP_VERSION_MINOR) "." GASP_STR(
      GASP_VERSION_PATCH);
}

}  // namespace gasp

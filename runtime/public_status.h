// Converting between Abseil's status types (used everywhere inside gasp)
// and the public gasp::Status / gasp::Result<T> (include/gasp/status.h).
// The codes have the same numbers, so nothing is lost either way.
#ifndef GASP_RUNTIME_PUBLIC_STATUS_H_
#define GASP_RUNTIME_PUBLIC_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gasp/status.h"

namespace gasp {

Status ToPublic(const absl::Status& status);
absl::Status ToAbsl(const Status& status);

template <typename T>
Result<T> ToPublic(absl::StatusOr<T> s) {
  if (!s.ok()) return ToPublic(s.status());
  return Result<T>(std::move(s).value());
}

template <typename T>
absl::StatusOr<T> ToAbsl(Result<T> r) {
  if (!r.ok()) return ToAbsl(r.status());
  return std::move(r).value();
}

}  // namespace gasp

#endif  // GASP_RUNTIME_PUBLIC_STATUS_H_

// gasp::Status and gasp::Result<T>: how fallible calls of the public API
// report errors. Standard C++ only, so a program's own libraries (its
// Abseil, its Boost) never have to match the ones gasp was built with.
//
//   gasp::Result<void*> p = gasp::TryAlloc(1 << 20);
//   if (!p.ok()) { std::cerr << p.status() << "\n"; return 1; }
//   use(*p);
//
// The codes and their meaning are those of gRPC and Abseil (same numbers),
// so a code read from a log means the same thing everywhere.
#ifndef GASP_STATUS_H_
#define GASP_STATUS_H_

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

namespace gasp {

// The canonical error codes (numbering of google.rpc.Code).
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "NOT_FOUND" for kNotFound; "UNKNOWN_CODE" for a number outside the list.
const char* StatusCodeName(StatusCode code);

// Success, or an error code with a message naming the cause (and, for
// configuration errors, the GASP_* setting to change). One pointer wide:
// an OK status holds nothing, so success costs no more than a bool to make,
// copy and destroy; errors share one immutable record. A default-constructed
// Status is OK.
class [[nodiscard]] Status {
 public:
  Status() = default;
  // An error (or OK when code is kOk; the message is then dropped).
  Status(StatusCode code, std::string message) {
    if (code != StatusCode::kOk) rep_ = std::make_shared<const Rep>(Rep{code, std::move(message)});
  }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return ok() ? StatusCode::kOk : rep_->code; }
  const std::string& message() const { return ok() ? Empty() : rep_->message; }
  // Marks a status as deliberately unchecked.
  void IgnoreError() const {}
  // "OK", or "PERMISSION_DENIED: <message>".
  std::string ToString() const {
    if (ok()) return "OK";
    return std::string(StatusCodeName(rep_->code)) + ": " + rep_->message;
  }

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }
  friend bool operator!=(const Status& a, const Status& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  static const std::string& Empty() {
    static const std::string* empty = new std::string();
    return *empty;
  }
  std::shared_ptr<const Rep> rep_;  // null: OK
};

// The OK status.
inline Status OkStatus() { return Status(); }

namespace internal {
// Ends the process with "gasp: Result::value() on an error: <status>":
// reading the value of a failed Result is a bug in the caller.
[[noreturn]] void ResultValueFailed(const Status& status);
}  // namespace internal

// A T, or the Status saying why there is none. T must not be Status.
// value() (and * and ->) on an error ends the process naming the error;
// test ok() first where failure is expected.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same<std::decay_t<T>, Status>::value, "Result<Status> is ambiguous");

 public:
  // A value.
  Result(const T& value) : value_(value) {}  // NOLINT: implicit, like std::optional
  Result(T&& value) : value_(std::move(value)) {}  // NOLINT
  // An error. An OK status here is a caller bug: it becomes kInternal.
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status(StatusCode::kInternal, "Result made from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  // OK when there is a value.
  const Status& status() const { return status_; }
  // Marks a result as deliberately unchecked.
  void IgnoreError() const {}

  T& value() & { return Checked(), *value_; }
  const T& value() const& { return Checked(), *value_; }
  T&& value() && { return Checked(), std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The value, or `fallback` on an error.
  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void Checked() const {
    if (!ok()) internal::ResultValueFailed(status_);
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace gasp

#endif  // GASP_STATUS_H_

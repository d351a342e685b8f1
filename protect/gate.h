// Call gates: the only run-time code that changes a thread's rights.
//
//   Gate gate(protection, server_domain, Rights::kReadWrite);
//   absl::StatusOr<int> r = gate.Call(binding, &Server::Lookup, &server, key);
//
// Call() checks that `binding` allows entering `domain` with `rights` from
// the calling thread, switches the thread's rights (inside: the process
// grants plus `domain`; the caller's thread grants are suspended), calls fn,
// and restores the caller's rights on every return path (a scope guard: the
// project builds without exceptions, so a return is the only way out; do not
// longjmp out of fn). Result:
//   fn returns void             -> absl::Status
//   fn returns absl::Status     -> absl::Status
//   fn returns absl::StatusOr<T>-> absl::StatusOr<T>
//   fn returns T                -> absl::StatusOr<T>
// and PermissionDenied (fn not called) when the binding does not allow it.
// Inside, the caller's own thread grants are suspended unless the gate was
// made with CallerRights::kKeep (trusted server).
// Gates nest (up to 32 deep). Under the mprotect backend gate calls are
// serialized process-wide (see protection.h).
#ifndef GASP_PROTECT_GATE_H_
#define GASP_PROTECT_GATE_H_

#include <functional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "protect/protection.h"

namespace gasp {
namespace protect {

namespace internal {
template <typename R>
struct GateResult {
  using type = absl::StatusOr<R>;
};
template <>
struct GateResult<void> {
  using type = absl::Status;
};
template <>
struct GateResult<absl::Status> {
  using type = absl::Status;
};
template <typename T>
struct GateResult<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};
}  // namespace internal

class Gate {
 public:
  // `caller`: kSuspend (default) for an untrusted server, which must not
  // follow the caller's pointers into the caller's private domains; kKeep
  // for a trusted server, which may.
  Gate(Protection* protection, DomainId domain, Rights rights,
       CallerRights caller = CallerRights::kSuspend)
      : protection_(protection), domain_(domain), rights_(rights), caller_(caller) {}

  DomainId domain() const { return domain_; }
  Rights rights() const { return rights_; }
  CallerRights caller_rights() const { return caller_; }

  template <typename Fn, typename... Args>
  auto Call(Binding binding, Fn&& fn, Args&&... args) ->
      typename internal::GateResult<std::invoke_result_t<Fn, Args...>>::type {
    using R = std::invoke_result_t<Fn, Args...>;
    absl::Status entered = protection_->EnterGate(binding, domain_, rights_, caller_);
    if (!entered.ok()) return entered;
    Exit exit(protection_);  // LeaveGate on every return path
    if constexpr (std::is_void_v<R>) {
      std::invoke(std::forward<Fn>(fn), std::forward<Args>(args)...);
      return absl::OkStatus();
    } else {
      return std::invoke(std::forward<Fn>(fn), std::forward<Args>(args)...);
    }
  }

 private:
  struct Exit {
    explicit Exit(Protection* p) : p(p) {}
    ~Exit() { p->LeaveGate(); }
    Protection* p;
  };

  Protection* protection_;
  DomainId domain_;
  Rights rights_;
  CallerRights caller_;
};

}  // namespace protect
}  // namespace gasp

#endif  // GASP_PROTECT_GATE_H_

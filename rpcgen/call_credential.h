// Per-call credentials of function-shipped calls without mutual TLS: proof
// that the caller holds the job secret (boot/job_secret.h), so that only
// the job's own ranks can call (docs/services.md, "Who may call").
//
// A credential is a counter and an HMAC-SHA256, with the job secret, over
// everything the call asks for: service, method, caller and callee rank,
// the claimed principal, the counter, the serialized request, the page
// bundle, the carried write notices and the job id. The callee recomputes the MAC and accepts each (caller, counter)
// once: counters count per (caller, callee) pair, and the callee keeps a
// window of the last kReplayWindow counters of every caller, so that calls
// overtaking each other on several threads are accepted while a recorded
// call sent again is refused. Nothing here encrypts: without TLS an
// on-path observer still reads calls (it cannot make or replay them).
#ifndef GASP_RPCGEN_CALL_CREDENTIAL_H_
#define GASP_RPCGEN_CALL_CREDENTIAL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/crypto.h"
#include "rpcgen/shipping.pb.h"

namespace gasp {
namespace rpc {

// Counters further than this behind the newest one seen from a caller are
// refused (a call overtaken by more than this many later calls of the same
// caller to the same callee).
inline constexpr uint64_t kReplayWindow = 4096;

// The MAC of `request` (its credential field ignored) for `callee`.
Mac CallMac(absl::Span<const uint8_t> secret, const CallRequest& request, int callee);

// Fills request->credential for `callee` with counter `counter`.
void SignCall(absl::Span<const uint8_t> secret, int callee, uint64_t counter,
              CallRequest* request);

// Which (caller, counter) pairs a callee has accepted: the newest counter
// and a bitmap of the kReplayWindow before it, per caller rank.
class ReplayGuard {
 public:
  explicit ReplayGuard(int ranks);
  // True the first time (caller, counter) is offered within the window;
  // false for a repeat or a counter older than the window.
  bool Accept(int caller, uint64_t counter);

 private:
  struct Window {
    std::mutex mu;
    uint64_t newest = 0;
    std::vector<uint64_t> seen;  // bit (counter % kReplayWindow)
  };
  std::vector<std::unique_ptr<Window>> windows_;
};

// What a refusal suggests when the callee has no mutual TLS: calls from
// outside the job need it.
inline constexpr char kNoTlsCredentialHint[] =
    "only ranks of this job may call without mutual TLS; for calls from other jobs or "
    "programs configure GASP_NS_CA, GASP_NS_CERT and GASP_NS_KEY (docs/services.md)";
// With mutual TLS a call from another job is let in by its certificate, but
// one that gives this job's id must also prove it (docs/services.md).
inline constexpr char kTlsCredentialHint[] =
    "with mutual TLS a call that gives this job's id (job_id) must also carry the job "
    "credential, which only the job's own ranks can make; a rank of another job gives its "
    "own job's id";

// Checks `request`'s credential at `callee` (this rank) against the job
// secret and `guard`. UNAUTHENTICATED, ending with `hint`, for a missing,
// malformed or wrong credential, or a repeated call.
absl::Status CheckCallCredential(absl::Span<const uint8_t> secret, int callee,
                                 const CallRequest& request, ReplayGuard* guard,
                                 absl::string_view hint = kNoTlsCredentialHint);

// Counters of this rank's calls, one per callee rank.
class CallCounters {
 public:
  explicit CallCounters(int ranks);
  uint64_t Next(int callee);

 private:
  std::unique_ptr<std::atomic<uint64_t>[]> next_;
  int ranks_;
};

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_CALL_CREDENTIAL_H_

// FaultyTransport: a decorator that injects failures into another transport,
// so the layers above (and the conformance suite) can exercise their
// timeout, abandon and peer-failure paths deterministically.
//
// Faults apply to one-sided ops in the order they are posted (counted op by
// op across Post calls, from this decorator's point of view). Precedence
// for each op: a killed peer, then FailNth, then DropNext, then Delay; an
// op with no fault goes to the inner transport unchanged. With no fault set
// the decorator is a pure pass-through.
//
// All controls are thread-safe and may be called while ops are in flight.
#ifndef GASP_TRANSPORT_FAULTY_TRANSPORT_H_
#define GASP_TRANSPORT_FAULTY_TRANSPORT_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

class FaultyTransport final : public Transport {
 public:
  // Takes ownership of `inner` (must be non-null). Starts one helper thread
  // (blocked until an op is delayed).
  explicit FaultyTransport(std::unique_ptr<Transport> inner);
  // Shuts down (like Shutdown with the default deadline) if not done yet.
  ~FaultyTransport() override;

  // --- Fault controls ---

  // The next `n` ops are swallowed: never executed, never completed, so the
  // caller's Wait times out. They are forgotten by Abandon and completed
  // with kFlushed by Shutdown.
  void DropNext(int n);
  // Every later op is handed to the inner transport only after `d` (and the
  // helper thread forwards delayed ops one at a time). Zero turns it off.
  void Delay(absl::Duration d);
  // The `n`-th op from now (n >= 1) completes with `code` without being
  // executed.
  void FailNth(int n, CompletionCode code);
  // From now on every op to `rank` completes with kPeerUnreachable without
  // being executed, Send to it and Recv from it fail with Unavailable,
  // messages from it are dropped, and the peer-failure handler is called
  // once (on this thread) with a status naming the rank. Permanent.
  void KillPeer(int rank);
  // Cancels DropNext, Delay and FailNth (killed peers stay dead).
  void ClearFaults();

  // Dropped ops neither abandoned nor flushed yet.
  size_t dropped_outstanding() const;
  // Ops currently waiting in (or being forwarded from) the delay queue.
  size_t delayed_outstanding() const;
  // The wrapped transport (for backend-specific test hooks).
  Transport* inner() const { return inner_.get(); }

  // --- Transport ---
  std::string name() const override;  // "faulty(<inner name>)"
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  Capabilities capabilities() const override { return inner_->capabilities(); }
  EndpointBlob LocalEndpoint() const override { return inner_->LocalEndpoint(); }
  absl::Status Connect(absl::Span<const EndpointBlob> endpoints) override;
  absl::StatusOr<Region> Register(void* addr, size_t length, uint32_t access) override;
  absl::Status Deregister(const Region& region) override;
  absl::Status Post(absl::Span<const Op> ops, CompletionCounter* counter) override;
  void Abandon(CompletionCounter* counter) override;
  int Poll() override { return inner_->Poll(); }
  // The inner transport's Wait (its timeout error names the ranks that owe
  // a reply), plus, on timeout, forgetting the ops held here and naming
  // their ranks too.
  absl::Status Wait(CompletionCounter* counter, absl::Time deadline) override;
  absl::Status Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) override;
  absl::StatusOr<Message> Recv(uint32_t tag, int from, absl::Time deadline) override;
  void SetPeerFailureHandler(PeerFailureHandler handler) override;
  absl::Status Shutdown(absl::Time deadline) override;

 private:
  // What happens to one posted op.
  enum class Fate { kForward, kFail, kDrop, kDelay };

  // A swallowed op, remembered for Abandon / Shutdown.
  struct Dropped {
    CompletionCounter* counter;
    int peer;
    uint64_t wr_id;
  };
  // An op waiting for its delay to pass.
  struct Delayed {
    absl::Time due;
    Op op;
    CompletionCounter* counter = nullptr;
    bool abandoned = false;  // guarded by mu_
  };

  absl::Status Validate(absl::Span<const Op> ops) const;
  // Forgets the dropped / delayed ops of `counter` held here (not the
  // inner transport's); returns their target ranks.
  std::set<int> AbandonHeld(CompletionCounter* counter);
  void DelayLoop();
  bool DelayReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Killed(int rank) const;

  std::unique_ptr<Transport> inner_;

  mutable std::mutex mu_;
  std::condition_variable delay_cv_;    // new delayed op, or stop
  std::condition_variable current_cv_;  // the helper let go of current_
  int drop_remaining_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_countdown_ ABSL_GUARDED_BY(mu_) = 0;
  CompletionCode fail_code_ ABSL_GUARDED_BY(mu_) = CompletionCode::kSuccess;
  absl::Duration delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::set<int> killed_ ABSL_GUARDED_BY(mu_);
  std::set<int> notified_ ABSL_GUARDED_BY(mu_);  // ranks the handler was told about
  PeerFailureHandler handler_ ABSL_GUARDED_BY(mu_);
  std::vector<Dropped> dropped_ ABSL_GUARDED_BY(mu_);
  std::deque<std::unique_ptr<Delayed>> delayed_ ABSL_GUARDED_BY(mu_);
  Delayed* current_ ABSL_GUARDED_BY(mu_) = nullptr;  // being forwarded now
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::thread delay_thread_;
};

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_FAULTY_TRANSPORT_H_

// Test-hook support of the backends with a progress thread: parks that
// thread on request, like a hung process, and lets it go again.
#ifndef GASP_TRANSPORT_PAUSE_GATE_H_
#define GASP_TRANSPORT_PAUSE_GATE_H_

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "transport/deadline_wait.h"

namespace gasp {
namespace transport {

class PauseGate {
 public:
  // Requests a pause (true) or ends it (false). A pause calls `wake` (so a
  // sleeping progress thread comes to Park) and returns once the thread is
  // parked, or DeadlineExceeded at `deadline`.
  absl::Status Set(bool paused, absl::FunctionRef<void()> wake, absl::Time deadline) {
    std::unique_lock<std::mutex> l(mu_);
    requested_.store(paused, std::memory_order_release);
    if (!paused) {
      cv_.notify_all();
      return absl::OkStatus();
    }
    wake();
    if (!WaitUntil(cv_, l, deadline, [this] { return parked_; })) {
      return absl::DeadlineExceededError("progress thread did not park");
    }
    return absl::OkStatus();
  }

  // Ends any pause (shutdown: the thread must get out to stop).
  void Release() {
    {
      std::lock_guard<std::mutex> l(mu_);
      requested_.store(false, std::memory_order_release);
    }
    cv_.notify_all();
  }

  // True while a pause is requested (lock-free: the progress loop asks on
  // every turn).
  bool requested() const { return requested_.load(std::memory_order_acquire); }

  // Progress thread: parks while a pause is requested.
  void Park() {
    if (!requested()) return;
    std::unique_lock<std::mutex> l(mu_);
    if (!requested_.load(std::memory_order_relaxed)) return;
    parked_ = true;
    cv_.notify_all();
    cv_.wait(l, [this] { return !requested_.load(std::memory_order_relaxed); });
    parked_ = false;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> requested_{false};  // written under mu_
  bool parked_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_PAUSE_GATE_H_

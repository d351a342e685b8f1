#include "base/wait.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace gasp {
namespace {

std::atomic<int> g_mode{static_cast<int>(WaitMode::kAdaptive)};
std::atomic<int64_t> g_spin_us{100};

int64_t NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// Deadline in CLOCK_MONOTONIC nanoseconds (absl::Now is not signal-safe to
// rely on everywhere; convert once).
int64_t EndNanos(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return NowNanos() + INT64_MAX / 2;
  return NowNanos() + absl::ToInt64Nanoseconds(deadline - absl::Now());
}

bool BlockUntil(const std::atomic<uint32_t>* word, uint32_t value, int64_t end_ns) {
  while (word->load(std::memory_order_acquire) == value) {
    int64_t left = end_ns - NowNanos();
    if (left <= 0) return false;
    timespec ts{static_cast<time_t>(left / 1000000000LL), static_cast<long>(left % 1000000000LL)};
    int saved = errno;
    syscall(SYS_futex, reinterpret_cast<const uint32_t*>(word), FUTEX_WAIT_PRIVATE, value, &ts,
            nullptr, 0);
    errno = saved;
  }
  return true;
}

}  // namespace

void SetWaitPolicy(WaitMode mode, int64_t spin_us) {
  g_mode.store(static_cast<int>(mode));
  g_spin_us.store(spin_us);
}

WaitMode GetWaitMode() { return static_cast<WaitMode>(g_mode.load(std::memory_order_relaxed)); }
int64_t GetSpinMicros() { return g_spin_us.load(std::memory_order_relaxed); }

bool WaitWhileEqual(const std::atomic<uint32_t>* word, uint32_t value, absl::Time deadline) {
  WaitMode mode = GetWaitMode();
  const int64_t end_ns = EndNanos(deadline);
  if (mode != WaitMode::kBlock) {
    const int64_t spin_end = mode == WaitMode::kPoll ? end_ns : NowNanos() + GetSpinMicros() * 1000;
    int i = 0;
    while (word->load(std::memory_order_acquire) == value) {
      CpuRelax();
      if ((++i & 63) == 0) {
        if (NowNanos() >= spin_end) break;
        // Adaptive: let a thread woken onto this CPU run (the one that
        // will change the word often is: a waker is expected to sleep
        // next), instead of making it wait out the spin. Poll keeps the
        // CPU (dedicated cores).
        if (mode == WaitMode::kAdaptive) sched_yield();
      }
    }
    if (word->load(std::memory_order_acquire) != value) return true;
    if (mode == WaitMode::kPoll) return false;
  }
  return BlockUntil(word, value, end_ns);
}

bool BlockWhileEqual(const std::atomic<uint32_t>* word, uint32_t value, absl::Time deadline) {
  return BlockUntil(word, value, EndNanos(deadline));
}

void WakeAll(const std::atomic<uint32_t>* word) {
  int saved = errno;
  syscall(SYS_futex, reinterpret_cast<const uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX,
          nullptr, nullptr, 0);
  errno = saved;
}

}  // namespace gasp

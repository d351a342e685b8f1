// Condition-variable waits bounded by an absl::Time deadline, for boot/.
//
// boot/ uses std::mutex / std::condition_variable rather than absl::Mutex
// on purpose: Debian's libabsl is not built with ThreadSanitizer, so TSan
// cannot see absl::Mutex's synchronization and reports false races, while
// pthread-based std::mutex is intercepted by every sanitizer.
#ifndef GASP_BOOT_DEADLINE_WAIT_H_
#define GASP_BOOT_DEADLINE_WAIT_H_

#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gasp {
namespace boot {

// Waits on `cv` (with `lock` held) until `pred()` is true or `deadline`
// passes. Returns pred(). InfiniteFuture waits without a timeout.
template <typename Pred>
bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, absl::Time deadline,
               Pred pred) {
  if (deadline == absl::InfiniteFuture()) {
    cv.wait(lock, pred);
    return true;
  }
  return cv.wait_until(lock, absl::ToChronoTime(deadline), pred);
}

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_DEADLINE_WAIT_H_

#include "transport/transport.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "absl/strings/str_format.h"

namespace gasp {
namespace transport {

const char* CompletionCodeName(CompletionCode code) {
  switch (code) {
    case CompletionCode::kSuccess: return "success";
    case CompletionCode::kRemoteAccessError: return "remote access error";
    case CompletionCode::kPeerUnreachable: return "peer unreachable";
    case CompletionCode::kFlushed: return "flushed";
    case CompletionCode::kLocalError: return "local error";
    case CompletionCode::kTimeout: return "timeout";
    case CompletionCode::kProtocolError: return "protocol error";
  }
  return "unknown";
}

void CompletionCounter::Complete(int peer, uint64_t wr_id, CompletionCode code) {
  if (code != CompletionCode::kSuccess) {
    uint32_t expected = 0;
    if (error_set_.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      error_code_ = code;
      error_peer_ = peer;
      error_wr_id_ = wr_id;
    }
  }
  // Nothing of *this is read after the decrement: the waiter may return
  // (and free the counter) as soon as the count reaches zero. A wake on a
  // dead address is a no-op.
  const uint32_t old = pending_.fetch_sub(1, std::memory_order_acq_rel);
  if ((old & kCountMask) == 1 && (old & kSleeper) != 0) WakeAll(&pending_);
}

void CompletionCounter::SleepWhile(uint32_t seen, absl::Time deadline, bool spin_first) {
  // Announce the sleeper in the word itself; the futex then waits on the
  // word with the flag, which any completion changes.
  const uint32_t w = pending_.fetch_or(kSleeper, std::memory_order_acq_rel) | kSleeper;
  if ((w & kCountMask) != seen) return;
  if (spin_first) {
    WaitWhileEqual(&pending_, w, deadline);
    return;
  }
  const int64_t left_ns = std::max<int64_t>(1000, absl::ToInt64Nanoseconds(deadline - absl::Now()));
  timespec ts{static_cast<time_t>(left_ns / 1000000000), static_cast<long>(left_ns % 1000000000)};
  const int saved = errno;
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&pending_), FUTEX_WAIT_PRIVATE, w, &ts, nullptr,
          0);
  errno = saved;
}

absl::Status CompletionError(CompletionCode code, int peer, uint64_t wr_id) {
  std::string msg = absl::StrFormat("operation to rank %d failed: %s (wr_id %d)", peer,
                                    CompletionCodeName(code), wr_id);
  switch (code) {
    case CompletionCode::kSuccess: return absl::OkStatus();
    case CompletionCode::kRemoteAccessError: return absl::PermissionDeniedError(msg);
    case CompletionCode::kPeerUnreachable: return absl::UnavailableError(msg);
    case CompletionCode::kFlushed: return absl::AbortedError(msg);
    case CompletionCode::kTimeout: return absl::DeadlineExceededError(msg);
    case CompletionCode::kProtocolError: return absl::DataLossError(msg);
    case CompletionCode::kLocalError: return absl::InternalError(msg);
  }
  return absl::InternalError(msg);
}

absl::Status Transport::Wait(CompletionCounter* counter, absl::Time deadline) {
  // Spin with Poll for the adaptive window, then block on the counter word.
  const WaitMode mode = GetWaitMode();
  if (mode != WaitMode::kBlock) {
    const absl::Time spin_end =
        mode == WaitMode::kPoll ? deadline : absl::Now() + absl::Microseconds(GetSpinMicros());
    int i = 0;
    while (!counter->done()) {
      Poll();
      CpuRelax();
      if ((++i & 31) == 0 && absl::Now() >= spin_end) break;
    }
  }
  while (!counter->done()) {
    uint32_t p = counter->pending();
    if (p == 0) break;
    // Block in short slices so backends that need Poll still progress.
    absl::Time slice = std::min(deadline, absl::Now() + absl::Milliseconds(10));
    counter->SleepWhile(p, slice);
    Poll();
    if (!counter->done() && absl::Now() >= deadline) {
      Abandon(counter);
      return absl::DeadlineExceededError(absl::StrFormat(
          "%d operation(s) on the %s transport not completed before the deadline (GASP_TIMEOUT)",
          counter->pending(), name()));
    }
  }
  if (counter->first_error() != CompletionCode::kSuccess) {
    return CompletionError(counter->first_error(), counter->error_peer(), counter->error_wr_id());
  }
  return absl::OkStatus();
}

absl::Status Transport::Execute(absl::Span<const Op> ops, absl::Time deadline) {
  CompletionCounter counter;
  absl::Status s = Post(ops, &counter);
  if (!s.ok()) return s;
  return Wait(&counter, deadline);
}

}  // namespace transport
}  // namespace gasp

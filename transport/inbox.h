// Received two-sided messages waiting for a Recv, and the threads blocked
// in Recv. A blocked receiver is woken by a message it can take and by
// WakeAll (a peer failed or left, shutdown), not by every message: a
// service thread waiting for one peer must not wake for each barrier round
// of the others.
#ifndef GASP_TRANSPORT_INBOX_H_
#define GASP_TRANSPORT_INBOX_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

class Inbox {
 public:
  // Queues `m` and wakes the receivers that can take it. Thread-safe.
  void Deliver(Message m);

  // Takes the oldest message with `tag` from `from` (or kAnyPeer), waiting
  // until `deadline`. Before each wait `give_up()` is asked (under the
  // inbox lock, so a WakeAll after its condition changed is never missed):
  // a non-OK status is returned as it is (the peer is gone, shutdown). At
  // the deadline returns DeadlineExceeded with an empty message (the
  // caller names the tag and peer).
  absl::StatusOr<Message> Take(uint32_t tag, int from, absl::Time deadline,
                               absl::FunctionRef<absl::Status()> give_up);

  // Takes the oldest such message if one is queued, without waiting.
  std::optional<Message> TryTake(uint32_t tag, int from);

  // Wakes every blocked Take so that it asks give_up() again.
  void WakeAll();

 private:
  struct Waiter {
    uint32_t tag;
    int from;
    std::condition_variable cv;
  };
  std::optional<Message> TakeLocked(uint32_t tag, int from) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::mutex mu_;
  std::deque<Message> messages_ ABSL_GUARDED_BY(mu_);
  std::vector<Waiter*> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_INBOX_H_

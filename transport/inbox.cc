#include "transport/inbox.h"

#include <algorithm>
#include <utility>

namespace gasp {
namespace transport {

void Inbox::Deliver(Message m) {
  std::lock_guard<std::mutex> l(mu_);
  for (Waiter* w : waiters_) {
    if (w->tag == m.tag && (w->from == kAnyPeer || w->from == m.peer)) w->cv.notify_one();
  }
  messages_.push_back(std::move(m));
}

std::optional<Message> Inbox::TakeLocked(uint32_t tag, int from) {
  for (auto it = messages_.begin(); it != messages_.end(); ++it) {
    if (it->tag == tag && (from == kAnyPeer || it->peer == from)) {
      Message m = std::move(*it);
      messages_.erase(it);
      return m;
    }
  }
  return std::nullopt;
}

std::optional<Message> Inbox::TryTake(uint32_t tag, int from) {
  std::lock_guard<std::mutex> l(mu_);
  return TakeLocked(tag, from);
}

absl::StatusOr<Message> Inbox::Take(uint32_t tag, int from, absl::Time deadline,
                                    absl::FunctionRef<absl::Status()> give_up) {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    if (std::optional<Message> m = TakeLocked(tag, from)) return std::move(*m);
    if (absl::Status s = give_up(); !s.ok()) return s;
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("");
    Waiter me{tag, from, {}};
    waiters_.push_back(&me);
    me.cv.wait_until(l, absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Hours(24))));
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &me));
  }
}

void Inbox::WakeAll() {
  std::lock_guard<std::mutex> l(mu_);
  for (Waiter* w : waiters_) w->cv.notify_one();
}

}  // namespace transport
}  // namespace gasp

#include "transport/tcp_op_table.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

#include <algorithm>

#include "transport/deadline_wait.h"

namespace gasp {
namespace transport {
namespace tcp {

OpTable::OpTable(size_t capacity, int peers)
    : capacity_(capacity),
      slots_(new OpSlot[capacity]),
      live_to_(new std::atomic<uint32_t>[static_cast<size_t>(peers)]()) {
  std::lock_guard<std::mutex> l(free_mu_);
  free_.reserve(capacity);
  // Hand out low indices first (LIFO stack): keeps the hot slots in cache.
  for (size_t i = capacity; i > 0; --i) {
    slots_[i - 1].index = static_cast<uint32_t>(i - 1);
    free_.push_back(static_cast<uint32_t>(i - 1));
  }
}

bool OpTable::TryAcquire(uint32_t* index) {
  std::lock_guard<std::mutex> l(free_mu_);
  if (free_.empty()) return false;
  *index = free_.back();
  free_.pop_back();
  return true;
}

bool OpTable::Acquire(absl::Time deadline, uint32_t* index) {
  std::unique_lock<std::mutex> l(free_mu_);
  ++waiters_;
  const bool got = WaitUntil(free_cv_, l, deadline, [this] { return !free_.empty(); });
  --waiters_;
  if (!got) return false;
  *index = free_.back();
  free_.pop_back();
  return true;
}

uint64_t OpTable::Arm(uint32_t index, const Op& op, CompletionCounter* counter) {
  OpSlot& s = slots_[index];
  std::lock_guard<std::mutex> l(s.mu);
  s.live = true;
  live_to_[op.peer].fetch_add(1, std::memory_order_seq_cst);
  s.counter = counter;
  s.type = op.type;
  s.peer = op.peer;
  s.wr_id = op.wr_id;
  s.local = static_cast<uint8_t*>(op.local);
  s.length = op.length;
  return (uint64_t{s.generation} << 32) | index;
}

OpSlot* OpTable::Lock(uint64_t req_id) {
  const uint32_t index = ReqIdIndex(req_id);
  if (index >= capacity_) return nullptr;
  OpSlot* s = &slots_[index];
  s->mu.lock();
  if (!s->live || s->generation != ReqIdGeneration(req_id)) {
    s->mu.unlock();
    return nullptr;
  }
  return s;
}

void OpTable::Unlock(OpSlot* slot) { slot->mu.unlock(); }

void OpTable::FreeAndUnlock(OpSlot* slot) {
  live_to_[slot->peer].fetch_sub(1, std::memory_order_seq_cst);
  slot->live = false;
  slot->counter = nullptr;
  slot->local = nullptr;
  ++slot->generation;
  const uint32_t index = slot->index;
  slot->mu.unlock();
  std::lock_guard<std::mutex> l(free_mu_);
  free_.push_back(index);
  if (waiters_ > 0) free_cv_.notify_one();
}

void OpTable::CompleteAndUnlock(OpSlot* slot, CompletionCode code) {
  slot->counter->Complete(slot->peer, slot->wr_id, code);
  FreeAndUnlock(slot);
}

bool OpTable::Complete(uint64_t req_id, CompletionCode code) {
  OpSlot* s = Lock(req_id);
  if (s == nullptr) return false;
  CompleteAndUnlock(s, code);
  return true;
}

int OpTable::FailPeer(int peer, CompletionCode code) {
  int n = 0;
  for (size_t i = 0; i < capacity_; ++i) {
    OpSlot* s = &slots_[i];
    s->mu.lock();
    if (s->live && (peer < 0 || s->peer == peer)) {
      CompleteAndUnlock(s, code);
      ++n;
    } else {
      s->mu.unlock();
    }
  }
  return n;
}

int OpTable::Abandon(const CompletionCounter* counter) {
  int n = 0;
  for (size_t i = 0; i < capacity_; ++i) {
    OpSlot* s = &slots_[i];
    s->mu.lock();
    if (s->live && s->counter == counter) {
      FreeAndUnlock(s);
      ++n;
    } else {
      s->mu.unlock();
    }
  }
  return n;
}

std::vector<int> OpTable::PendingPeers(const CompletionCounter* counter) {
  std::vector<int> peers;
  for (size_t i = 0; i < capacity_; ++i) {
    OpSlot* s = &slots_[i];
    std::lock_guard<std::mutex> l(s->mu);
    if (s->live && s->counter == counter &&
        std::find(peers.begin(), peers.end(), s->peer) == peers.end()) {
      peers.push_back(s->peer);
    }
  }
  std::sort(peers.begin(), peers.end());
  return peers;
}

size_t OpTable::live() const {
  std::lock_guard<std::mutex> l(free_mu_);
  return capacity_ - free_.size();
}

absl::Status WaitForCompletions(CompletionCounter* counter, absl::Time deadline, OpTable& ops,
                                absl::string_view backend, absl::Duration timeout,
                                absl::FunctionRef<std::string(int)> peer_name) {
  while (!counter->done()) {
    const uint32_t pending = counter->pending();
    if (pending == 0) break;
    if (absl::Now() >= deadline) {
      const std::vector<int> peers = ops.PendingPeers(counter);
      ops.Abandon(counter);
      if (counter->done()) break;
      std::vector<std::string> names;
      for (int p : peers) names.push_back(peer_name(p));
      return absl::DeadlineExceededError(absl::StrFormat(
          "%d operation(s) on the %s transport not completed before the deadline%s "
          "(GASP_TIMEOUT=%s)",
          counter->pending(), backend,
          names.empty() ? "" : absl::StrCat("; no reply from ", absl::StrJoin(names, ", ")),
          absl::FormatDuration(timeout)));
    }
    counter->SleepWhile(pending, deadline);
  }
  if (counter->first_error() != CompletionCode::kSuccess) {
    return CompletionError(counter->first_error(), counter->error_peer(), counter->error_wr_id());
  }
  return absl::OkStatus();
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#include "transport/faulty_transport.h"

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/status.h"
#include "base/wait.h"

namespace gasp {
namespace transport {
namespace {

// How often the helper thread re-checks an op it forwards for Abandon /
// Shutdown while waiting for the inner transport to complete it.
constexpr absl::Duration kForwardSlice = absl::Milliseconds(5);
constexpr absl::Duration kDefaultShutdown = absl::Seconds(60);

}  // namespace

FaultyTransport::FaultyTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {
  // Route the inner transport's failure reports through us so a rank is
  // reported once even if it was also killed here.
  inner_->SetPeerFailureHandler([this](int peer, const absl::Status& status) {
    PeerFailureHandler handler;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!notified_.insert(peer).second) return;
      handler = handler_;
    }
    if (handler) handler(peer, status);
  });
  delay_thread_ = std::thread([this] { DelayLoop(); });
}

FaultyTransport::~FaultyTransport() {
  absl::Status s = Shutdown(absl::Now() + kDefaultShutdown);
  if (!s.ok()) {
    GASP_LOG(Warn) << "faulty transport: shutdown in destructor: " << s;
  }
  // The inner transport goes first: its threads may still call our
  // failure-handler wrapper until it is destroyed.
  inner_.reset();
}

std::string FaultyTransport::name() const { return absl::StrFormat("faulty(%s)", inner_->name()); }

void FaultyTransport::DropNext(int n) {
  std::lock_guard<std::mutex> l(mu_);
  drop_remaining_ = std::max(0, n);
}

void FaultyTransport::Delay(absl::Duration d) {
  std::lock_guard<std::mutex> l(mu_);
  delay_ = std::max(d, absl::ZeroDuration());
}

void FaultyTransport::FailNth(int n, CompletionCode code) {
  std::lock_guard<std::mutex> l(mu_);
  fail_countdown_ = std::max(0, n);
  fail_code_ = code;
}

void FaultyTransport::ClearFaults() {
  std::lock_guard<std::mutex> l(mu_);
  drop_remaining_ = 0;
  fail_countdown_ = 0;
  delay_ = absl::ZeroDuration();
}

void FaultyTransport::KillPeer(int rank) {
  PeerFailureHandler handler;
  {
    std::lock_guard<std::mutex> l(mu_);
    killed_.insert(rank);
    if (!notified_.insert(rank).second) return;
    handler = handler_;
  }
  const absl::Status status = absl::UnavailableError(absl::StrFormat(
      "lost connection to rank %d without goodbye: killed by FaultyTransport::KillPeer "
      "(simulated failure)",
      rank));
  GASP_LOG(Warn) << status.message();
  if (handler) handler(rank, status);
}

bool FaultyTransport::Killed(int rank) const {
  std::lock_guard<std::mutex> l(mu_);
  return killed_.count(rank) != 0;
}

size_t FaultyTransport::dropped_outstanding() const {
  std::lock_guard<std::mutex> l(mu_);
  return dropped_.size();
}

size_t FaultyTransport::delayed_outstanding() const {
  std::lock_guard<std::mutex> l(mu_);
  return delayed_.size() + (current_ != nullptr ? 1 : 0);
}

absl::Status FaultyTransport::Connect(absl::Span<const EndpointBlob> endpoints) {
  return inner_->Connect(endpoints);
}

absl::StatusOr<Region> FaultyTransport::Register(void* addr, size_t length, uint32_t access) {
  return inner_->Register(addr, length, access);
}

absl::Status FaultyTransport::Deregister(const Region& region) {
  return inner_->Deregister(region);
}

absl::Status FaultyTransport::Validate(absl::Span<const Op> ops) const {
  // The checks every backend makes, so an op this decorator intercepts is
  // refused exactly like one it forwards would be.
  const int n = inner_->size();
  const size_t max_bytes = inner_->capabilities().max_op_bytes;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    const bool rw = op.type == OpType::kRead || op.type == OpType::kWrite;
    std::string what;
    if (op.peer < 0 || op.peer >= n) {
      what = absl::StrFormat("peer out of range [0, %d)", n);
    } else if (rw && op.length > max_bytes) {
      what = absl::StrFormat("%d bytes exceed max_op_bytes (%d)", op.length, max_bytes);
    } else if (rw && op.length > 0 && op.local == nullptr) {
      what = "null local buffer";
    } else if (!rw && op.remote_addr % 8 != 0) {
      what = absl::StrFormat("remote address 0x%x is not 8-byte aligned", op.remote_addr);
    }
    if (!what.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("op %d (wr_id %d) to rank %d: %s", i,
                                                        op.wr_id, op.peer, what));
    }
  }
  return absl::OkStatus();
}

absl::Status FaultyTransport::Post(absl::Span<const Op> ops, CompletionCounter* counter) {
  if (counter == nullptr) return absl::InvalidArgumentError("Post: null completion counter");
  GASP_RETURN_IF_ERROR(Validate(ops));

  absl::InlinedVector<Fate, 16> fates(ops.size(), Fate::kForward);
  absl::InlinedVector<CompletionCode, 16> codes(ops.size(), CompletionCode::kSuccess);
  absl::InlinedVector<Op, 16> forward;
  absl::Duration delay;
  int saved_drop = 0;
  int saved_fail = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    saved_drop = drop_remaining_;
    saved_fail = fail_countdown_;
    delay = delay_;
    if (!shut_down_) {
      for (size_t i = 0; i < ops.size(); ++i) {
        if (killed_.count(ops[i].peer) != 0) {
          fates[i] = Fate::kFail;
          codes[i] = CompletionCode::kPeerUnreachable;
          continue;
        }
        if (fail_countdown_ > 0 && --fail_countdown_ == 0) {
          fates[i] = Fate::kFail;
          codes[i] = fail_code_;
        } else if (drop_remaining_ > 0) {
          --drop_remaining_;
          fates[i] = Fate::kDrop;
        } else if (delay_ > absl::ZeroDuration()) {
          fates[i] = Fate::kDelay;
        }
      }
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    if (fates[i] == Fate::kForward) forward.push_back(ops[i]);
  }
  if (!forward.empty()) {
    absl::Status s = inner_->Post(absl::MakeConstSpan(forward), counter);
    if (!s.ok()) {
      // Nothing was posted: give the consumed faults back.
      std::lock_guard<std::mutex> l(mu_);
      drop_remaining_ = saved_drop;
      fail_countdown_ = saved_fail;
      return s;
    }
  }
  const uint32_t intercepted = static_cast<uint32_t>(ops.size() - forward.size());
  if (intercepted == 0) return absl::OkStatus();
  counter->Expect(intercepted);
  const absl::Time due = absl::Now() + delay;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    switch (fates[i]) {
      case Fate::kForward:
        break;
      case Fate::kFail:
        counter->Complete(op.peer, op.wr_id, codes[i]);
        break;
      case Fate::kDrop: {
        std::lock_guard<std::mutex> l(mu_);
        dropped_.push_back({counter, op.peer, op.wr_id});
        break;
      }
      case Fate::kDelay: {
        auto d = std::make_unique<Delayed>();
        d->due = due;
        d->op = op;
        d->counter = counter;
        std::lock_guard<std::mutex> l(mu_);
        delayed_.push_back(std::move(d));
        delay_cv_.notify_one();
        break;
      }
    }
  }
  return absl::OkStatus();
}

bool FaultyTransport::DelayReady() const {
  return stop_ || (!delayed_.empty() && delayed_.front()->due <= absl::Now());
}

void FaultyTransport::DelayLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    while (!DelayReady()) {
      if (delayed_.empty()) {
        delay_cv_.wait(l);
      } else {
        delay_cv_.wait_until(l, absl::ToChronoTime(delayed_.front()->due));
      }
    }
    if (stop_) return;
    std::unique_ptr<Delayed> d = std::move(delayed_.front());
    delayed_.pop_front();
    current_ = d.get();
    l.unlock();

    // Forward it and wait for the inner completion, watching for Abandon
    // and Shutdown.
    CompletionCounter local;
    CompletionCode code = CompletionCode::kLocalError;
    bool gave_up = false;
    if (inner_->Post(absl::MakeConstSpan(&d->op, 1), &local).ok()) {
      while (!local.done()) {
        const uint32_t pending = local.pending();
        local.SleepWhile(pending, absl::Now() + kForwardSlice);
        std::lock_guard<std::mutex> check(mu_);
        if (d->abandoned || stop_) {
          gave_up = true;
          break;
        }
      }
      if (gave_up) {
        inner_->Abandon(&local);
        code = CompletionCode::kFlushed;
      } else {
        code = local.first_error();
      }
    }

    l.lock();
    current_ = nullptr;
    if (!d->abandoned) d->counter->Complete(d->op.peer, d->op.wr_id, code);
    current_cv_.notify_all();
  }
}

std::set<int> FaultyTransport::AbandonHeld(CompletionCounter* counter) {
  std::set<int> peers;
  std::unique_lock<std::mutex> l(mu_);
  for (const Dropped& d : dropped_) {
    if (d.counter == counter) peers.insert(d.peer);
  }
  for (const auto& d : delayed_) {
    if (d->counter == counter) peers.insert(d->op.peer);
  }
  dropped_.erase(std::remove_if(dropped_.begin(), dropped_.end(),
                                [&](const Dropped& d) { return d.counter == counter; }),
                 dropped_.end());
  delayed_.erase(
      std::remove_if(delayed_.begin(), delayed_.end(),
                     [&](const std::unique_ptr<Delayed>& d) { return d->counter == counter; }),
      delayed_.end());
  if (current_ != nullptr && current_->counter == counter) {
    // The helper thread is forwarding one of this counter's ops: mark it
    // and wait until the thread has let go of it.
    peers.insert(current_->op.peer);
    Delayed* const awaited = current_;
    awaited->abandoned = true;
    current_cv_.wait(l, [&] { return current_ != awaited; });
  }
  return peers;
}

void FaultyTransport::Abandon(CompletionCounter* counter) {
  AbandonHeld(counter);
  inner_->Abandon(counter);
}

absl::Status FaultyTransport::Wait(CompletionCounter* counter, absl::Time deadline) {
  absl::Status s = inner_->Wait(counter, deadline);
  if (!absl::IsDeadlineExceeded(s)) return s;
  // The inner Wait abandoned its own ops; forget the ones held here too.
  const std::set<int> held = AbandonHeld(counter);
  if (held.empty()) return s;
  std::vector<std::string> ranks;
  for (int p : held) ranks.push_back(absl::StrFormat("rank %d", p));
  return absl::DeadlineExceededError(absl::StrFormat(
      "%s; %d held by the fault injector (to %s)", s.message(), counter->pending(),
      absl::StrJoin(ranks, ", ")));
}

absl::Status FaultyTransport::Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) {
  if (Killed(peer)) {
    return absl::UnavailableError(absl::StrFormat(
        "Send (tag %d) to rank %d: the rank is unreachable (killed by FaultyTransport)", tag,
        peer));
  }
  return inner_->Send(peer, tag, payload);
}

absl::StatusOr<Message> FaultyTransport::Recv(uint32_t tag, int from, absl::Time deadline) {
  if (from != kAnyPeer && Killed(from)) {
    return absl::UnavailableError(absl::StrFormat(
        "Recv (tag %d) from rank %d: the rank is unreachable (killed by FaultyTransport)", tag,
        from));
  }
  while (true) {
    absl::StatusOr<Message> m = inner_->Recv(tag, from, deadline);
    if (!m.ok() || !Killed(m->peer)) return m;
    // A message from a dead rank is never delivered.
  }
}

void FaultyTransport::SetPeerFailureHandler(PeerFailureHandler handler) {
  std::lock_guard<std::mutex> l(mu_);
  handler_ = std::move(handler);
}

absl::Status FaultyTransport::Shutdown(absl::Time deadline) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (shut_down_) return absl::OkStatus();
    shut_down_ = true;
    stop_ = true;
    delay_cv_.notify_all();
  }
  if (delay_thread_.joinable()) delay_thread_.join();
  {
    // Outstanding from the caller's view: complete them like the inner
    // transport completes its own outstanding ops.
    std::lock_guard<std::mutex> l(mu_);
    for (const Dropped& d : dropped_) d.counter->Complete(d.peer, d.wr_id, CompletionCode::kFlushed);
    dropped_.clear();
    for (const auto& d : delayed_) {
      d->counter->Complete(d->op.peer, d->op.wr_id, CompletionCode::kFlushed);
    }
    delayed_.clear();
  }
  return inner_->Shutdown(deadline);
}

}  // namespace transport
}  // namespace gasp

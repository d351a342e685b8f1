// tcp backend, direct reads: a thread waiting for the replies of its ops to
// one peer (or for a message from one peer) reads the connection they
// arrive on itself, instead of sleeping until the progress thread has read
// them and woken it. A round trip then costs one thread wake-up on each
// side, as a bare blocking TCP ping-pong does, not two on the requester's.
//
// Ownership: a connection's input and output state belongs to whoever
// holds Conn::owner. The progress thread claims it for each event it
// handles; an application thread claims it for a whole wait and removes it
// from the progress thread's epoll set meanwhile (so the progress thread is
// not woken by the replies this thread reads), then adds it back. Closing
// stays with the progress thread: a reader that hits an error or EOF, or a
// progress thread that must close a connection an application thread
// holds, leaves `close_pending` set and the progress thread closes the
// connection once it is handed back. Connections are never freed while
// the transport lives, so a thread may hold a pointer to a closed one.
//
// Progress independence is unchanged: a rank that computes outside gasp
// does not read anything directly, and the progress thread serves it.
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "base/wait.h"
#include "transport/tcp_transport_impl.h"

namespace gasp {
namespace transport {
namespace tcp {
namespace {

// A blocked direct reader looks up at least this often, for the cases no
// socket event announces (its counter completed by another thread, a
// shutdown); kDirectReadSlice bounds its blocking recv the same way.
const int kPollSliceMs = static_cast<int>(absl::ToInt64Milliseconds(kDirectReadSlice));

// What this thread last posted on which counter: WaitDirect reads the
// connection of that peer when all the counter's remote ops went there.
struct PostHint {
  const CompletionCounter* counter = nullptr;
  const void* transport = nullptr;
  int peer = -1;  // -1: none or several peers
};
thread_local PostHint tl_post;

}  // namespace

void TcpTransport::NotePost(absl::Span<const Op> ops, CompletionCounter* counter) {
  int peer = -1;
  bool several = false;
  for (const Op& op : ops) {
    if (op.peer == rank_) continue;  // completes inside Post
    if (peer < 0) {
      peer = op.peer;
    } else if (op.peer != peer) {
      several = true;
    }
  }
  if (several) peer = -1;
  // A counter with nothing pending starts a new wait (Execute reuses the
  // same stack slot for every call).
  if (tl_post.counter != counter || tl_post.transport != this || counter->pending() == 0) {
    tl_post = {counter, this, peer};
  } else if (tl_post.peer != peer && peer >= 0) {
    tl_post.peer = -1;
  }
}

bool TcpTransport::ProgressTake(Conn* c) {
  std::lock_guard<std::mutex> l(c->own_mu);
  if (c->owner == Conn::Owner::kApp) {
    c->missed_event = true;
    return false;
  }
  c->owner = Conn::Owner::kProgress;
  return true;
}

void TcpTransport::ProgressGive(Conn* c) {
  std::lock_guard<std::mutex> l(c->own_mu);
  c->owner = Conn::Owner::kNone;
  c->parked.store(c->epoll_events == kParkedEvents, std::memory_order_relaxed);
}

bool TcpTransport::Parkable(const Conn* c) const {
  if (c->kind != Conn::Kind::kOutgoing) return false;
  // The peer's messages came on its own connection: it chose that one at
  // its first Send and never moves, so none can come on this one.
  const Conn* msgs = peers_[c->peer].msg_in.load(std::memory_order_acquire);
  return msgs != nullptr && msgs != c;
}

bool TcpTransport::SetEvents(Conn* c, uint32_t events) {
  if (c->epoll_events == events) return true;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = c;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev) != 0) return false;
  c->epoll_events = events;
  c->parked.store(events == kParkedEvents, std::memory_order_relaxed);
  return true;
}

bool TcpTransport::AppTake(Conn* c) {
  if (state_.load() != static_cast<int>(TransportState::kRunning)) return false;
  std::lock_guard<std::mutex> l(c->own_mu);
  if (c->owner != Conn::Owner::kNone || c->closed || c->fd < 0 ||
      c->close_pending.load(std::memory_order_relaxed)) {
    return false;
  }
  // Watched for its end only while this thread reads it, so the progress
  // thread is not woken by the data this thread reads. Done under own_mu:
  // the progress thread, which takes own_mu for each event, then sees at
  // most an event it can skip (and notes it, see AppGive). A parked
  // connection is taken without a system call. With GASP_WAIT_MODE=poll
  // the progress thread polls anyway, so another connection stays
  // watched: skipping what this thread reads costs it nothing, and two
  // epoll_ctl calls per wait are saved.
  const bool keep_watched = GetWaitMode() == WaitMode::kPoll && !Parkable(c);
  if (!keep_watched && !SetEvents(c, kParkedEvents)) return false;
  c->owner = Conn::Owner::kApp;
  c->missed_event = false;
  return true;
}

void TcpTransport::AppGive(Conn* c) {
  bool closing;
  {
    std::lock_guard<std::mutex> l(c->own_mu);
    closing = c->close_pending.load(std::memory_order_relaxed);
    // An outgoing connection the peer sends no messages on stays parked
    // while no op to the peer is live: the next waiter takes it without a
    // system call. An op armed by a thread that could not take it is
    // counted before that thread tried (LiveTo), so its reply is watched
    // for. Any other connection is watched fully again: the peer may send
    // its messages on it at any time (and a rank that computes outside
    // gasp must still take them in).
    const bool park = Parkable(c) && !c->missed_event && ops_.LiveTo(c->peer) == 0 &&
                      c->ring_count == 0;
    if (!closing && !SetEvents(c, park ? kParkedEvents : WantedEvents(c))) {
      // Without epoll nobody would read it again: have it closed.
      c->close_code = CompletionCode::kLocalError;
      c->close_why = ErrnoError("epoll_ctl after a direct read", errno);
      c->close_pending.store(true);
      closing = true;
    }
    c->missed_event = false;
    c->owner = Conn::Owner::kNone;
  }
  if (closing) {
    closes_pending_.store(true);
    Wake();
  }
}

void TcpTransport::WatchParked() {
  for (int p = 0; p < size_; ++p) {
    Conn* c = peers_[p].out.load(std::memory_order_acquire);
    if (c == nullptr || !c->parked.load(std::memory_order_relaxed) || ops_.LiveTo(p) == 0) {
      continue;
    }
    std::lock_guard<std::mutex> l(c->own_mu);
    // Owned: its owner watches it again when it hands it back (LiveTo > 0).
    if (c->owner != Conn::Owner::kNone || c->closed || c->fd < 0) continue;
    if (!SetEvents(c, WantedEvents(c))) {
      c->close_code = CompletionCode::kLocalError;
      c->close_why = ErrnoError("epoll_ctl(watch a parked connection)", errno);
      c->close_pending.store(true);
      closes_pending_.store(true);
      Wake();
    }
  }
}

void TcpTransport::CloseOrDefer(Conn* c, CompletionCode code, const absl::Status& why) {
  bool took = false;
  {
    std::lock_guard<std::mutex> l(c->own_mu);
    if (c->owner == Conn::Owner::kApp) {
      c->close_code = code;
      c->close_why = Detached(why);
      c->close_pending.store(true);
      // Wakes the reader out of poll(); it hands the connection back.
      if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
      return;
    }
    if (c->owner == Conn::Owner::kNone) {
      c->owner = Conn::Owner::kProgress;
      took = true;
    }  // else: the progress thread holds it already (it is closing it)
  }
  if (c->kind == Conn::Kind::kOutgoing) {
    CloseOutgoingFd(c);
  } else {
    CloseIncomingFd(c);
  }
  if (took) ProgressGive(c);
}

void TcpTransport::RunPendingCloses() {
  for (int p = 0; p < size_; ++p) {
    for (Conn* c : {peers_[p].out.load(std::memory_order_acquire),
                    peers_[p].in.load(std::memory_order_acquire)}) {
      if (c == nullptr || !c->close_pending.load()) continue;
      CompletionCode code;
      absl::Status why;
      {
        std::lock_guard<std::mutex> l(c->own_mu);
        if (c->owner != Conn::Owner::kNone) {
          closes_pending_.store(true);  // handed back later: try again then
          continue;
        }
        c->owner = Conn::Owner::kProgress;
        c->close_pending.store(false);
        code = c->close_code;
        why = Detached(c->close_why);
      }
      CloseConn(c, code, why);
      ProgressGive(c);
    }
  }
}

void TcpTransport::ReadWhileNot(Conn* c, absl::Time deadline, absl::FunctionRef<bool()> done) {
  tl_direct_conn = c;
  const WaitMode mode = GetWaitMode();
  const absl::Time start = absl::Now();
  const absl::Time spin_until = mode == WaitMode::kPoll       ? absl::InfiniteFuture()
                                : mode == WaitMode::kAdaptive ? start + absl::Microseconds(GetSpinMicros())
                                                              : start;
  // Whatever is buffered already, without a system call.
  bool open = ProcessInput(c) && !c->close_pending.load(std::memory_order_relaxed);
  while (open && !done()) {
    if (state_.load(std::memory_order_relaxed) != static_cast<int>(TransportState::kRunning)) break;
    const absl::Time now = absl::Now();
    if (now >= deadline) break;
    if (now < spin_until) {
      open = ServeInput(c, done);  // non-blocking reads while spinning
      if (!open || done()) break;
      // Adaptive: yield rather than pause. The thread this one waits for
      // (the peer's reply came from a thread it woke) is often placed on
      // this very CPU, since a waker is expected to sleep next; pausing
      // would make it wait out the whole spin. Poll (dedicated cores)
      // just pauses.
      if (mode == WaitMode::kPoll) {
        CpuRelax();
      } else {
        sched_yield();
      }
    } else if (c->ring_count == 0) {
      // One blocking recv (at most kDirectReadSlice), not a poll and a
      // recv: one system call fewer per reply.
      open = ServeInput(c, done, /*wait=*/true);
    } else {
      // Responses still to flush: wait for either direction.
      pollfd pfd{c->fd, static_cast<short>(POLLIN | POLLRDHUP | POLLOUT), 0};
      const int64_t left_ms = absl::ToInt64Milliseconds(deadline - now) + 1;
      poll(&pfd, 1, static_cast<int>(std::min<int64_t>(kPollSliceMs, left_ms)));
      open = ServeInput(c, done);
    }
  }
  tl_direct_conn = nullptr;
}

void TcpTransport::WaitDirect(CompletionCounter* counter, absl::Time deadline) {
  if (tl_post.counter != counter || tl_post.transport != this || tl_post.peer < 0) return;
  Conn* c = peers_[tl_post.peer].out.load(std::memory_order_acquire);
  if (c == nullptr || !AppTake(c)) return;
  ReadWhileNot(c, deadline, [counter] { return counter->done(); });
  AppGive(c);
}

void TcpTransport::RecvDirect(int from, absl::Time deadline, uint64_t seen_seq) {
  Conn* c = ExpectedMessageConn(from);
  if (c == nullptr || !AppTake(c)) return;
  const std::atomic<bool>& finished =
      c->kind == Conn::Kind::kIncoming ? peers_[from].in_finished : peers_[from].out_finished;
  ReadWhileNot(c, deadline, [&] {
    // A peer that left or failed may still have messages on the way on
    // this connection: read on until its goodbye or its end.
    return inbox_seq_.load(std::memory_order_acquire) != seen_seq ||
           finished.load(std::memory_order_acquire);
  });
  AppGive(c);
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

// tcp backend, data path: posting one-sided ops and messages (application
// threads), the progress thread (epoll loop, input state machines, output
// rings) and the target-side service of peers' requests. Connections are
// accepted, greeted and closed in tcp_transport_conns.cc.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/status.h"
#include "base/thread.h"
#include "base/wait.h"
#include "transport/deadline_wait.h"
#include "transport/op_checks.h"
#include "transport/tcp_socket.h"
#include "transport/tcp_transport_impl.h"

namespace gasp {
namespace transport {
namespace tcp {
namespace {

// Ops sent with one writev (and one send-mutex hold).
constexpr size_t kChunkOps = 64;
// Payload remainders at least this large bypass the input buffer.
constexpr uint64_t kDirectRecvBytes = 16 << 10;
// recv() calls per connection per wake-up, so one busy peer cannot starve
// the others (epoll is level-triggered and reports it again).
constexpr int kReadsPerWakeup = 16;
constexpr size_t kRingInitialFrames = 64;
constexpr int kFlushIov = 64;
constexpr int kMaxEvents = 64;

}  // namespace

// ---------------------------------------------------------------------------
// Posting (application threads)

absl::Status TcpTransport::Post(absl::Span<const Op> ops, CompletionCounter* counter) {
  GASP_ASSIGN_OR_RETURN(const bool remote,
                        ValidateBatch(ops, counter, rank_, size_, kMaxOpBytes));
  const bool running = state_.load() == static_cast<int>(TransportState::kRunning);
  if (remote && running && !connected_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(
        "tcp transport: Post to another rank before Connect(): exchange the endpoint blobs "
        "first");
  }
  if (ops.empty()) return absl::OkStatus();
  NotePost(ops, counter);
  DispatchBatch(ops, counter, rank_, running, regions_,
                [&](int peer, absl::Span<const Op> run) { PostToPeer(peer, run, counter); });
  return absl::OkStatus();
}

void TcpTransport::PostToPeer(int peer, absl::Span<const Op> ops, CompletionCounter* counter) {
  CompletionCode fail = PeerFailCode(peer);
  Conn* conn = nullptr;
  if (fail == CompletionCode::kSuccess) {
    absl::StatusOr<Conn*> c = Outgoing(peer);
    if (c.ok()) {
      conn = *c;
    } else {
      fail = absl::IsAborted(c.status()) ? CompletionCode::kFlushed : PeerFailCode(peer);
      if (fail == CompletionCode::kSuccess) fail = CompletionCode::kPeerUnreachable;
    }
  }
  if (conn == nullptr) {
    for (const Op& op : ops) counter->Complete(peer, op.wr_id, fail);
    return;
  }
  const absl::Time slot_deadline = absl::Now() + timeout_;
  bool warned = false;
  uint64_t req_ids[kChunkOps];
  size_t i = 0;
  while (i < ops.size()) {
    size_t n = 0;
    while (n < kChunkOps && i + n < ops.size()) {
      uint32_t index;
      if (!ops_.TryAcquire(&index)) {
        if (n > 0) break;  // send what is armed before waiting for a slot
        if (!ops_.Acquire(slot_deadline, &index)) {
          if (!warned) {
            GASP_LOG(Warn) << "tcp transport: all " << ops_.capacity()
                           << " outstanding-op slots stayed busy for GASP_TIMEOUT="
                           << absl::FormatDuration(timeout_) << "; failing ops to "
                           << PeerName(peer) << " with a local error";
            warned = true;
          }
          counter->Complete(peer, ops[i].wr_id, CompletionCode::kLocalError);
          ++i;
          continue;
        }
      }
      req_ids[n] = ops_.Arm(index, ops[i + n], counter);
      ++n;
    }
    if (n > 0) SendRequests(conn, peer, ops.subspan(i, n), req_ids);
    i += n;
  }
}

void TcpTransport::SendRequests(Conn* conn, int peer, absl::Span<const Op> ops,
                                const uint64_t* req_ids) {
  uint8_t headers[kChunkOps][kFrameHeaderSize];
  iovec iov[2 * kChunkOps];
  int cnt = 0;
  for (size_t k = 0; k < ops.size(); ++k) {
    const Op& op = ops[k];
    FrameHeader h;
    h.req_id = req_ids[k];
    h.remote_addr = op.remote_addr;
    h.rkey = op.rkey.packed;
    switch (op.type) {
      case OpType::kRead:
        h.type = FrameType::kReadReq;
        h.operand = op.length;
        break;
      case OpType::kWrite:
        h.type = FrameType::kWriteReq;
        h.length = static_cast<uint32_t>(op.length);
        break;
      case OpType::kCompareSwap:
        h.type = FrameType::kCasReq;
        h.operand = op.operand;
        h.compare = op.compare;
        break;
      case OpType::kFetchAdd:
        h.type = FrameType::kFaaReq;
        h.operand = op.operand;
        break;
    }
    EncodeHeader(h, headers[k]);
    iov[cnt++] = {headers[k], kFrameHeaderSize};
    if (op.type == OpType::kWrite && op.length > 0) {
      iov[cnt++] = {const_cast<void*>(op.local), op.length};
    }
  }
  if (!SendOnConn(conn, iov, cnt).ok()) {
    CompletionCode code = PeerFailCode(peer);
    if (state_.load() != static_cast<int>(TransportState::kRunning)) {
      code = CompletionCode::kFlushed;
    } else if (code == CompletionCode::kSuccess) {
      code = CompletionCode::kPeerUnreachable;
    }
    // Ops the progress thread already failed are not live any more.
    for (size_t k = 0; k < ops.size(); ++k) ops_.Complete(req_ids[k], code);
  }
}

absl::Status TcpTransport::SendOnConn(Conn* conn, struct iovec* iov, int iovcnt) {
  std::unique_lock<std::mutex> l(conn->send_mu);
  const absl::Time deadline = absl::Now() + timeout_;
  absl::Status s = WaitWholeFrames(conn, l, deadline);
  if (conn->send_closed) {
    if (!conn->broken.ok()) return Detached(conn->broken);
    return absl::UnavailableError(
        absl::StrFormat("connection to %s is closed", PeerName(conn->peer)));
  }
  if (s.ok()) s = SendAll(conn->fd, iov, iovcnt, deadline);
  if (!s.ok()) {
    // A partial frame may be on the wire: the stream is unusable. Shutting
    // it down makes the progress thread see EOF and report the peer.
    conn->broken =
        Detached(Annotate(s, absl::StrFormat("sending to %s", PeerName(conn->peer))));
    conn->send_closed = true;
    shutdown(conn->fd, SHUT_RDWR);
    return Detached(conn->broken);
  }
  return absl::OkStatus();
}

void TcpTransport::Abandon(CompletionCounter* counter) { ops_.Abandon(counter); }

absl::Status TcpTransport::Wait(CompletionCounter* counter, absl::Time deadline) {
  // The replies of ops to one peer arrive on one connection: read them here
  // when this thread can take it over (tcp_transport_direct.cc). Otherwise,
  // and for whatever is left, the progress thread completes ops and this
  // thread only waits (spinning or blocking per GASP_WAIT_MODE, inside
  // WaitWhileEqual).
  if (!counter->done()) WaitDirect(counter, deadline);
  if (!counter->done()) WatchParked();
  return WaitForCompletions(counter, deadline, ops_, "tcp", timeout_,
                            [this](int peer) { return PeerName(peer); });
}

// ---------------------------------------------------------------------------
// Progress thread

void TcpTransport::ProgressLoop() {
  SetThreadName("gasp-tcp");
  thread_id_.store(std::this_thread::get_id());
  epoll_event events[kMaxEvents];
  while (!stop_.load(std::memory_order_acquire)) {
    pause_.Park();
    if (stop_.load(std::memory_order_acquire)) break;
    // Blocks until there is work: no spinning, even with idle peers. With
    // connections whose HELLO is due, wakes for the next deadline.
    const absl::Duration next = ExpireUnauthenticated();
    int wait_ms = next == absl::InfiniteDuration()
                      ? -1
                      : static_cast<int>(absl::ToInt64Milliseconds(next)) + 1;
    // GASP_WAIT_MODE=poll (cores to spare): keep polling for GASP_SPIN_US
    // after each event, so that a peer's next request is served without a
    // wake-up.
    if (GetWaitMode() == WaitMode::kPoll &&
        absl::Now() - last_event_ < absl::Microseconds(GetSpinMicros())) {
      wait_ms = 0;
    }
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      GASP_LOG(Error) << "tcp transport: " << ErrnoError("epoll_wait", errno);
      absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    bool served = false;  // anything but events skipped for a direct reader
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &event_fd_) {
        uint64_t v;
        while (read(event_fd_, &v, sizeof(v)) < 0 && errno == EINTR) {
        }
        continue;
      }
      if (tag == &listen_fd_) {
        AcceptAll();
        continue;
      }
      Conn* c = static_cast<Conn*>(tag);
      // An event collected just before an application thread took the
      // connection over: that thread reads it now.
      if (!ProgressTake(c)) continue;
      served = true;
      const uint32_t ev = events[i].events;
      if (!c->closed && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) HandleReadable(c);
      if (!c->closed && (ev & EPOLLOUT)) {
        absl::Status error;
        if (!FlushOutput(c, &error)) {
          CloseConn(c, CompletionCode::kPeerUnreachable, error);
        } else {
          UpdateEpoll(c);
        }
      }
      ProgressGive(c);
    }
    if (closes_pending_.exchange(false)) RunPendingCloses();
    if (served) last_event_ = absl::Now();
    ReapClosedIncoming();
    failures_.Deliver();
  }
}

void TcpTransport::HandleReadable(Conn* c) {
  if (ServeInput(c, [] { return false; })) UpdateEpoll(c);
}

bool TcpTransport::ServeInput(Conn* c, absl::FunctionRef<bool()> done, bool wait) {
  const auto flush = [&] {
    if (c->ring_count == 0) return true;
    absl::Status error;
    if (FlushOutput(c, &error)) return true;
    CloseConn(c, CompletionCode::kPeerUnreachable, error);
    return false;
  };
  const auto gone = [c] {
    return c->closed || c->close_pending.load(std::memory_order_relaxed);
  };
  for (int iter = 0; iter < kReadsPerWakeup; ++iter) {
    if (!ProcessInput(c) || gone()) return false;
    // Responses go out as soon as they are ready, before the next recv.
    if (!flush()) return false;
    if (done()) return true;
    if (c->ring_count >= kMaxQueuedFrames) return true;  // backpressure
    ssize_t n;
    const uint64_t remaining = c->in_payload ? c->cur.length - c->payload_done : 0;
    if (c->in_payload && c->in_begin == c->in_end && remaining >= kDirectRecvBytes) {
      n = RecvIntoSink(c, remaining);
      if (gone()) return false;
    } else {
      if (c->in_begin > 0) {
        std::memmove(c->inbuf.get(), c->inbuf.get() + c->in_begin, c->in_end - c->in_begin);
        c->in_end -= c->in_begin;
        c->in_begin = 0;
      }
      n = wait ? WireRecvWait(c->fd, c->inbuf.get() + c->in_end, c->inbuf_cap - c->in_end)
               : WireRecv(c->fd, c->inbuf.get() + c->in_end, c->inbuf_cap - c->in_end);
      if (n > 0) c->in_end += static_cast<size_t>(n);
    }
    wait = false;  // only the first recv may block
    if (n > 0) continue;
    if (n == 0) {
      CloseConn(c, CompletionCode::kPeerUnreachable,
                absl::UnavailableError("connection closed by the peer"));
      return false;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    CloseConn(c, CompletionCode::kPeerUnreachable, ErrnoError("recv", err));
    return false;
  }
  if (!ProcessInput(c) || gone()) return false;
  return flush();
}

bool TcpTransport::ProcessInput(Conn* c) {
  while (true) {
    const size_t avail = c->in_end - c->in_begin;
    if (!c->in_payload) {
      if (avail < kFrameHeaderSize) return true;
      absl::StatusOr<FrameHeader> h =
          DecodeHeader(absl::MakeConstSpan(c->inbuf.get() + c->in_begin, kFrameHeaderSize));
      if (!h.ok()) {
        CloseConn(c, CompletionCode::kProtocolError, h.status());
        return false;
      }
      c->in_begin += kFrameHeaderSize;
      if (!OnHeader(c, *h)) return false;
    } else {
      if (avail == 0) return true;
      const size_t k =
          static_cast<size_t>(std::min<uint64_t>(avail, c->cur.length - c->payload_done));
      SinkBytes(c, c->inbuf.get() + c->in_begin, k);
      c->in_begin += k;
      c->payload_done += k;
      if (c->payload_done == c->cur.length && !OnPayloadDone(c)) return false;
    }
  }
}

bool TcpTransport::OnHeader(Conn* c, const FrameHeader& h) {
  return c->kind == Conn::Kind::kIncoming ? OnIncomingHeader(c, h) : OnOutgoingHeader(c, h);
}

bool TcpTransport::OnIncomingHeader(Conn* c, const FrameHeader& h) {
  if (c->peer < 0) return OnHello(c, h);
  switch (h.type) {
    case FrameType::kReadReq: {
      uint8_t* p = nullptr;
      uint32_t pin = 0;
      const CompletionCode code = regions_.Pin(h.rkey, h.remote_addr, h.operand, kRemoteRead, &p, &pin);
      FrameHeader r;
      r.type = FrameType::kReadResp;
      r.req_id = h.req_id;
      r.status = static_cast<uint8_t>(code);
      if (code == CompletionCode::kSuccess) {
        r.length = static_cast<uint32_t>(h.operand);
        // Sent straight from the target memory, which stays pinned until then.
        QueueResponse(c, r, p, h.operand, pin);
      } else {
        QueueResponse(c, r, nullptr, 0, 0);
      }
      return true;
    }
    case FrameType::kWriteReq: {
      c->cur = h;
      c->payload_done = 0;
      c->target_code = regions_.Pin(h.rkey, h.remote_addr, h.length, kRemoteWrite, &c->target,
                                    &c->target_pin);
      // A refused WRITE's payload is still read off the stream, into nowhere.
      c->sink = c->target_code == CompletionCode::kSuccess ? Conn::Sink::kTarget
                                                           : Conn::Sink::kDiscard;
      if (h.length == 0) return OnPayloadDone(c);
      c->in_payload = true;
      return true;
    }
    case FrameType::kCasReq:
    case FrameType::kFaaReq: {
      uint64_t old = 0;
      const CompletionCode code =
          regions_.Atomic(h.type == FrameType::kCasReq ? OpType::kCompareSwap : OpType::kFetchAdd,
                          h.rkey, h.remote_addr, h.compare, h.operand, &old);
      FrameHeader r;
      r.type = FrameType::kAtomicResp;
      r.req_id = h.req_id;
      r.status = static_cast<uint8_t>(code);
      r.operand = code == CompletionCode::kSuccess ? old : 0;
      QueueResponse(c, r, nullptr, 0, 0);
      return true;
    }
    case FrameType::kMsg:
      return OnMsgHeader(c, h);
    case FrameType::kBye:
      c->said_bye = true;
      // Set before MarkPeerDeparted wakes the receivers: every message of
      // the peer came before this.
      peers_[c->peer].in_finished.store(true, std::memory_order_release);
      MarkPeerDeparted(c->peer);
      WakeAllReceivers();
      return true;
    default:
      CloseConn(c, CompletionCode::kProtocolError,
                absl::DataLossError(absl::StrFormat("unexpected %s frame on a request connection",
                                                    FrameTypeName(h.type))));
      return false;
  }
}

bool TcpTransport::OnOutgoingHeader(Conn* c, const FrameHeader& h) {
  const auto mismatch = [&](OpSlot* s) {
    const std::string what = absl::StrFormat(
        "%s (req %x, %d bytes) does not match the request (%s, %d bytes)", FrameTypeName(h.type),
        h.req_id, h.length, OpName(s->type), s->length);
    ops_.Unlock(s);
    CloseConn(c, CompletionCode::kProtocolError, absl::DataLossError(what));
    return false;
  };
  const auto code = static_cast<CompletionCode>(h.status);
  switch (h.type) {
    case FrameType::kReadResp: {
      c->cur = h;
      c->payload_done = 0;
      c->sink = Conn::Sink::kDiscard;  // late reply to an abandoned op
      if (OpSlot* s = ops_.Lock(h.req_id)) {
        if (s->type != OpType::kRead ||
            (code == CompletionCode::kSuccess && h.length != s->length)) {
          return mismatch(s);
        }
        if (code != CompletionCode::kSuccess) {
          ops_.CompleteAndUnlock(s, code);
          return true;
        }
        ops_.Unlock(s);
        c->sink = Conn::Sink::kLocal;  // straight into the op's buffer
      }
      if (h.length == 0) return OnPayloadDone(c);
      c->in_payload = true;
      return true;
    }
    case FrameType::kWriteResp: {
      OpSlot* s = ops_.Lock(h.req_id);
      if (s == nullptr) return true;
      if (s->type != OpType::kWrite) return mismatch(s);
      ops_.CompleteAndUnlock(s, code);
      return true;
    }
    case FrameType::kAtomicResp: {
      OpSlot* s = ops_.Lock(h.req_id);
      if (s == nullptr) return true;
      if (s->type != OpType::kCompareSwap && s->type != OpType::kFetchAdd) return mismatch(s);
      if (code == CompletionCode::kSuccess && s->local != nullptr) {
        std::memcpy(s->local, &h.operand, sizeof(h.operand));
      }
      ops_.CompleteAndUnlock(s, code);
      return true;
    }
    case FrameType::kMsg:  // the peer sends its messages on our connection
      return OnMsgHeader(c, h);
    case FrameType::kBye:
      // Every response and message the peer will ever send on this
      // connection came before this (set before MarkPeerDeparted wakes the
      // receivers).
      c->said_bye = true;
      peers_[c->peer].out_finished.store(true, std::memory_order_release);
      MarkPeerDeparted(c->peer);
      CloseConn(c, CompletionCode::kPeerUnreachable, absl::OkStatus());
      return false;
    default:
      CloseConn(c, CompletionCode::kProtocolError,
                absl::DataLossError(absl::StrFormat("unexpected %s frame on a response connection",
                                                    FrameTypeName(h.type))));
      return false;
  }
}

void TcpTransport::SinkBytes(Conn* c, const uint8_t* data, size_t n) {
  switch (c->sink) {
    case Conn::Sink::kDiscard:
      return;
    case Conn::Sink::kTarget:
      std::memcpy(c->target + c->payload_done, data, n);
      return;
    case Conn::Sink::kMessage:
      std::memcpy(c->msg.data() + c->payload_done, data, n);
      return;
    case Conn::Sink::kLocal: {
      // The slot lock keeps Abandon out while the buffer is written.
      OpSlot* s = ops_.Lock(c->cur.req_id);
      if (s == nullptr) {
        c->sink = Conn::Sink::kDiscard;
        return;
      }
      std::memcpy(s->local + c->payload_done, data, n);
      ops_.Unlock(s);
      return;
    }
  }
}

ssize_t TcpTransport::RecvIntoSink(Conn* c, size_t max) {
  const uint64_t want = std::min<uint64_t>(c->cur.length - c->payload_done, max);
  ssize_t n = -1;
  switch (c->sink) {
    case Conn::Sink::kDiscard:
      n = WireRecv(c->fd, scratch_.get(), std::min<uint64_t>(want, kScratchBytes));
      break;
    case Conn::Sink::kTarget:
      n = WireRecv(c->fd, c->target + c->payload_done, want);
      break;
    case Conn::Sink::kMessage:
      n = WireRecv(c->fd, c->msg.data() + c->payload_done, want);
      break;
    case Conn::Sink::kLocal: {
      OpSlot* s = ops_.Lock(c->cur.req_id);
      if (s == nullptr) {
        c->sink = Conn::Sink::kDiscard;
        n = WireRecv(c->fd, scratch_.get(), std::min<uint64_t>(want, kScratchBytes));
      } else {
        n = WireRecv(c->fd, s->local + c->payload_done, want);
        const int saved = errno;
        ops_.Unlock(s);
        errno = saved;
      }
      break;
    }
  }
  if (n > 0) {
    c->payload_done += static_cast<uint64_t>(n);
    if (c->payload_done == c->cur.length) {
      const int saved = errno;
      OnPayloadDone(c);
      errno = saved;
    }
  }
  return n;
}

bool TcpTransport::OnPayloadDone(Conn* c) {
  c->in_payload = false;
  const FrameHeader& h = c->cur;
  switch (h.type) {
    case FrameType::kWriteReq: {
      if (c->target_pin != 0) {
        regions_.Unpin(c->target_pin);
        c->target_pin = 0;
      }
      c->target = nullptr;
      FrameHeader r;
      r.type = FrameType::kWriteResp;
      r.req_id = h.req_id;
      r.status = static_cast<uint8_t>(c->target_code);
      QueueResponse(c, r, nullptr, 0, 0);
      return true;
    }
    case FrameType::kReadResp:
      if (c->sink == Conn::Sink::kLocal) {
        if (OpSlot* s = ops_.Lock(h.req_id)) ops_.CompleteAndUnlock(s, CompletionCode::kSuccess);
      }
      return true;
    case FrameType::kMsg: {
      Message m;
      m.peer = c->peer;
      m.tag = h.tag;
      m.payload = std::move(c->msg);
      c->msg = std::vector<uint8_t>();
      DeliverMessage(std::move(m));
      return true;
    }
    default:
      return true;
  }
}

void TcpTransport::QueueResponse(Conn* c, const FrameHeader& h, const uint8_t* payload,
                                 uint64_t len, uint32_t pin) {
  if (c->ring_count == c->ring.size()) {
    // Grow (amortized: the ring keeps its size once warmed up).
    std::vector<OutFrame> bigger(std::max(kRingInitialFrames, c->ring.size() * 2));
    for (size_t k = 0; k < c->ring_count; ++k) {
      bigger[k] = c->ring[(c->ring_head + k) & (c->ring.size() - 1)];
    }
    c->ring.swap(bigger);
    c->ring_head = 0;
  }
  OutFrame& f = c->ring[(c->ring_head + c->ring_count) & (c->ring.size() - 1)];
  EncodeHeader(h, f.header);
  f.payload = payload;
  f.payload_len = len;
  f.sent = 0;
  f.pin = pin;
  ++c->ring_count;
}

bool TcpTransport::FlushOutput(Conn* c, absl::Status* error) {
  if (c->ring_count == 0) return true;
  // Application threads write messages on this socket too. Never wait for
  // one (it may block on a full socket for long): the responses stay
  // queued, EPOLLOUT (or the direct reader's POLLOUT) stays wanted, and
  // they go out on the next try.
  std::unique_lock<std::mutex> l(c->send_mu, std::try_to_lock);
  if (!l.owns_lock()) return true;
  const bool ok = FlushRing(c, error);
  // A frame left half written blocks the senders until it is finished.
  const bool partial = c->ring_count > 0 && c->ring[c->ring_head].sent > 0;
  if (c->out_partial && !partial) c->send_cv.notify_all();
  c->out_partial = partial;
  return ok;
}

bool TcpTransport::FlushRing(Conn* c, absl::Status* error) {
  const size_t mask = c->ring.size() - 1;
  while (c->ring_count > 0) {
    iovec iov[kFlushIov];
    int cnt = 0;
    for (size_t k = 0; k < c->ring_count && cnt + 2 <= kFlushIov; ++k) {
      OutFrame& f = c->ring[(c->ring_head + k) & mask];
      uint64_t off = f.sent;
      if (off < kFrameHeaderSize) {
        iov[cnt++] = {f.header + off, kFrameHeaderSize - off};
        off = 0;
      } else {
        off -= kFrameHeaderSize;
      }
      if (f.payload_len > off) {
        iov[cnt++] = {const_cast<uint8_t*>(f.payload) + off, f.payload_len - off};
      }
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(cnt);
    const ssize_t n = WireSendmsg(c->fd, &msg);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return true;
      if (error != nullptr) *error = ErrnoError("send", err);
      return false;
    }
    uint64_t left = static_cast<uint64_t>(n);
    while (c->ring_count > 0) {
      OutFrame& f = c->ring[c->ring_head];
      const uint64_t total = kFrameHeaderSize + f.payload_len;
      const uint64_t take = std::min(left, total - f.sent);
      f.sent += take;
      left -= take;
      if (f.sent < total) break;
      if (f.pin != 0) regions_.Unpin(f.pin);
      f.pin = 0;
      c->ring_head = (c->ring_head + 1) & mask;
      --c->ring_count;
    }
  }
  return true;
}

void TcpTransport::UpdateEpoll(Conn* c) {
  if (c->closed || c->fd < 0) return;
  const uint32_t want = WantedEvents(c);
  if (want == c->epoll_events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = c;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->epoll_events = want;
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

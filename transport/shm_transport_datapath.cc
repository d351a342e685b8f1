// shm backend, data path: posting one-sided ops and messages into a
// peer's request ring (application threads), and the progress thread:
// serving node-mates' requests against registered memory, completing this
// rank's ops from the response rings, assembling messages, and noticing a
// node-mate's goodbye or end on its socket.
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
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
#include "base/wait.h"
#include "transport/op_checks.h"
#include "transport/shm_socket.h"
#include "transport/shm_transport_impl.h"

namespace gasp {
namespace transport {
namespace shm {
namespace {

// Records consumed from one ring per turn, so one busy peer cannot starve
// the others.
constexpr int kRecordsPerTurn = 256;
// An application thread waiting for room in a ring looks at its deadline
// and the transport's state at least this often.
constexpr absl::Duration kRoomWaitSlice = absl::Milliseconds(10);
// A thread sleeping on a ring itself is woken by the producer, by the
// progress thread that consumed for it, and by the end of the peer or the
// transport; the slice only bounds a wake-up lost to a misbehaving peer.
constexpr absl::Duration kDirectSleepSlice = absl::Seconds(1);
// The progress thread's sleep is bounded too (a safety net only: every
// producer rings the doorbell of a sleeping consumer).
constexpr int kSleepMs = 1000;
constexpr int kMaxEvents = 64;

uint32_t ChunksOf(const Op& op) {
  if (op.type != OpType::kRead && op.type != OpType::kWrite) return 1;
  return std::max<uint64_t>(1, (op.length + kMaxChunkBytes - 1) / kMaxChunkBytes);
}

RecordType ResponseTypeOf(OpType type) {
  switch (type) {
    case OpType::kRead: return RecordType::kReadResp;
    case OpType::kWrite: return RecordType::kWriteResp;
    case OpType::kCompareSwap:
    case OpType::kFetchAdd: return RecordType::kAtomicResp;
  }
  return RecordType::kAtomicResp;
}

}  // namespace

// ---------------------------------------------------------------------------
// Posting (application threads)

absl::Status ShmTransport::Post(absl::Span<const Op> ops, CompletionCounter* counter) {
  GASP_ASSIGN_OR_RETURN(const bool remote,
                        ValidateBatch(ops, counter, rank_, size_, kMaxOpBytes));
  const bool running = Running();
  if (remote && running && !connected_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(
        "shm transport: Post to another rank before Connect(): exchange the endpoint blobs "
        "first");
  }
  if (ops.empty()) return absl::OkStatus();
  DispatchBatch(ops, counter, rank_, running, regions_,
                [&](int peer, absl::Span<const Op> run) { PostToPeer(peer, run, counter); });
  return absl::OkStatus();
}

void ShmTransport::PostToPeer(int peer, absl::Span<const Op> ops, CompletionCounter* counter) {
  Conn* c = nullptr;
  if (PeerFailCode(peer) == CompletionCode::kSuccess) {
    absl::StatusOr<Conn*> out = Outgoing(peer);
    if (out.ok()) c = *out;
  }
  if (c == nullptr) {
    CompletionCode code = Running() ? PeerFailCode(peer) : CompletionCode::kFlushed;
    if (code == CompletionCode::kSuccess) code = CompletionCode::kPeerUnreachable;
    for (const Op& op : ops) counter->Complete(peer, op.wr_id, code);
    return;
  }
  LastPost& last = tl_last_post;
  if (last.transport != this || last.counter != counter) last = LastPost{this, counter, peer};
  if (last.peer != peer) last.peer = kManyPeers;
  std::lock_guard<std::mutex> l(c->send_mu);
  const absl::Time deadline = absl::Now() + timeout_;
  for (const Op& op : ops) {
    uint32_t index = 0;
    if (c->broken || !ops_.Acquire(deadline, &index)) {
      counter->Complete(peer, op.wr_id,
                        c->broken ? CompletionCode::kPeerUnreachable : CompletionCode::kLocalError);
      continue;
    }
    const uint64_t req_id = ops_.Arm(index, op, counter);
    if (tcp::OpSlot* s = ops_.Lock(req_id)) {
      chunks_[index] = ChunkState{ChunksOf(op), op.remote_addr};
      ops_.Unlock(s);
    }
    absl::Status s = SendOp(c, op, req_id);
    if (!s.ok()) SendFailed(c, s);
  }
  // The peer may have been dropped after an op was armed: the progress
  // thread failed the ops it saw, these are the others.
  const CompletionCode code = PeerFailCode(peer);
  if (code != CompletionCode::kSuccess) ops_.FailPeer(peer, code);
}

absl::Status ShmTransport::SendOp(Conn* c, const Op& op, uint64_t req_id) {
  RecordHeader h;
  h.req_id = req_id;
  h.rkey = op.rkey.packed;
  h.addr = op.remote_addr;
  switch (op.type) {
    case OpType::kRead:
    case OpType::kWrite: {
      const bool read = op.type == OpType::kRead;
      const auto* local = static_cast<const uint8_t*>(op.local);
      uint64_t off = 0;
      do {
        const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kMaxChunkBytes, op.length - off));
        h.type = read ? RecordType::kReadReq : RecordType::kWriteReq;
        h.addr = op.remote_addr + off;
        h.span = op.length - off;  // the first chunk's check covers the whole op
        h.aux = read ? n : 0;
        h.length = read ? 0 : n;
        GASP_RETURN_IF_ERROR(PutRecord(c, h, read ? nullptr : local + off));
        off += n;
      } while (off < op.length);
      return absl::OkStatus();
    }
    case OpType::kCompareSwap:
      h.type = RecordType::kCasReq;
      h.span = op.operand;
      h.aux = op.compare;
      return PutRecord(c, h, nullptr);
    case OpType::kFetchAdd:
      h.type = RecordType::kFaaReq;
      h.span = op.operand;
      return PutRecord(c, h, nullptr);
  }
  return absl::InvalidArgumentError("unknown op type");
}

absl::Status ShmTransport::PutRecord(Conn* c, const RecordHeader& h, const uint8_t* payload) {
  GASP_RETURN_IF_ERROR(WaitForRoom(c, RecordBytes(h.length)));
  c->requests.Put(h, payload);
  if (c->requests.ConsumerNeedsWake()) RingDoorbell(c->peer_doorbell);
  return absl::OkStatus();
}

absl::Status ShmTransport::WaitForRoom(Conn* c, uint64_t bytes) {
  const absl::Time deadline = absl::Now() + timeout_;
  while (true) {
    uint64_t room = 0;
    if (!c->requests.Free(&room)) {
      return absl::DataLossError(
          absl::StrFormat("%s corrupted the head of its request ring", PeerName(c->peer)));
    }
    if (room >= bytes) return absl::OkStatus();
    const uint32_t seq = c->requests.AnnounceWait();
    if (c->requests.Free(&room) && room >= bytes) {
      c->requests.ClearWait();
      return absl::OkStatus();
    }
    if (!Running()) return absl::AbortedError("shm transport is shut down");
    if (PeerFailCode(c->peer) != CompletionCode::kSuccess) {
      return absl::UnavailableError(absl::StrFormat("%s is unreachable", PeerName(c->peer)));
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "%s did not make room in its request ring within GASP_TIMEOUT=%s (is it hung?)",
          PeerName(c->peer), absl::FormatDuration(timeout_)));
    }
    SleepShared(c->requests.space_word(), seq, std::min(deadline, now + kRoomWaitSlice));
  }
}

void ShmTransport::SendFailed(Conn* c, const absl::Status& why) {
  c->broken = true;
  if (!Running()) return;  // flushed by Shutdown
  // Part of an op or message may be in the ring: the stream cannot go on.
  MarkPeerFailed(c->peer, CompletionCode::kPeerUnreachable,
                 Annotate(why, absl::StrFormat("sending to %s", PeerName(c->peer))));
  ops_.FailPeer(c->peer, PeerFailCode(c->peer));
  WakeDirectWaiters(c->peer);
}

absl::Status ShmTransport::Wait(CompletionCounter* counter, absl::Time deadline) {
  // While spinning, this thread consumes the responses itself (no wake-up
  // of the progress thread and then of this one); then the progress thread
  // completes the ops and this thread sleeps on the counter.
  if (!counter->done()) WaitDirect(counter, deadline);
  return tcp::WaitForCompletions(counter, deadline, ops_, "shm", timeout_,
                                 [this](int peer) { return PeerName(peer); });
}

namespace {

// Spins until `done()` or the spin window of GASP_WAIT_MODE ends (poll:
// `deadline`), running `step` between looks.
template <typename Step, typename Done>
void SpinWhileNot(absl::Time deadline, Step step, Done done) {
  const bool poll = GetWaitMode() == WaitMode::kPoll;
  const absl::Time end =
      poll ? deadline : std::min(deadline, absl::Now() + absl::Microseconds(GetSpinMicros()));
  for (int i = 1; !done(); ++i) {
    step();
    if (done()) return;
    CpuRelax();
    if ((i & 63) == 0) {
      if (absl::Now() >= end) return;
      if (!poll) sched_yield();  // let a thread woken onto this CPU run
    }
  }
}

}  // namespace

Conn* ShmTransport::DirectConn(const CompletionCounter* counter) const {
  const LastPost& last = tl_last_post;
  if (last.transport != this || last.counter != counter || last.peer < 0) return nullptr;
  return peers_[last.peer].out.load(std::memory_order_acquire);
}

void ShmTransport::DrainWhileNot(Conn* c, absl::Time deadline, absl::FunctionRef<bool()> done) {
  bool counted = false;  // in the ring's direct_waiters
  const auto consume = [&] {
    std::unique_lock<std::mutex> l(c->consume_mu, std::try_to_lock);
    if (l.owns_lock() && !c->closed) Consume(c, /*peer_gone=*/false, counted);
  };
  const auto over = [&] { return done() || c->closed || !Running(); };
  if (GetWaitMode() != WaitMode::kBlock) SpinWhileNot(deadline, consume, over);
  const RingConsumer& ring = ConsumedRing(c);
  while (!over() && absl::Now() < deadline) {
    const uint32_t seq = ring.AnnounceDirect();
    counted = true;
    consume();
    if (!over()) {
      SleepShared(ring.direct_word(), seq, std::min(deadline, absl::Now() + kDirectSleepSlice));
    }
    // Records may have come in for others while the producer woke only
    // this thread: the progress thread takes them.
    counted = false;
    if (ring.RetireDirect()) Wake();
  }
}

void ShmTransport::WaitDirect(CompletionCounter* counter, absl::Time deadline) {
  if (Conn* c = DirectConn(counter)) DrainWhileNot(c, deadline, [&] { return counter->done(); });
}

std::optional<Message> ShmTransport::RecvDirect(uint32_t tag, int from, absl::Time deadline) {
  Conn* c = peers_[from].in.load(std::memory_order_acquire);
  if (c == nullptr) return std::nullopt;
  std::optional<Message> m;
  DrainWhileNot(c, deadline, [&] {
    if (!m.has_value()) m = inbox_.TryTake(tag, from);  // asked again after it is true
    return m.has_value() || PeerFailCode(from) != CompletionCode::kSuccess;
  });
  return m;
}

bool ShmTransport::Consume(Conn* c, bool peer_gone, bool caller_sleeps) {
  const bool worked = c->outgoing ? DrainResponses(c) : ServeRequests(c, peer_gone);
  // Another thread's reply or message may have been among the records.
  if (worked) ConsumedRing(c).WakeDirect(caller_sleeps ? 1 : 0);
  return worked;
}

// ---------------------------------------------------------------------------
// Messages

absl::Status ShmTransport::Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) {
  GASP_RETURN_IF_ERROR(ValidateSend(peer, size_, payload.size(), [&] { return PeerName(peer); }));
  if (!Running()) return absl::FailedPreconditionError("shm transport: Send after Shutdown");
  StatAdd(Counter::kMessagesSent);
  if (peer == rank_) {
    inbox_.Deliver(Message{rank_, tag, std::vector<uint8_t>(payload.begin(), payload.end())});
    return absl::OkStatus();
  }
  GASP_RETURN_IF_ERROR(CheckSendPeer("shm", tag, PeerFailCode(peer),
                                    connected_.load(std::memory_order_acquire),
                                    [&] { return PeerName(peer); }));
  GASP_ASSIGN_OR_RETURN(Conn * c, Outgoing(peer));
  std::lock_guard<std::mutex> l(c->send_mu);
  if (c->broken) {
    return absl::UnavailableError(
        absl::StrFormat("Send (tag %d) to %s: the connection is broken", tag, PeerName(peer)));
  }
  RecordHeader h;
  h.type = RecordType::kMsg;
  h.tag = tag;
  h.span = payload.size();
  uint64_t off = 0;
  do {
    h.aux = off;
    h.length = static_cast<uint32_t>(std::min<uint64_t>(kMaxChunkBytes, payload.size() - off));
    absl::Status s = PutRecord(c, h, payload.data() + off);
    if (!s.ok()) {
      SendFailed(c, s);
      return Annotate(s, absl::StrFormat("Send (tag %d)", tag));
    }
    off += h.length;
  } while (off < payload.size());
  return absl::OkStatus();
}

absl::StatusOr<Message> ShmTransport::Recv(uint32_t tag, int from, absl::Time deadline) {
  GASP_RETURN_IF_ERROR(ValidateRecvFrom(from, size_));
  // A peer's messages are all delivered before it is marked gone (its ring
  // is drained first), so an unreachable peer has nothing more to give.
  const auto give_up = [&]() -> absl::Status {
    if (from != kAnyPeer && from != rank_ && PeerFailCode(from) != CompletionCode::kSuccess) {
      return absl::UnavailableError(absl::StrFormat(
          "Recv (tag %d) from %s: the rank is unreachable (it failed or shut down)", tag,
          PeerName(from)));
    }
    if (!Running()) {
      return absl::FailedPreconditionError(
          absl::StrFormat("Recv (tag %d): the shm transport is shut down", tag));
    }
    return absl::OkStatus();
  };
  if (from != kAnyPeer && from != rank_) {
    if (std::optional<Message> m = inbox_.TryTake(tag, from)) return std::move(*m);
    if (std::optional<Message> m = RecvDirect(tag, from, deadline)) return std::move(*m);
  }
  absl::StatusOr<Message> m = inbox_.Take(tag, from, deadline, give_up);
  if (m.status().code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "no message with tag %d from %s arrived before the deadline (GASP_TIMEOUT=%s)", tag,
        from == kAnyPeer ? std::string("any rank") : PeerName(from),
        absl::FormatDuration(timeout_)));
  }
  return m;
}

// ---------------------------------------------------------------------------
// Progress thread

void ShmTransport::ProgressLoop() {
  progress_id_.store(std::this_thread::get_id(), std::memory_order_release);
  absl::Time last_work = absl::InfinitePast();
  int idle_turns = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    pause_.Park();
    if (stop_.load(std::memory_order_acquire)) break;  // a crashed rank serves nothing more
    AdoptNewConns();
    bool worked = false;
    for (Conn* c : active_) {
      if (c->closed) continue;
      std::unique_lock<std::mutex> l(c->consume_mu, std::try_to_lock);
      if (!l.owns_lock()) continue;  // an application thread drains it now
      worked |= Consume(c);
    }
    failures_.Deliver();
    if (worked) {
      last_work = absl::Now();
      idle_turns = 0;
      continue;
    }
    // GASP_WAIT_MODE: poll and adaptive keep looking for GASP_SPIN_US after
    // the last work (a reply usually follows a request quickly); then sleep.
    const WaitMode mode = GetWaitMode();
    if (mode != WaitMode::kBlock &&
        absl::Now() - last_work < absl::Microseconds(GetSpinMicros())) {
      CpuRelax();
      if (mode == WaitMode::kAdaptive && (++idle_turns & 63) == 0) sched_yield();
      continue;
    }
    SleepUntilWork();
  }
}

void ShmTransport::AdoptNewConns() {
  std::vector<Conn*> fresh;
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    fresh.swap(new_conns_);
  }
  for (Conn* c : fresh) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    {
      std::lock_guard<std::mutex> l(conns_mu_);  // DropPeer may close it meanwhile
      c->registered = c->sock >= 0 && epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->sock, &ev) == 0;
    }
    active_.push_back(c);
    if (!c->registered) PeerGone(c->peer, false);
  }
}

void ShmTransport::SleepUntilWork() {
  bool pending = false;
  for (Conn* c : active_) {
    if (c->closed) continue;
    pending |= c->outgoing ? c->responses.AnnounceSleep() : c->peer_requests.AnnounceSleep();
  }
  if (!pending && !pause_.requested() && !stop_.load()) {
    epoll_event events[kMaxEvents];
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, kSleepMs);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (c == nullptr) {
        uint64_t count;
        while (read(doorbell_fd_, &count, sizeof(count)) > 0) {
        }
      } else if (!c->closed) {
        OnSocketEvent(c, events[i].events);
      }
    }
  }
  for (Conn* c : active_) {
    if (c->closed) continue;
    if (c->outgoing) {
      c->responses.ClearSleep();
    } else {
      c->peer_requests.ClearSleep();
    }
  }
}

bool ShmTransport::ServeRequests(Conn* c, bool peer_gone) {
  bool worked = false;
  for (int i = 0; i < kRecordsPerTurn && !c->closed; ++i) {
    RecordHeader h;
    absl::Status why;
    const RingConsumer::Next next = c->peer_requests.Peek(&h, &why);
    if (next == RingConsumer::Next::kEmpty) return worked;
    if (next == RingConsumer::Next::kCorrupt) {
      ProtocolError(c, why);
      return true;
    }
    if (!IsRequest(h.type)) {
      ProtocolError(c, absl::DataLossError(absl::StrFormat(
                           "%s record in its request ring", RecordTypeName(h.type))));
      return true;
    }
    if (h.type == RecordType::kMsg) {
      OnMessageChunk(c, h);
      if (c->closed) return true;
    } else if (!peer_gone && !ServeOne(c, h)) {
      c->blocked = true;  // the peer rings our doorbell once it made room
      return worked;
    }
    c->blocked = false;
    c->peer_requests.Pop();
    c->peer_requests.ProducerNeedsWake();  // a sender waiting for room (futex)
    worked = true;
  }
  return worked;
}

bool ShmTransport::ServeOne(Conn* c, const RecordHeader& h) {
  // Only with room for the whole response: the progress thread never
  // waits for a peer (two ranks serving each other would deadlock).
  const uint64_t need = RecordBytes(h.type == RecordType::kReadReq ? h.aux : 0);
  uint64_t room = 0;
  if (!c->our_responses.Free(&room) || room < need) {
    c->our_responses.AnnounceWait();
    if (!c->our_responses.Free(&room) || room < need) return false;
  }
  c->our_responses.ClearWait();
  RecordHeader r;
  r.req_id = h.req_id;
  uint8_t* p = nullptr;
  uint32_t pin = 0;
  CompletionCode code = CompletionCode::kSuccess;
  switch (h.type) {
    case RecordType::kReadReq:
      r.type = RecordType::kReadResp;
      r.aux = h.addr;
      code = regions_.Pin(h.rkey, h.addr, h.span, kRemoteRead, &p, &pin);
      if (code == CompletionCode::kSuccess) r.length = static_cast<uint32_t>(h.aux);
      break;
    case RecordType::kWriteReq:
      r.type = RecordType::kWriteResp;
      code = regions_.Pin(h.rkey, h.addr, h.span, kRemoteWrite, &p, &pin);
      if (code == CompletionCode::kSuccess) {
        c->peer_requests.CopyPayload(p, h.length);
        regions_.Unpin(pin);
      }
      break;
    case RecordType::kCasReq:
    case RecordType::kFaaReq: {
      r.type = RecordType::kAtomicResp;
      uint64_t old = 0;
      code = regions_.Atomic(h.type == RecordType::kCasReq ? OpType::kCompareSwap
                                                             : OpType::kFetchAdd,
                             h.rkey, h.addr, h.aux, h.span, &old);
      if (code == CompletionCode::kSuccess) r.span = old;
      break;
    }
    default:
      break;
  }
  r.status = static_cast<uint8_t>(code);
  c->our_responses.Put(r, p);
  if (h.type == RecordType::kReadReq && code == CompletionCode::kSuccess) regions_.Unpin(pin);
  if (c->our_responses.ConsumerNeedsWake()) RingDoorbell(c->peer_doorbell);
  return true;
}

void ShmTransport::OnMessageChunk(Conn* c, const RecordHeader& h) {
  if (h.aux == 0) {
    if (c->assembling) {
      ProtocolError(c, absl::DataLossError("a new message before the previous one ended"));
      return;
    }
    c->partial = Message{c->peer, h.tag, std::vector<uint8_t>(h.span)};
    c->assembled = 0;
    c->assembling = true;
  } else if (!c->assembling || h.aux != c->assembled || h.tag != c->partial.tag ||
             h.span != c->partial.payload.size()) {
    ProtocolError(c, absl::DataLossError(absl::StrFormat(
                         "message chunk at offset %d (tag %d) out of sequence", h.aux, h.tag)));
    return;
  }
  if (h.length == 0 && h.span != 0) {
    ProtocolError(c, absl::DataLossError("empty chunk inside a message"));
    return;
  }
  c->peer_requests.CopyPayload(c->partial.payload.data() + h.aux, h.length);
  c->assembled += h.length;
  if (c->assembled == h.span) {
    c->assembling = false;
    inbox_.Deliver(std::move(c->partial));
    c->partial = Message{};
  }
}

bool ShmTransport::DrainResponses(Conn* c) {
  bool worked = false;
  for (int i = 0; i < kRecordsPerTurn && !c->closed; ++i) {
    RecordHeader h;
    absl::Status why;
    const RingConsumer::Next next = c->responses.Peek(&h, &why);
    if (next == RingConsumer::Next::kEmpty) return worked;
    if (next == RingConsumer::Next::kCorrupt) {
      ProtocolError(c, why);
      return true;
    }
    if (IsRequest(h.type)) {
      ProtocolError(c, absl::DataLossError(absl::StrFormat(
                           "%s record in its response ring", RecordTypeName(h.type))));
      return true;
    }
    if (!OnResponse(c, h)) return true;
    c->responses.Pop();
    if (c->responses.ProducerNeedsWake()) RingDoorbell(c->peer_doorbell);
    worked = true;
  }
  return worked;
}

bool ShmTransport::OnResponse(Conn* c, const RecordHeader& h) {
  tcp::OpSlot* s = ops_.Lock(h.req_id);
  if (s == nullptr) return true;  // abandoned, or failed earlier: dropped
  const auto reject = [&](const std::string& what) {
    ops_.Unlock(s);
    ProtocolError(c, absl::DataLossError(what));
    return false;
  };
  if (s->peer != c->peer || ResponseTypeOf(s->type) != h.type) {
    return reject(absl::StrFormat("%s answers a %s op with a %s record", PeerName(c->peer),
                                  OpName(s->type), RecordTypeName(h.type)));
  }
  const auto code = static_cast<CompletionCode>(h.status);
  if (code != CompletionCode::kSuccess) {
    ops_.CompleteAndUnlock(s, code);
    return true;
  }
  ChunkState& st = chunks_[s->index];
  if (h.type == RecordType::kReadResp) {
    const uint64_t off = h.aux - st.remote_addr;
    if (h.aux < st.remote_addr || off > s->length ||
        h.length != std::min<uint64_t>(kMaxChunkBytes, s->length - off)) {
      return reject(absl::StrFormat("READ reply of %d bytes at 0x%x outside the op", h.length,
                                    h.aux));
    }
    c->responses.CopyPayload(s->local + off, h.length);
  } else if (h.type == RecordType::kAtomicResp && s->local != nullptr) {
    std::memcpy(s->local, &h.span, sizeof(h.span));
  }
  if (st.remaining <= 1) {
    ops_.CompleteAndUnlock(s, CompletionCode::kSuccess);
  } else {
    --st.remaining;
    ops_.Unlock(s);
  }
  return true;
}

// ---------------------------------------------------------------------------
// Peer ends and failures (progress thread)

void ShmTransport::OnSocketEvent(Conn* c, uint32_t events) {
  uint8_t buf[64];
  ssize_t n = 0;
  {
    // An application thread that found a protocol error may close it.
    std::lock_guard<std::mutex> l(conns_mu_);
    if (c->sock < 0) return;
    n = recv(c->sock, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) n = -errno;
  }
  if (n > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != kByeByte) {
        ProtocolError(c, absl::DataLossError(
                             absl::StrFormat("unexpected byte 0x%02x on its socket", buf[i])));
        return;
      }
    }
    PeerGone(c->peer, /*said_bye=*/true);
    return;
  }
  if (n == 0 || (n != -EAGAIN && n != -EINTR) || (events & (EPOLLHUP | EPOLLERR)) != 0) {
    PeerGone(c->peer, peers_[c->peer].said_bye);
  }
}

void ShmTransport::PeerGone(int peer, bool said_bye) {
  Peer& p = peers_[peer];
  p.said_bye |= said_bye;
  AdoptNewConns();
  // Everything it put in the rings before its end still counts (messages
  // sent before a shutdown are delivered).
  for (Conn* c : {p.in.load(std::memory_order_acquire), p.out.load(std::memory_order_acquire)}) {
    if (c == nullptr) continue;
    std::lock_guard<std::mutex> l(c->consume_mu);
    while (!c->closed && Consume(c, /*peer_gone=*/true)) {
    }
  }
  if (!(p.said_bye && MarkPeerDeparted(peer))) {
    MarkPeerFailed(peer, CompletionCode::kPeerUnreachable,
                   absl::UnavailableError(absl::StrFormat(
                       "%s left without goodbye (its socket closed: the process died?)",
                       PeerName(peer))));
  }
  DropPeer(peer, PeerFailCode(peer));
}

void ShmTransport::ProtocolError(Conn* c, const absl::Status& why) {
  MarkPeerFailed(c->peer, CompletionCode::kProtocolError,
                 absl::DataLossError(absl::StrFormat("protocol error from %s: %s",
                                                     PeerName(c->peer), why.message())));
  DropPeer(c->peer, CompletionCode::kProtocolError);
}

void ShmTransport::DropPeer(int peer, CompletionCode code) {
  for (Conn* c : {peers_[peer].in.load(), peers_[peer].out.load()}) {
    if (c == nullptr || c->closed.exchange(true)) continue;
    std::lock_guard<std::mutex> l(conns_mu_);
    if (c->sock >= 0) {
      close(c->sock);  // also takes it out of the epoll set
      c->sock = -1;
    }
  }
  ops_.FailPeer(peer, code == CompletionCode::kSuccess ? CompletionCode::kPeerUnreachable : code);
  inbox_.WakeAll();
  WakeDirectWaiters(peer);
}

void ShmTransport::WakeDirectWaiters(int peer) {
  for (Conn* c : {peers_[peer].in.load(), peers_[peer].out.load()}) {
    if (c != nullptr) ConsumedRing(c).WakeDirect();
  }
}

}  // namespace shm
}  // namespace transport
}  // namespace gasp

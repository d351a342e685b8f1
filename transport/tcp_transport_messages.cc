// tcp backend, messages: Send and Recv, the choice of the connection a
// rank sends its messages to a peer on, and their delivery to the inbox.
//
// The rule (docs/design.md, "Transport"): a rank's messages to a peer go
// on one connection, chosen at its first Send to that peer and never
// changed:
//  * the connection between the two that exists then (authenticated: the
//    one this rank dialed, or the peer's once its PROOF checked out);
//  * when both exist, the one the lower rank dialed, which the peer picks
//    too under this rule: after simultaneous first sends each rank keeps
//    its own, later pairs share the lower rank's;
//  * when none exists, a new outgoing one.
// Whichever it is, the first Send also dials the peer if this rank has not
// yet (the connection its one-sided ops go on): a rank has dialed every
// peer it sends messages to.
// One stream per sender and receiver keeps its messages in order (the
// contract in transport.h), whichever connection it is. An echo then runs
// on one connection in both directions: the request on the one the first
// sender dialed, the reply on the same one the other way.
#include <sys/uio.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/status.h"
#include "transport/op_checks.h"
#include "transport/tcp_socket.h"
#include "transport/tcp_transport_impl.h"

namespace gasp {
namespace transport {
namespace tcp {

absl::StatusOr<Conn*> TcpTransport::MessageConn(int peer) {
  Peer& p = peers_[peer];
  if (Conn* c = p.msg_out.load(std::memory_order_acquire)) return c;
  // Held while dialing: only this rank's other senders to `peer` wait,
  // and they must, or they could pick another connection.
  std::lock_guard<std::mutex> l(p.msg_mu);
  if (Conn* c = p.msg_out.load(std::memory_order_acquire)) return c;
  Conn* out = p.out.load(std::memory_order_acquire);
  Conn* in = p.in.load(std::memory_order_acquire);
  Conn* pick = nullptr;
  if (out != nullptr && in != nullptr) {
    pick = rank_ < peer ? out : in;  // the one the lower rank dialed
  } else if (out != nullptr || in != nullptr) {
    pick = out != nullptr ? out : in;
  }
  // The pick is made on what existed before: the peer applies the same
  // rule. Then this rank dials the peer if it has not yet, even when its
  // messages go on the peer's connection, so that its later one-sided ops
  // to the peer need no dial. A dial then could meet a stopped peer (a
  // liveness probe's READ would wait out the handshake, GASP_TIMEOUT,
  // instead of its own deadline, and declare the peer lost) or strangers
  // crowding the peer's port (its accept guard refuses connections from a
  // crowded address). Init's barrier thus still connects each rank to the
  // ranks it sends to, before the application runs.
  GASP_ASSIGN_OR_RETURN(Conn * mine, Outgoing(peer));
  if (pick == nullptr) pick = mine;
  p.msg_out.store(pick, std::memory_order_release);
  GASP_LOG(Debug) << "tcp transport: messages to " << PeerName(peer) << " go on " << ConnName(pick);
  return pick;
}

Conn* TcpTransport::ExpectedMessageConn(int from) const {
  const Peer& p = peers_[from];
  if (Conn* c = p.msg_in.load(std::memory_order_acquire)) return c;
  // Nothing came yet. With one connection, the peer can only use that one;
  // with two, which one depends on what existed at its first Send: reading
  // the wrong one would leave the message to the progress thread, seen
  // only once a read slice ends, so none is read directly.
  Conn* out = p.out.load(std::memory_order_acquire);
  Conn* in = p.in.load(std::memory_order_acquire);
  if (out != nullptr && in != nullptr) return nullptr;
  return out != nullptr ? out : in;
}

bool TcpTransport::MessagesMayFollow(int from) const {
  const Peer& p = peers_[from];
  const bool in_open = p.in.load(std::memory_order_acquire) != nullptr &&
                       !p.in_finished.load(std::memory_order_acquire);
  const bool out_open = p.out.load(std::memory_order_acquire) != nullptr &&
                        !p.out_finished.load(std::memory_order_acquire);
  return in_open || out_open;
}

absl::Status TcpTransport::WaitWholeFrames(Conn* conn, std::unique_lock<std::mutex>& l,
                                           absl::Time deadline) {
  // The owner finishes the frame when the socket takes it (it wants
  // EPOLLOUT, or POLLOUT as a direct reader, while responses are queued).
  while (conn->out_partial && !conn->send_closed) {
    if (conn->send_cv.wait_until(l, absl::ToChronoTime(deadline)) == std::cv_status::timeout &&
        conn->out_partial && !conn->send_closed) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "a response to %s stayed half written for GASP_TIMEOUT=%s (it stopped reading)",
          PeerName(conn->peer), absl::FormatDuration(timeout_)));
    }
  }
  return absl::OkStatus();
}

bool TcpTransport::OnMsgHeader(Conn* c, const FrameHeader& h) {
  Peer& p = peers_[c->peer];
  if (p.msg_in.load(std::memory_order_relaxed) != c) p.msg_in.store(c, std::memory_order_release);
  c->cur = h;
  c->payload_done = 0;
  c->sink = Conn::Sink::kMessage;
  c->msg.assign(h.length, 0);
  if (h.length == 0) return OnPayloadDone(c);
  c->in_payload = true;
  return true;
}

absl::Status TcpTransport::Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) {
  GASP_RETURN_IF_ERROR(ValidateSend(peer, size_, payload.size(), [&] { return PeerName(peer); }));
  if (state_.load() != static_cast<int>(TransportState::kRunning)) {
    return absl::FailedPreconditionError("tcp transport: Send after Shutdown");
  }
  StatAdd(Counter::kMessagesSent);
  if (peer == rank_) {
    Message m;
    m.peer = rank_;
    m.tag = tag;
    m.payload.assign(payload.begin(), payload.end());
    DeliverMessage(std::move(m));
    return absl::OkStatus();
  }
  GASP_RETURN_IF_ERROR(CheckSendPeer("tcp", tag, PeerFailCode(peer),
                                    connected_.load(std::memory_order_acquire),
                                    [&] { return PeerName(peer); }));
  GASP_ASSIGN_OR_RETURN(Conn * conn, MessageConn(peer));
  FrameHeader h;
  h.type = FrameType::kMsg;
  h.tag = tag;
  h.length = static_cast<uint32_t>(payload.size());
  uint8_t header[kFrameHeaderSize];
  EncodeHeader(h, header);
  iovec iov[2] = {{header, sizeof(header)},
                  {const_cast<uint8_t*>(payload.data()), payload.size()}};
  absl::Status s = SendOnConn(conn, iov, payload.empty() ? 1 : 2);
  if (s.ok()) return s;  // formatted only on failure: this is every message's path
  return Annotate(s, absl::StrFormat("Send (tag %d)", tag));
}

absl::StatusOr<Message> TcpTransport::Recv(uint32_t tag, int from, absl::Time deadline) {
  GASP_RETURN_IF_ERROR(ValidateRecvFrom(from, size_));
  std::unique_lock<std::mutex> l(inbox_mu_);
  bool tried_direct = false;
  while (true) {
    const uint64_t seq = inbox_seq_.load(std::memory_order_relaxed);
    for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
      if (it->tag == tag && (from == kAnyPeer || it->peer == from)) {
        Message m = std::move(*it);
        inbox_.erase(it);
        return m;
      }
    }
    if (from != kAnyPeer && from != rank_ && PeerFailCode(from) != CompletionCode::kSuccess &&
        !MessagesMayFollow(from)) {
      return absl::UnavailableError(absl::StrFormat(
          "Recv (tag %d) from %s: the rank is unreachable (it failed or shut down)", tag,
          PeerName(from)));
    }
    if (state_.load() != static_cast<int>(TransportState::kRunning)) {
      return absl::FailedPreconditionError(
          absl::StrFormat("Recv (tag %d): the tcp transport is shut down", tag));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "no message with tag %d from %s arrived before the deadline (GASP_TIMEOUT=%s)", tag,
          from == kAnyPeer ? std::string("any rank") : PeerName(from),
          absl::FormatDuration(timeout_)));
    }
    if (from != kAnyPeer && from != rank_ && !tried_direct) {
      // A message from `from` arrives on its connection to us: read it here
      // if this thread can take that connection over. Then everything above
      // is checked again (the peer may have failed meanwhile) before this
      // thread blocks.
      l.unlock();
      RecvDirect(from, deadline, seq);
      l.lock();
      tried_direct = true;
      continue;
    }
    tried_direct = false;
    RecvWaiter me{tag, from, {}};
    recv_waiters_.push_back(&me);
    me.cv.wait_until(l, absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Hours(24))));
    recv_waiters_.erase(std::find(recv_waiters_.begin(), recv_waiters_.end(), &me));
  }
}

void TcpTransport::DeliverMessage(Message m) {
  std::lock_guard<std::mutex> l(inbox_mu_);
  for (RecvWaiter* w : recv_waiters_) {
    if (w->tag == m.tag && (w->from == kAnyPeer || w->from == m.peer)) w->cv.notify_one();
  }
  inbox_.push_back(std::move(m));
  inbox_seq_.fetch_add(1, std::memory_order_release);
}

void TcpTransport::WakeAllReceivers() {
  std::lock_guard<std::mutex> l(inbox_mu_);
  for (RecvWaiter* w : recv_waiters_) w->cv.notify_one();
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

// tcp backend, connections: accepting them (with the caps on strangers that
// have not sent a HELLO), the HELLO handshake on incoming connections, and
// closing connections and dropping peers. Progress thread only.
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
#include "transport/tcp_socket.h"
#include "transport/tcp_transport_impl.h"
namespace gasp {
namespace transport {
namespace tcp {

void TcpTransport::AcceptAll() {
  while (std::optional<AcceptedConn> a = accept_guard_.Next(listen_fd_)) {
    const int fd = a->fd;
    const uint32_t ip = a->ip;
    if (!unauth_.Admit(ip)) {
      close(fd);
      accept_guard_.LogRefusal(
          FormatAddress(ip, a->port),
          absl::StrFormat("%d connections (%d from that address) have not completed the "
                          "handshake yet",
                          unauth_.total(), unauth_.from(ip)));
      continue;
    }
    SetNoDelay(fd);
    auto owned = std::make_unique<Conn>(Conn::Kind::kIncoming, fd, -1,
                                        FormatAddress(ip, a->port));
    // A header's worth until its HELLO is accepted: idle strangers cost
    // little memory.
    owned->inbuf_cap = kFrameHeaderSize;
    owned->inbuf.reset(new uint8_t[owned->inbuf_cap]);
    owned->unauth = true;
    owned->source_ip = ip;
    owned->hello_deadline = absl::Now() + kHelloTimeout;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = owned.get();
    owned->epoll_events = ev.events;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      GASP_LOG(Error) << "tcp transport: " << ErrnoError("epoll_ctl(add incoming)", errno);
      close(fd);
      continue;
    }
    incoming_.push_back(std::move(owned));
  }
  if (accept_guard_.paused_until() > absl::Now()) {
    // Out of descriptors with no spare, or accept failing: leave the
    // listener alone until ExpireUnauthenticated watches it again.
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    listener_paused_ = true;
  }
}

void TcpTransport::ResumeListener(absl::Time now) {
  if (!listener_paused_ || accept_guard_.paused_until() > now) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listen_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0) listener_paused_ = false;
}

bool TcpTransport::OnHello(Conn* c, const FrameHeader& h) {
  const auto reject = [&](const std::string& why) {
    CloseConn(c, CompletionCode::kProtocolError, absl::FailedPreconditionError(why));
    return false;
  };
  if (c->claimed >= 0) return OnProof(c, h);
  if (h.type != FrameType::kHello) {
    return reject(absl::StrFormat("first frame is %s, not HELLO", FrameTypeName(h.type)));
  }
  const int peer = static_cast<int>(h.operand);
  if (h.remote_addr != static_cast<uint64_t>(size_)) {
    return reject(absl::StrFormat(
        "HELLO from rank %d of a %d-rank job, this job has %d ranks (another job on this port?)",
        peer, h.remote_addr, size_));
  }
  if (peer == rank_) return reject("HELLO claims to come from this very rank");
  if (connected_.load(std::memory_order_acquire) && h.compare != peers_[peer].endpoint.nonce) {
    return reject(absl::StrFormat(
        "HELLO from rank %d carries session %x, its endpoint blob says %x (a stale process?)",
        peer, h.compare, peers_[peer].endpoint.nonce));
  }
  HandshakeTranscript t;
  t.size = static_cast<uint64_t>(size_);
  t.connector_rank = static_cast<uint64_t>(peer);
  t.acceptor_rank = static_cast<uint64_t>(rank_);
  t.connector_session = h.compare;
  t.acceptor_session = nonce_;
  t.connector_nonce = h.req_id;
  t.acceptor_nonce = RandomU64();
  const absl::Span<const uint8_t> key(reinterpret_cast<const uint8_t*>(secret_.data()),
                                      secret_.size());
  c->claimed = peer;
  c->expected_proof = HandshakeMac(key, /*acceptor=*/false, t);
  // Answering proves nothing the connector did not already know except
  // that this side holds the secret; no request is served before its PROOF.
  QueueResponse(c, HelloFrame(rank_, size_, nonce_, t.acceptor_nonce), nullptr, 0, 0);
  QueueResponse(c, ProofFrame(HandshakeMac(key, /*acceptor=*/true, t)), nullptr, 0, 0);
  return true;
}

bool TcpTransport::OnProof(Conn* c, const FrameHeader& h) {
  const auto reject = [&](const std::string& why) {
    CloseConn(c, CompletionCode::kProtocolError, absl::PermissionDeniedError(why));
    return false;
  };
  const int peer = c->claimed;
  if (h.type != FrameType::kProof) {
    return reject(absl::StrFormat("HELLO from rank %d followed by %s, not PROOF", peer,
                                  FrameTypeName(h.type)));
  }
  const Mac theirs = ProofOf(h);
  if (!MacEqual(theirs.data(), c->expected_proof.data())) {
    return reject(absl::StrFormat(
        "HELLO as rank %d with a PROOF that does not match this job's secret (a process of "
        "another job, or not started by this job's launcher)",
        peer));
  }
  if (PeerFailCode(peer) != CompletionCode::kSuccess) {
    return reject(absl::StrFormat("%s already failed or said goodbye", PeerName(peer)));
  }
  if (peers_[peer].in.load(std::memory_order_acquire) != nullptr) {
    return reject(absl::StrFormat("second connection from %s", PeerName(peer)));
  }
  if (absl::Status s = SetBlockingWithTimeout(c->fd, kDirectReadSlice); !s.ok()) {
    return reject(absl::StrCat("setting up the connection: ", s.message()));
  }
  c->peer = peer;
  ForgetUnauthenticated(c);
  std::unique_ptr<uint8_t[]> bigger(new uint8_t[kInBufBytes]);
  std::memcpy(bigger.get(), c->inbuf.get() + c->in_begin, c->in_end - c->in_begin);
  c->in_end -= c->in_begin;
  c->in_begin = 0;
  c->inbuf = std::move(bigger);
  c->inbuf_cap = kInBufBytes;
  // Published last: from here on an application thread may read it.
  peers_[peer].in.store(c, std::memory_order_release);
  GASP_LOG(Debug) << "tcp transport: accepted " << PeerName(peer) << " from " << c->remote;
  return true;
}

std::string TcpTransport::ConnName(const Conn* c) const {
  if (c->peer < 0) return absl::StrCat("unidentified connection from ", c->remote);
  return absl::StrCat(PeerName(c->peer),
                      c->kind == Conn::Kind::kIncoming ? " (the connection it dialed)"
                                                      : " (the connection we dialed)");
}

void TcpTransport::ReleaseConnResources(Conn* c) {
  for (size_t k = 0; k < c->ring_count; ++k) {
    OutFrame& f = c->ring[(c->ring_head + k) & (c->ring.size() - 1)];
    if (f.pin != 0) regions_.Unpin(f.pin);
    f.pin = 0;
  }
  c->ring_count = 0;
  c->ring_head = 0;
  if (c->target_pin != 0) regions_.Unpin(c->target_pin);
  c->target_pin = 0;
  c->target = nullptr;
  c->in_payload = false;
  c->msg = std::vector<uint8_t>();
}

void TcpTransport::CloseOutgoingFd(Conn* c) {
  if (c->closed) return;
  // Wake a sender blocked on this socket before taking its mutex.
  if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
  int fd;
  {
    std::lock_guard<std::mutex> l(c->send_mu);
    fd = c->fd;
    c->fd = -1;
    c->send_closed = true;
  }
  c->send_cv.notify_all();
  if (fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
  }
  ReleaseConnResources(c);
  c->closed = true;
  if (c->peer >= 0) {
    // The peer's messages on this connection, if it sent any, are over.
    peers_[c->peer].out_finished.store(true, std::memory_order_release);
    WakeAllReceivers();
  }
}

void TcpTransport::CloseIncomingFd(Conn* c) {
  if (c->closed) return;
  ForgetUnauthenticated(c);
  // This rank's messages may be written on it: wake a blocked sender, then
  // take the socket from under the send mutex (as for an outgoing one).
  if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
  int fd;
  {
    std::lock_guard<std::mutex> l(c->send_mu);
    fd = c->fd;
    c->fd = -1;
    c->send_closed = true;
  }
  c->send_cv.notify_all();
  ReleaseConnResources(c);
  if (fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
  }
  c->closed = true;
  reap_incoming_ = true;
  if (c->peer >= 0 && peers_[c->peer].in.load(std::memory_order_relaxed) == c) {
    peers_[c->peer].in_finished.store(true, std::memory_order_release);
    peers_[c->peer].in.store(nullptr, std::memory_order_release);
    WakeAllReceivers();  // a Recv waiting for this peer's last messages
  }
}

void TcpTransport::DropPeer(int peer, CompletionCode code) {
  const absl::Status why = absl::UnavailableError(absl::StrCat(PeerName(peer), " was dropped"));
  if (Conn* out = peers_[peer].out.load(std::memory_order_acquire)) CloseOrDefer(out, code, why);
  if (Conn* in = peers_[peer].in.load(std::memory_order_acquire)) CloseOrDefer(in, code, why);
  ops_.FailPeer(peer, code);
}

void TcpTransport::CloseConn(Conn* c, CompletionCode code, const absl::Status& why) {
  if (c->closed) return;
  if (ReadingDirectly(c)) {
    // An application thread reading it: the progress thread closes it
    // once it is handed back (AppGive).
    std::lock_guard<std::mutex> l(c->own_mu);
    c->close_code = code;
    c->close_why = Detached(why);
    c->close_pending.store(true);
    return;
  }
  const int peer = c->peer;
  if (peer < 0) {
    uint64_t held = 0;
    if (refused_log_.Allow(&held)) {
      GASP_LOG(Warn) << "tcp transport: dropping " << ConnName(c)
                     << " that did not complete the handshake: " << why.message() << " ("
                     << held << " more dropped without a line since the last one)";
    }
    CloseIncomingFd(c);
    return;
  }
  if (!c->said_bye && PeerFailCode(peer) == CompletionCode::kSuccess) {
    // Lost without goodbye: the peer is gone for good.
    absl::Status cause = why;
    if (c->kind == Conn::Kind::kOutgoing) {
      std::lock_guard<std::mutex> l(c->send_mu);
      if (!c->broken.ok()) cause = Detached(c->broken);
    }
    absl::Status status;
    if (code == CompletionCode::kProtocolError) {
      status = absl::DataLossError(absl::StrFormat("protocol error from %s: %s", PeerName(peer),
                                                   cause.message()));
    } else {
      status = absl::UnavailableError(absl::StrFormat(
          "lost connection to %s without goodbye: %s", PeerName(peer), cause.message()));
    }
    MarkPeerFailed(peer, code, status);
    DropPeer(peer, code);
    return;
  }
  // Expected close (goodbye said, or the peer already failed). On our
  // request connection, ops still waiting for a reply will never get one.
  if (c->kind == Conn::Kind::kOutgoing) {
    CloseOutgoingFd(c);
    const CompletionCode left = PeerFailCode(peer);
    ops_.FailPeer(peer, left == CompletionCode::kSuccess ? CompletionCode::kPeerUnreachable : left);
  } else {
    CloseIncomingFd(c);
  }
}

void TcpTransport::ForgetUnauthenticated(Conn* c) {
  if (!c->unauth) return;
  c->unauth = false;
  unauth_.Release(c->source_ip);
}

absl::Duration TcpTransport::ExpireUnauthenticated() {
  if (unauth_.total() == 0 && !listener_paused_) return absl::InfiniteDuration();
  const absl::Time now = absl::Now();
  ResumeListener(now);
  absl::Time next = listener_paused_ ? accept_guard_.paused_until() : absl::InfiniteFuture();
  for (const std::unique_ptr<Conn>& c : incoming_) {
    if (c->closed || !c->unauth) continue;
    if (c->hello_deadline <= now) {
      CloseConn(c.get(), CompletionCode::kProtocolError,
                absl::DeadlineExceededError(
                    absl::StrFormat("no HELLO and PROOF within %s of connecting",
                                    absl::FormatDuration(kHelloTimeout))));
    } else {
      next = std::min(next, c->hello_deadline);
    }
  }
  ReapClosedIncoming();
  return next == absl::InfiniteFuture() ? absl::InfiniteDuration() : next - now;
}

void TcpTransport::ReapClosedIncoming() {
  if (!reap_incoming_) return;
  reap_incoming_ = false;
  for (std::unique_ptr<Conn>& c : incoming_) {
    // A peer's connection may be held by an application thread (direct
    // reads): kept, at most one per peer.
    if (c->closed && c->peer >= 0) retired_incoming_.push_back(std::move(c));
  }
  incoming_.erase(std::remove_if(incoming_.begin(), incoming_.end(),
                                 [](const std::unique_ptr<Conn>& c) { return !c || c->closed; }),
                  incoming_.end());
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

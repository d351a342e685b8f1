// tcp backend, control path: creation, listening socket, endpoint blobs,
// lazy connection set-up with retry and HELLO handshake, goodbye and
// shutdown, peer-failure bookkeeping. The data path is in
// tcp_transport_datapath.cc.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/memory/memory.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "transport/deadline_wait.h"
#include "transport/stream_handshake.h"
#include "transport/tcp_socket.h"
#include "transport/tcp_transport_impl.h"

namespace gasp {
namespace transport {

absl::StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(
    const TransportOptions& options, const TcpTransportOptions& tcp_options) {
  GASP_ASSIGN_OR_RETURN(auto t, tcp::TcpTransport::Create(options, tcp_options));
  return std::unique_ptr<Transport>(std::move(t));
}

namespace {

tcp::TcpTransport* AsTcp(Transport* transport) {
  return dynamic_cast<tcp::TcpTransport*>(transport);
}

}  // namespace

absl::Status TcpPauseProgressForTesting(Transport* transport, bool paused) {
  tcp::TcpTransport* t = AsTcp(transport);
  if (t == nullptr) return absl::InvalidArgumentError("not a tcp transport");
  return t->PauseProgress(paused);
}

absl::Status TcpCrashForTesting(Transport* transport) {
  tcp::TcpTransport* t = AsTcp(transport);
  if (t == nullptr) return absl::InvalidArgumentError("not a tcp transport");
  return t->Crash();
}

namespace tcp {
namespace {

constexpr int kListenBacklog = 1024;
constexpr absl::Duration kFirstRetryDelay = absl::Milliseconds(5);
constexpr absl::Duration kMaxRetryDelay = absl::Milliseconds(250);

uint64_t RandomNonce() {
  absl::BitGen gen;
  uint64_t n = 0;
  while (n == 0) n = absl::Uniform<uint64_t>(gen);
  return n;
}

bool RetryableConnectError(int err) {
  // Refused: nobody listens (yet, or any more). The others are transient
  // network conditions worth retrying until the deadline.
  return err == ECONNREFUSED || err == ECONNRESET || err == ETIMEDOUT || err == EHOSTUNREACH ||
         err == ENETUNREACH || err == EAGAIN || err == EINTR;
}

}  // namespace

TcpTransport::TcpTransport(const TransportOptions& options, const TcpTransportOptions& tcp)
    : rank_(options.rank),
      size_(options.size),
      timeout_(options.timeout),
      nonce_(RandomNonce()),
      secret_(options.job_secret),
      peers_(new Peer[static_cast<size_t>(options.size)]),
      failures_(options.size, "tcp"),
      ops_(tcp.max_outstanding_ops, options.size),
      regions_(tcp.max_regions),
      accept_guard_("tcp transport"),
      unauth_(std::max(kMaxUnauthPerSource, options.size),
              std::max(kMaxUnauthTotal, 2 * options.size)),
      scratch_(new uint8_t[kScratchBytes]) {}

absl::StatusOr<std::unique_ptr<TcpTransport>> TcpTransport::Create(
    const TransportOptions& options, const TcpTransportOptions& tcp) {
  if (options.size < 1 || static_cast<uint64_t>(options.size) > kMaxRanks) {
    return absl::InvalidArgumentError(
        absl::StrFormat("job size %d out of range [1, %d]", options.size, kMaxRanks));
  }
  if (options.rank < 0 || options.rank >= options.size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rank %d out of range for a job of %d ranks", options.rank, options.size));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the transport timeout (GASP_TIMEOUT) must be positive");
  }
  if (options.job_secret.size() < 16) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the tcp transport needs the job secret (boot/job_secret.h) to authenticate its "
        "connections; got %d bytes, need at least 16",
        options.job_secret.size()));
  }
  if (options.tcp_port < 0 || options.tcp_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GASP_TCP_PORT=%d is not a TCP port (0..65535)", options.tcp_port));
  }
  if (tcp.max_outstanding_ops == 0 || tcp.max_outstanding_ops > (size_t{1} << 24) ||
      tcp.max_regions == 0 || tcp.max_regions > (size_t{1} << 24)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tcp table sizes out of range: max_outstanding_ops=%d, max_regions=%d (1..16M)",
        tcp.max_outstanding_ops, tcp.max_regions));
  }
  auto t = absl::WrapUnique(new TcpTransport(options, tcp));
  GASP_RETURN_IF_ERROR(t->Listen(options));
  GASP_RETURN_IF_ERROR(t->StartProgressThread());
  return t;
}

absl::Status TcpTransport::Listen(const TransportOptions& options) {
  // Listen where peers reach this rank: the advertised address, never every
  // interface unless GASP_TCP_ADDR=0.0.0.0 says so.
  uint32_t bind_ip = INADDR_ANY;
  uint32_t advertise_ip = 0;
  if (options.tcp_addr.empty()) {
    advertise_ip = DefaultAdvertiseAddress();
    bind_ip = advertise_ip;
  } else if (options.tcp_addr == "0.0.0.0") {
    advertise_ip = DefaultAdvertiseAddress();
  } else {
    GASP_ASSIGN_OR_RETURN(bind_ip, ResolveIpv4(options.tcp_addr));
    advertise_ip = bind_ip;
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return ErrnoError("tcp transport: socket", errno);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(bind_ip);
  addr.sin_port = htons(static_cast<uint16_t>(options.tcp_port));
  const std::string where = FormatAddress(bind_ip, static_cast<uint16_t>(options.tcp_port));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      return absl::UnavailableError(absl::StrFormat(
          "tcp transport: cannot listen on %s: address already in use; leave GASP_TCP_PORT=0 "
          "(any port) when several ranks share a host",
          where));
    }
    if (err == EADDRNOTAVAIL) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "tcp transport: cannot listen on %s: GASP_TCP_ADDR=%s is not an address of this host",
          where, options.tcp_addr));
    }
    return ErrnoError(absl::StrFormat("tcp transport: bind %s (GASP_TCP_ADDR/GASP_TCP_PORT)", where),
                      err);
  }
  if (listen(listen_fd_, kListenBacklog) != 0) {
    return ErrnoError(absl::StrFormat("tcp transport: listen on %s", where), errno);
  }
  socklen_t len = sizeof(addr);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoError("tcp transport: getsockname", errno);
  }
  local_.ipv4 = advertise_ip;
  local_.port = ntohs(addr.sin_port);
  local_.pid = static_cast<uint32_t>(getpid());
  local_.rank = static_cast<uint32_t>(rank_);
  local_.nonce = nonce_;
  local_.hostname = ShortHostName();
  local_blob_ = EncodeEndpoint(local_);

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return ErrnoError("tcp transport: epoll_create1", errno);
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return ErrnoError("tcp transport: eventfd", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listen_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) {
    return ErrnoError("tcp transport: epoll_ctl(listen)", errno);
  }
  ev.data.ptr = &event_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev) != 0) {
    return ErrnoError("tcp transport: epoll_ctl(eventfd)", errno);
  }
  GASP_LOG(Info) << "tcp transport: rank " << rank_ << "/" << size_ << " listening on "
                 << where << ", advertising " << FormatAddress(local_.ipv4, local_.port);
  return absl::OkStatus();
}

absl::Status TcpTransport::StartProgressThread() {
  thread_ = std::thread([this] { ProgressLoop(); });
  thread_id_.store(thread_.get_id());
  return absl::OkStatus();
}

void TcpTransport::StopProgressThread() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  pause_.Release();
  Wake();
  thread_.join();
}

bool TcpTransport::OnProgressThread() const {
  return std::this_thread::get_id() == thread_id_.load();
}

void TcpTransport::Wake() {
  const uint64_t one = 1;
  ssize_t rc;
  do {
    rc = write(event_fd_, &one, sizeof(one));
  } while (rc < 0 && errno == EINTR);
  // EAGAIN means the counter is already non-zero: the thread will wake.
}

TcpTransport::~TcpTransport() {
  if (state_.load() == static_cast<int>(TransportState::kRunning) && thread_.joinable()) {
    absl::Status s = Shutdown(absl::Now() + timeout_);
    if (!s.ok()) {
      GASP_LOG(Warn) << "tcp transport: shutdown in destructor: " << s;
    }
  }
  StopProgressThread();
  CloseAllSockets(/*abrupt=*/true, absl::Now(), nullptr);
  for (int* fd : {&epoll_fd_, &event_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

Capabilities TcpTransport::capabilities() const {
  Capabilities c;
  c.cpu_atomics_coherent = true;  // atomics run as __atomic ops on the target's memory
  c.max_op_bytes = kMaxOpBytes;
  return c;
}

std::string TcpTransport::PeerName(int peer) const {
  if (peer >= 0 && peer < size_ && connected_.load(std::memory_order_acquire)) {
    return peers_[peer].name;
  }
  return absl::StrFormat("rank %d", peer);
}

absl::Status TcpTransport::Connect(absl::Span<const EndpointBlob> endpoints) {
  if (state_.load() != static_cast<int>(TransportState::kRunning)) {
    return absl::FailedPreconditionError("tcp transport: Connect after Shutdown");
  }
  if (connected_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("tcp transport: Connect called twice");
  }
  if (endpoints.size() != static_cast<size_t>(size_)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tcp transport: got %d endpoint blobs for a job of %d ranks", endpoints.size(), size_));
  }
  std::vector<TcpEndpoint> decoded(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    auto e = DecodeEndpoint(endpoints[i]);
    if (!e.ok()) return Annotate(e.status(), absl::StrFormat("endpoint of rank %d", i));
    if (e->rank != i) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "endpoint of rank %d: the blob says it is rank %d (%s:%d); the endpoint exchange "
          "returned blobs out of order",
          i, e->rank, e->hostname, e->pid));
    }
    if (static_cast<int>(i) == rank_ && !(*e == local_)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "endpoint of rank %d (this rank) is not the one this transport published (got %s, "
          "pid %d; expected %s, pid %d)",
          i, FormatAddress(e->ipv4, e->port), e->pid, FormatAddress(local_.ipv4, local_.port),
          local_.pid));
    }
    decoded[i] = std::move(*e);
  }
  for (size_t i = 0; i < decoded.size(); ++i) {
    peers_[i].name = absl::StrFormat("rank %d (%s:%d)", i, decoded[i].hostname, decoded[i].pid);
    peers_[i].endpoint = std::move(decoded[i]);
  }
  connected_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<int> TcpTransport::Dial(int peer, absl::Time deadline) {
  const TcpEndpoint& e = peers_[peer].endpoint;
  const std::string where = FormatAddress(e.ipv4, e.port);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(e.ipv4);
  addr.sin_port = htons(e.port);
  absl::Duration delay = kFirstRetryDelay;
  int attempts = 0;
  while (true) {
    ++attempts;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoError("tcp transport: socket", errno);
    int err = 0;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd pfd{fd, POLLOUT, 0};
        int rc;
        do {
          rc = poll(&pfd, 1, PollTimeoutMs(deadline));
        } while (rc < 0 && errno == EINTR);
        if (rc == 0) {
          close(fd);
          return absl::UnavailableError(absl::StrFormat(
              "cannot connect to %s at %s: no answer before the deadline (GASP_TIMEOUT=%s; is "
              "the address reachable from here? see GASP_TCP_ADDR)",
              PeerName(peer), where, absl::FormatDuration(timeout_)));
        }
        socklen_t len = sizeof(err);
        if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    if (err == 0) return fd;
    close(fd);
    const bool running = state_.load() == static_cast<int>(TransportState::kRunning);
    const absl::Duration left = deadline - absl::Now();
    if (!RetryableConnectError(err) || !running || left <= absl::ZeroDuration()) {
      return absl::UnavailableError(absl::StrFormat(
          "cannot connect to %s at %s: %s (%d attempt(s) within GASP_TIMEOUT=%s; the rank may "
          "have exited, see its log; GASP_TCP_ADDR sets the advertised address)",
          PeerName(peer), where, std::strerror(err), attempts, absl::FormatDuration(timeout_)));
    }
    absl::SleepFor(std::min(delay, left));
    delay = std::min(delay * 2, kMaxRetryDelay);
  }
}

absl::Status TcpTransport::Handshake(int peer, int fd, absl::Time deadline) {
  SetNoDelay(fd);
  HandshakeSelf self;
  self.rank = rank_;
  self.size = size_;
  self.session = nonce_;
  self.secret = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(secret_.data()),
                                          secret_.size());
  const TcpEndpoint& e = peers_[peer].endpoint;
  return ConnectorHandshake(fd, self, peer, e.nonce, FormatAddress(e.ipv4, e.port), deadline);
}

absl::StatusOr<int> TcpTransport::DialAuthenticated(int peer, absl::Time deadline) {
  const TcpEndpoint& e = peers_[peer].endpoint;
  absl::Duration delay = kFirstRetryDelay;
  int refused = 0;
  while (true) {
    GASP_ASSIGN_OR_RETURN(const int fd, Dial(peer, deadline));
    absl::Status s = Handshake(peer, fd, deadline);
    if (s.ok()) s = SetBlockingWithTimeout(fd, kDirectReadSlice);
    if (s.ok()) {
      if (refused > 0) {
        GASP_LOG(Info) << "tcp transport: connected to " << PeerName(peer) << " after it closed "
                       << refused << " handshake(s) before answering";
      }
      return fd;
    }
    close(fd);
    // Unavailable: the peer closed (or reset) the connection before its
    // answer. Its accept guard does that while too many connections from
    // this address have not completed the handshake (an outsider flooding
    // its port from a host, or a NAT, this rank shares), so the handshake
    // is tried again on a new connection until the deadline. A stall, a
    // malformed answer or another job's rank is final at once.
    const bool refusal = absl::IsUnavailable(s);
    if (refusal) ++refused;
    const bool again = refusal &&
                       state_.load() == static_cast<int>(TransportState::kRunning) &&
                       PeerFailCode(peer) == CompletionCode::kSuccess &&
                       absl::Now() + delay < deadline;
    if (!again) {
      if (refused > 1) {
        s = absl::Status(s.code(), absl::StrFormat("%s (%d handshakes closed before an answer "
                                                   "within GASP_TIMEOUT=%s)",
                                                   s.message(), refused,
                                                   absl::FormatDuration(timeout_)));
      }
      return Annotate(s, absl::StrFormat("handshake with %s at %s", PeerName(peer),
                                         FormatAddress(e.ipv4, e.port)));
    }
    absl::SleepFor(delay);
    delay = std::min(delay * 2, kMaxRetryDelay);
  }
}

absl::StatusOr<Conn*> TcpTransport::Outgoing(int peer) {
  Peer& p = peers_[peer];
  if (Conn* c = p.out.load(std::memory_order_acquire)) return c;
  std::lock_guard<std::mutex> l(p.connect_mu);
  if (Conn* c = p.out.load(std::memory_order_acquire)) return c;
  if (state_.load() != static_cast<int>(TransportState::kRunning)) {
    return absl::AbortedError("tcp transport is shut down");
  }
  if (PeerFailCode(peer) != CompletionCode::kSuccess) {
    return absl::UnavailableError(absl::StrFormat("%s is unreachable", PeerName(peer)));
  }
  absl::StatusOr<int> fd = DialAuthenticated(peer, absl::Now() + timeout_);
  absl::Status s = fd.status();
  if (!s.ok()) {
    if (state_.load() != static_cast<int>(TransportState::kRunning)) {
      return absl::AbortedError("tcp transport is shut down");  // not the peer's fault
    }
    MarkPeerFailed(peer, CompletionCode::kPeerUnreachable, s);
    return s;
  }
  if (PeerFailCode(peer) != CompletionCode::kSuccess) {
    // Declared failed (or it said goodbye) while we were dialing.
    close(*fd);
    return absl::UnavailableError(absl::StrFormat("%s is unreachable", PeerName(peer)));
  }
  auto owned = std::make_unique<Conn>(Conn::Kind::kOutgoing, *fd, peer,
                                      FormatAddress(p.endpoint.ipv4, p.endpoint.port));
  owned->inbuf.reset(new uint8_t[kInBufBytes]);
  Conn* c = owned.get();
  {
    std::lock_guard<std::mutex> cl(conns_mu_);
    outgoing_.push_back(std::move(owned));
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = c;
  c->epoll_events = ev.events;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    absl::Status err = ErrnoError("tcp transport: epoll_ctl(add outgoing)", errno);
    std::lock_guard<std::mutex> sl(c->send_mu);
    close(c->fd);
    c->fd = -1;
    c->send_closed = true;
    return err;
  }
  p.out.store(c, std::memory_order_release);
  GASP_LOG(Debug) << "tcp transport: connected to " << PeerName(peer) << " at " << c->remote;
  return c;
}

CompletionCode TcpTransport::PeerFailCode(int peer) const { return failures_.FailCode(peer); }

bool TcpTransport::MarkPeerFailed(int peer, CompletionCode code, const absl::Status& why) {
  if (!failures_.MarkFailed(peer, code, why)) return false;
  if (!OnProgressThread()) Wake();  // the progress thread delivers the notification
  WakeAllReceivers();  // a Recv waiting for this peer returns now
  return true;
}

bool TcpTransport::MarkPeerDeparted(int peer) {
  if (!failures_.MarkDeparted(peer)) return false;
  GASP_LOG(Debug) << "tcp transport: " << PeerName(peer) << " said goodbye";
  WakeAllReceivers();
  return true;
}

void TcpTransport::SetPeerFailureHandler(PeerFailureHandler handler) {
  failures_.SetHandler(std::move(handler));
}

absl::StatusOr<Region> TcpTransport::Register(void* addr, size_t length, uint32_t access) {
  return regions_.Register(addr, length, access);
}

absl::Status TcpTransport::Deregister(const Region& region) {
  // The progress thread (a failure handler) must not wait for itself.
  return regions_.Deregister(region, absl::Now() + timeout_, /*wait=*/!OnProgressThread());
}

void TcpTransport::CloseAllSockets(bool abrupt, absl::Time deadline, absl::Status* status) {
  // An application thread still reading a connection directly sees the
  // state change within a poll slice and hands it back; wait for that
  // (bounded) before the sockets go away under it.
  const absl::Time give_up = absl::Now() + absl::Seconds(1);
  for (int p = 0; p < size_; ++p) {
    for (Conn* c : {peers_[p].out.load(std::memory_order_acquire),
                    peers_[p].in.load(std::memory_order_acquire)}) {
      if (c == nullptr) continue;
      while (true) {
        {
          std::lock_guard<std::mutex> l(c->own_mu);
          if (c->owner != Conn::Owner::kApp) {
            c->owner = Conn::Owner::kProgress;  // for good: nobody takes it again
            break;
          }
        }
        if (absl::Now() >= give_up) {
          GASP_LOG(Warn) << "tcp transport: a thread still waits on " << ConnName(c)
                         << " at shutdown; closing it anyway";
          break;
        }
        absl::SleepFor(absl::Milliseconds(1));
      }
    }
  }
  // Incoming connections: the progress thread is stopped, they are ours.
  std::vector<Conn*> ending;  // said goodbye (or not, when abrupt), not closed yet
  for (auto& owned : incoming_) {
    Conn* c = owned.get();
    if (c->closed || c->fd < 0) continue;
    if (!abrupt && c->peer >= 0) {
      // Flush pending responses, then say goodbye.
      QueueResponse(c, ByeFrame(), nullptr, 0, 0);
      while (c->ring_count > 0) {
        if (!FlushOutput(c)) break;
        if (c->ring_count == 0) break;
        pollfd pfd{c->fd, POLLOUT, 0};
        if (poll(&pfd, 1, PollTimeoutMs(deadline)) <= 0) {
          if (status != nullptr && status->ok()) {
            *status = absl::DeadlineExceededError(absl::StrFormat(
                "tcp transport: could not say goodbye to %s before the deadline; it may "
                "report this rank as failed",
                PeerName(c->peer)));
          }
          break;
        }
      }
    }
    {
      // Nothing is written after the goodbye: a sender still in Send
      // (on a connection it shares for messages) gets an error instead.
      std::lock_guard<std::mutex> sl(c->send_mu);
      // A stranger that never completed the handshake gets no goodbye and
      // is not waited for.
      if (!abrupt) shutdown(c->fd, c->peer >= 0 ? SHUT_WR : SHUT_RDWR);
      c->send_closed = true;
    }
    c->send_cv.notify_all();
    ending.push_back(c);
  }

  // Outgoing connections, under each peer's connect mutex so a connection
  // being set up right now is not missed.
  for (int p = 0; p < size_; ++p) {
    std::lock_guard<std::mutex> l(peers_[p].connect_mu);
    Conn* c = peers_[p].out.load(std::memory_order_acquire);
    if (c == nullptr) continue;
    std::lock_guard<std::mutex> sl(c->send_mu);
    if (c->fd < 0) continue;
    if (!c->send_closed && !abrupt) {
      uint8_t bye[kFrameHeaderSize];
      EncodeHeader(ByeFrame(), bye);
      iovec iov{bye, sizeof(bye)};
      absl::Status s = SendAll(c->fd, &iov, 1, deadline);
      if (!s.ok() && status != nullptr && status->ok()) {
        *status = Annotate(s, absl::StrFormat("tcp transport: goodbye to %s", PeerName(p)));
      }
      shutdown(c->fd, SHUT_WR);
    }
    c->send_closed = true;
    ending.push_back(c);
  }
  if (!abrupt) DrainUntilPeersClose(ending, std::min(deadline, absl::Now() + kByeLinger));
  for (Conn* c : ending) {
    {
      std::lock_guard<std::mutex> sl(c->send_mu);
      if (abrupt) SetLingerZero(c->fd);
      close(c->fd);
      c->fd = -1;
    }
    ReleaseConnResources(c);
    c->closed = true;
  }
  // A peer's connection stays allocated (peers_[].in may point to it).
  for (auto& owned : incoming_) {
    if (owned->peer >= 0) retired_incoming_.push_back(std::move(owned));
  }
  incoming_.clear();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
}

void TcpTransport::DrainUntilPeersClose(const std::vector<Conn*>& conns, absl::Time until) {
  // The peers may still be writing on these connections (messages share
  // them both ways). Closing a socket with unread or arriving input sends
  // a reset, which can make the peer drop what it had not read yet: our
  // last messages and the goodbye. So read (and drop) until each peer,
  // having read the goodbye, closes its end, for at most until `until`.
  std::vector<pollfd> open;
  for (Conn* c : conns) open.push_back({c->fd, POLLIN, 0});
  while (!open.empty()) {
    for (size_t k = 0; k < open.size();) {
      ssize_t n;
      while ((n = WireRecv(open[k].fd, scratch_.get(), kScratchBytes)) > 0) {
      }
      const bool ended = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
      if (ended) {
        open[k] = open.back();
        open.pop_back();
      } else {
        ++k;
      }
    }
    if (open.empty() || absl::Now() >= until) return;
    if (poll(open.data(), open.size(), PollTimeoutMs(until)) <= 0) return;
  }
}

absl::Status TcpTransport::Shutdown(absl::Time deadline) {
  if (OnProgressThread()) {
    return absl::FailedPreconditionError(
        "tcp transport: Shutdown called from the progress thread (a peer-failure handler?); "
        "call it from an application thread");
  }
  int expected = static_cast<int>(TransportState::kRunning);
  if (!state_.compare_exchange_strong(expected, static_cast<int>(TransportState::kShutdown))) {
    return absl::OkStatus();  // already shut down (or crashed)
  }
  StopProgressThread();
  absl::Status status;
  CloseAllSockets(/*abrupt=*/false, deadline, &status);
  const int flushed = ops_.FailPeer(-1, CompletionCode::kFlushed);
  failures_.Clear();
  WakeAllReceivers();
  GASP_LOG(Info) << "tcp transport: rank " << rank_ << " shut down (" << flushed
                 << " outstanding op(s) flushed)";
  return status;
}

absl::Status TcpTransport::Crash() {
  if (OnProgressThread()) return absl::FailedPreconditionError("Crash from the progress thread");
  int expected = static_cast<int>(TransportState::kRunning);
  if (!state_.compare_exchange_strong(expected, static_cast<int>(TransportState::kCrashed))) {
    return absl::FailedPreconditionError("tcp transport already shut down");
  }
  StopProgressThread();
  CloseAllSockets(/*abrupt=*/true, absl::Now(), nullptr);
  ops_.FailPeer(-1, CompletionCode::kFlushed);
  failures_.Clear();
  WakeAllReceivers();
  return absl::OkStatus();
}

absl::Status TcpTransport::PauseProgress(bool paused) {
  if (state_.load() != static_cast<int>(TransportState::kRunning) || !thread_.joinable()) {
    return absl::FailedPreconditionError("tcp transport is not running");
  }
  return pause_.Set(paused, [this] { Wake(); }, absl::Now() + timeout_);
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

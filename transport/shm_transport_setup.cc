// shm backend, control path: creation, the socket directory and endpoint
// blobs, lazy connection set-up (dial, uid check, handshake, ring
// hand-over), the accept thread, peer-failure bookkeeping, shutdown and the
// test hooks. The data path is in shm_transport_datapath.cc.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/crypto.h"
#include "base/log.h"
#include "base/status.h"
#include "transport/deadline_wait.h"
#include "transport/shm_socket.h"
#include "transport/shm_transport_impl.h"
#include "transport/stream_handshake.h"

namespace gasp {
namespace transport {

absl::StatusOr<std::unique_ptr<Transport>> CreateShmTransport(const TransportOptions& options) {
  GASP_ASSIGN_OR_RETURN(auto t, shm::ShmTransport::Create(options));
  return std::unique_ptr<Transport>(std::move(t));
}

namespace {

shm::ShmTransport* AsShm(Transport* transport) {
  return dynamic_cast<shm::ShmTransport*>(transport);
}

}  // namespace

absl::Status ShmPauseProgressForTesting(Transport* transport, bool paused) {
  shm::ShmTransport* t = AsShm(transport);
  if (t == nullptr) return absl::InvalidArgumentError("not an shm transport");
  return t->PauseProgress(paused);
}

absl::Status ShmCrashForTesting(Transport* transport) {
  shm::ShmTransport* t = AsShm(transport);
  if (t == nullptr) return absl::InvalidArgumentError("not an shm transport");
  return t->Crash();
}

namespace shm {
namespace {

uint64_t NonZeroRandom() {
  uint64_t n = 0;
  while (n == 0) n = RandomU64();
  return n;
}

// A name for the job's socket directories that does not reveal the secret.
std::string JobTag(const std::string& secret) {
  const Mac m = HmacSha256(
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(secret.data()), secret.size()),
      {"gasp shm socket directory"});
  return HexOf(absl::MakeConstSpan(m.data(), 4));
}

}  // namespace

ShmTransport::ShmTransport(const TransportOptions& options)
    : rank_(options.rank),
      size_(options.size),
      timeout_(options.timeout),
      nonce_(NonZeroRandom()),
      secret_(options.job_secret),
      peers_(new Peer[static_cast<size_t>(options.size)]),
      failures_(options.size, "shm"),
      ops_(kMaxOutstandingOps, options.size),
      regions_(kMaxRegions),
      chunks_(new ChunkState[kMaxOutstandingOps]) {}

absl::StatusOr<std::unique_ptr<ShmTransport>> ShmTransport::Create(
    const TransportOptions& options) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("shm transport: rank %d of %d", options.rank, options.size));
  }
  if (options.job_secret.empty()) {
    return absl::FailedPreconditionError(
        "shm transport: no job secret (TransportOptions::job_secret); start the ranks with "
        "gasprun, mpirun or srun so that boot/ provides one");
  }
  std::unique_ptr<ShmTransport> t(new ShmTransport(options));
  GASP_RETURN_IF_ERROR(t->Start(options));
  return t;
}

absl::Status ShmTransport::Start(const TransportOptions& options) {
  GASP_ASSIGN_OR_RETURN(local_.path, MakeSocketPath(JobTag(secret_), rank_));
  GASP_ASSIGN_OR_RETURN(listen_fd_, ListenUnix(local_.path));
  doorbell_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (doorbell_fd_ < 0 || stop_fd_ < 0 || epoll_fd_ < 0) {
    return ErrnoError("shm transport: eventfd/epoll_create1", errno);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the doorbell
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, doorbell_fd_, &ev) != 0) {
    return ErrnoError("shm transport: epoll_ctl(doorbell)", errno);
  }
  local_.pid = static_cast<uint32_t>(getpid());
  local_.rank = static_cast<uint32_t>(rank_);
  local_.nonce = nonce_;
  local_.uid = static_cast<uint32_t>(geteuid());
  local_.boot_id = BootId();
  local_blob_ = EncodeShmEndpoint(local_);
  progress_ = std::thread([this] { ProgressLoop(); });
  acceptor_ = std::thread([this] { AcceptLoop(); });
  GASP_LOG(Debug) << "shm transport: rank " << rank_ << " listening at " << local_.path;
  return absl::OkStatus();
}

ShmTransport::~ShmTransport() {
  (void)Stop(TransportState::kShutdown, /*abrupt=*/false);
  if (progress_.joinable() || acceptor_.joinable()) StopThreads();
  CloseAll(/*abrupt=*/true);
  for (int fd : {doorbell_fd_, stop_fd_, epoll_fd_}) {
    if (fd >= 0) close(fd);
  }
  std::lock_guard<std::mutex> l(conns_mu_);
  for (auto& c : conns_) {
    if (c->peer_doorbell >= 0) close(c->peer_doorbell);
  }
}

Capabilities ShmTransport::capabilities() const {
  Capabilities c;
  c.cpu_atomics_coherent = true;  // the target's CPU executes every atomic
  c.max_op_bytes = kMaxOpBytes;
  c.zero_copy_registered_local = false;
  return c;
}

std::string ShmTransport::PeerName(int peer) const {
  if (peer >= 0 && peer < size_ && connected_.load(std::memory_order_acquire)) {
    return peers_[peer].name;
  }
  return absl::StrFormat("rank %d", peer);
}

bool ShmTransport::Running() const {
  return state_.load(std::memory_order_acquire) == static_cast<int>(TransportState::kRunning);
}

bool ShmTransport::OnProgressThread() const {
  return progress_id_.load(std::memory_order_acquire) == std::this_thread::get_id();
}

void ShmTransport::Wake() { RingDoorbell(doorbell_fd_); }

absl::Status ShmTransport::Connect(absl::Span<const EndpointBlob> endpoints) {
  if (!Running()) return absl::FailedPreconditionError("shm transport: Connect after Shutdown");
  if (connected_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("shm transport: Connect called twice");
  }
  if (endpoints.size() != static_cast<size_t>(size_)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "shm transport: got %d endpoint blobs for a job of %d ranks", endpoints.size(), size_));
  }
  std::vector<ShmEndpoint> decoded(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    absl::StatusOr<ShmEndpoint> e = DecodeShmEndpoint(endpoints[i]);
    if (!e.ok()) return Annotate(e.status(), absl::StrFormat("endpoint of rank %d", i));
    const auto bad = [&](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrFormat("endpoint of rank %d: %s", i, what));
    };
    if (e->rank != i) {
      return bad(absl::StrFormat("the blob says it is rank %d (pid %d): the endpoint exchange "
                                 "returned blobs out of order",
                                 e->rank, e->pid));
    }
    if (static_cast<int>(i) == rank_ && !(*e == local_)) {
      return bad(absl::StrFormat("not the blob this transport published (pid %d, %s)", e->pid,
                                 e->path));
    }
    if (e->boot_id != local_.boot_id) {
      return bad("the rank runs on another host (boot id differs): GASP_TRANSPORT=shm needs "
                 "every rank on one host; use GASP_TRANSPORT=tcp or auto");
    }
    if (e->uid != local_.uid) {
      return bad(absl::StrFormat("the rank runs as uid %d, this one as uid %d: the shm "
                                 "transport connects only processes of one user",
                                 e->uid, local_.uid));
    }
    decoded[i] = std::move(*e);
  }
  for (size_t i = 0; i < decoded.size(); ++i) {
    peers_[i].name = absl::StrFormat("rank %d (pid %d)", i, decoded[i].pid);
    peers_[i].endpoint = std::move(decoded[i]);
  }
  connected_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<Region> ShmTransport::Register(void* addr, size_t length, uint32_t access) {
  return regions_.Register(addr, length, access);
}

absl::Status ShmTransport::Deregister(const Region& region) {
  // The progress thread (a failure handler) must not wait for itself.
  return regions_.Deregister(region, absl::Now() + timeout_, /*wait=*/!OnProgressThread());
}

// ---------------------------------------------------------------------------
// Connections

absl::StatusOr<Conn*> ShmTransport::Outgoing(int peer) {
  Peer& p = peers_[peer];
  if (Conn* c = p.out.load(std::memory_order_acquire)) return c;
  std::lock_guard<std::mutex> l(p.connect_mu);
  if (Conn* c = p.out.load(std::memory_order_acquire)) return c;
  if (!Running()) return absl::AbortedError("shm transport is shut down");
  if (PeerFailCode(peer) != CompletionCode::kSuccess) {
    return absl::UnavailableError(absl::StrFormat("%s is unreachable", PeerName(peer)));
  }
  absl::StatusOr<Conn*> c = Dial(peer);
  if (!c.ok()) {
    if (!Running()) return absl::AbortedError("shm transport is shut down");
    const absl::Status why = Annotate(
        c.status(), absl::StrFormat("connecting to %s at %s", PeerName(peer), p.endpoint.path));
    MarkPeerFailed(peer, CompletionCode::kPeerUnreachable, why);
    return why;
  }
  p.out.store(*c, std::memory_order_release);
  return *c;
}

absl::StatusOr<Conn*> ShmTransport::Dial(int peer) {
  const absl::Time deadline = absl::Now() + timeout_;
  const ShmEndpoint& e = peers_[peer].endpoint;
  GASP_ASSIGN_OR_RETURN(const int fd, DialUnix(e.path, deadline));
  int bell = -1;
  absl::StatusOr<Segment> seg = Segment::Create("gasp-shm-rings");
  absl::Status s = seg.status();
  if (s.ok()) s = CheckPeerUid(fd, "the process listening there");
  if (s.ok()) {
    tcp::HandshakeSelf self{rank_, size_, nonce_,
                            absl::Span<const uint8_t>(
                                reinterpret_cast<const uint8_t*>(secret_.data()), secret_.size())};
    s = tcp::ConnectorHandshake(fd, self, peer, e.nonce, e.path, deadline);
  }
  if (s.ok()) {
    const int fds[2] = {seg->fd(), doorbell_fd_};
    s = SendFds(fd, kRingsByte, fds, 2, deadline);
  }
  if (s.ok()) s = RecvFds(fd, kDoorbellByte, &bell, 1, deadline);
  if (!s.ok()) {
    close(fd);
    return s;
  }
  auto c = std::make_unique<Conn>(peer, /*out=*/true, fd, bell, std::move(*seg));
  c->requests = RingProducer(c->seg.req_ctl(), c->seg.req_data(), c->seg.req_sync());
  c->responses = RingConsumer(c->seg.resp_ctl(), c->seg.resp_data(), c->seg.resp_sync());
  Conn* raw = c.get();
  Publish(std::move(c));
  GASP_LOG(Debug) << "shm transport: connected to " << PeerName(peer);
  return raw;
}

void ShmTransport::Publish(std::unique_ptr<Conn> conn) {
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    new_conns_.push_back(conn.get());
    conns_.push_back(std::move(conn));
  }
  Wake();
}

void ShmTransport::AcceptLoop() {
  while (!stop_.load(std::memory_order_acquire)) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) break;
    if (stop_.load(std::memory_order_acquire)) break;
    if ((p[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) continue;
    absl::Status s = AcceptOne(fd);
    if (!s.ok()) {
      close(fd);
      uint64_t held = 0;
      if (refused_log_.Allow(&held)) {
        GASP_LOG(Warn) << "shm transport: refused a connection: " << s.message()
                       << (held > 0 ? absl::StrFormat(" (%d more refused)", held) : "");
      }
    }
  }
}

absl::Status ShmTransport::AcceptOne(int fd) {
  const absl::Time deadline = absl::Now() + std::min(kAcceptTimeout, timeout_);
  GASP_RETURN_IF_ERROR(CheckPeerUid(fd, "the connecting process"));
  tcp::HandshakeSelf self{rank_, size_, nonce_,
                          absl::Span<const uint8_t>(
                              reinterpret_cast<const uint8_t*>(secret_.data()), secret_.size())};
  const auto session_ok = [this](int r, uint64_t session) {
    if (r < 0 || r >= size_) return false;
    return !connected_.load(std::memory_order_acquire) || peers_[r].endpoint.nonce == session;
  };
  GASP_ASSIGN_OR_RETURN(const int peer, tcp::AcceptorHandshake(fd, self, session_ok, deadline));
  if (PeerFailCode(peer) != CompletionCode::kSuccess) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s already failed or said goodbye", PeerName(peer)));
  }
  if (peers_[peer].in.load(std::memory_order_acquire) != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("second connection from %s", PeerName(peer)));
  }
  int fds[2];
  GASP_RETURN_IF_ERROR(RecvFds(fd, kRingsByte, fds, 2, deadline));
  const int bell = fds[1];
  absl::StatusOr<Segment> seg = Segment::Map(fds[0]);  // owns fds[0] from here
  absl::Status s = seg.status();
  if (s.ok()) s = SendFds(fd, kDoorbellByte, &doorbell_fd_, 1, deadline);
  if (!s.ok()) {
    close(bell);
    return Annotate(s, PeerName(peer));
  }
  auto c = std::make_unique<Conn>(peer, /*out=*/false, fd, bell, std::move(*seg));
  c->peer_requests = RingConsumer(c->seg.req_ctl(), c->seg.req_data(), c->seg.req_sync());
  c->our_responses = RingProducer(c->seg.resp_ctl(), c->seg.resp_data(), c->seg.resp_sync());
  peers_[peer].in.store(c.get(), std::memory_order_release);
  Publish(std::move(c));
  GASP_LOG(Debug) << "shm transport: accepted " << PeerName(peer);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Peer state

CompletionCode ShmTransport::PeerFailCode(int peer) const { return failures_.FailCode(peer); }

bool ShmTransport::MarkPeerFailed(int peer, CompletionCode code, const absl::Status& why) {
  if (!failures_.MarkFailed(peer, code, why)) return false;
  if (!OnProgressThread()) Wake();  // the progress thread delivers the notification
  inbox_.WakeAll();                 // a Recv waiting for this peer returns now
  WakeDirectWaiters(peer);
  return true;
}

bool ShmTransport::MarkPeerDeparted(int peer) {
  if (!failures_.MarkDeparted(peer)) return false;
  GASP_LOG(Debug) << "shm transport: " << PeerName(peer) << " said goodbye";
  inbox_.WakeAll();
  WakeDirectWaiters(peer);
  return true;
}

void ShmTransport::SetPeerFailureHandler(PeerFailureHandler handler) {
  failures_.SetHandler(std::move(handler));
}

// ---------------------------------------------------------------------------
// Shutdown and test hooks

void ShmTransport::StopThreads() {
  stop_.store(true, std::memory_order_release);
  pause_.Release();
  Wake();
  RingDoorbell(stop_fd_);
  if (progress_.joinable()) progress_.join();
  if (acceptor_.joinable()) acceptor_.join();
}

void ShmTransport::CloseAll(bool abrupt) {
  std::lock_guard<std::mutex> l(conns_mu_);
  for (auto& c : conns_) {
    if (c->sock < 0) continue;
    // The goodbye: node-mates read it after everything this rank put in
    // the rings (the rings are written before the socket), then the end.
    if (!abrupt) (void)send(c->sock, &kByeByte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(c->sock);
    c->sock = -1;
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    RemoveSocketPath(local_.path);
  }
}

absl::Status ShmTransport::Stop(TransportState to, bool abrupt) {
  int expected = static_cast<int>(TransportState::kRunning);
  if (!state_.compare_exchange_strong(expected, static_cast<int>(to))) {
    return to == TransportState::kCrashed
               ? absl::FailedPreconditionError("shm transport already shut down")
               : absl::OkStatus();
  }
  StopThreads();
  CloseAll(abrupt);
  const int flushed = ops_.FailPeer(-1, CompletionCode::kFlushed);
  failures_.Clear();
  inbox_.WakeAll();
  for (int p = 0; p < size_; ++p) WakeDirectWaiters(p);
  GASP_LOG(Info) << "shm transport: rank " << rank_ << (abrupt ? " crashed" : " shut down") << " ("
                 << flushed << " outstanding op(s) flushed)";
  return absl::OkStatus();
}

absl::Status ShmTransport::Shutdown(absl::Time deadline) {
  if (OnProgressThread()) {
    return absl::FailedPreconditionError(
        "shm transport: Shutdown called from the progress thread (a peer-failure handler?); "
        "call it from an application thread");
  }
  return Stop(TransportState::kShutdown, /*abrupt=*/false);
}

absl::Status ShmTransport::Crash() {
  if (OnProgressThread()) return absl::FailedPreconditionError("Crash from the progress thread");
  return Stop(TransportState::kCrashed, /*abrupt=*/true);
}

absl::Status ShmTransport::PauseProgress(bool paused) {
  if (!Running() || !progress_.joinable()) {
    return absl::FailedPreconditionError("shm transport is not running");
  }
  return pause_.Set(paused, [this] { Wake(); }, absl::Now() + timeout_);
}

}  // namespace shm
}  // namespace transport
}  // namespace gasp

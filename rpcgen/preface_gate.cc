#include "rpcgen/preface_gate.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/accept_guard.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "base/status.h"
#include "base/thread.h"
#include "boot/net.h"
#include "grpcpp/server_posix.h"

namespace gasp {
namespace rpc {
namespace {

// What every HTTP/2 client sends first (RFC 9113, section 3.4).
constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr int kPrefaceBytes = sizeof(kPreface) - 1;  // 24

// poll() wakes a pending connection only when at least `n` bytes are
// queued (or at EOF or error): the bytes are peeked, not read, so without
// this a client that sends half the preface and stops would wake the
// gate over and over until its deadline.
void WakeAt(int fd, int n) { setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &n, sizeof(n)); }

struct Pending {
  int fd;
  uint32_t ip;
  uint16_t port;
  absl::Time deadline;
};

}  // namespace

struct PrefaceGate::Impl {
  grpc::Server* server = nullptr;
  PrefaceGateOptions opts;
  boot::UniqueFd listen_fd, wake_fd;
  AcceptGuard guard;
  SourceCaps caps;
  std::vector<Pending> pending;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> handed{0}, refused{0}, dropped{0}, pending_now{0};
  std::thread thread;
  LogLimiter drop_log;
  const std::string name;

  Impl(std::string n, grpc::Server* s, PrefaceGateOptions o)
      : server(s),
        opts(o),
        guard(n),
        caps(o.max_pending_per_source, o.max_pending),
        name(std::move(n)) {}

  ~Impl() {
    for (const Pending& p : pending) close(p.fd);
  }

  // Takes pending[i] out of the list (and the caps) and returns its fd.
  int Remove(size_t i) {
    const int fd = pending[i].fd;
    caps.Release(pending[i].ip);
    pending.erase(pending.begin() + static_cast<ptrdiff_t>(i));
    return fd;
  }

  void Drop(size_t i, const char* why) {
    ++dropped;
    uint64_t held = 0;
    if (drop_log.Allow(&held)) {
      GASP_LOG(Warn) << name << ": closing the connection from "
                     << FormatIpv4(pending[i].ip, pending[i].port) << ": " << why << " (" << held
                     << " closed without a line since the last one)";
    }
    close(Remove(i));
  }

  void AcceptAll() {
    while (std::optional<AcceptedConn> a = guard.Next(listen_fd.get())) {
      if (!caps.Admit(a->ip)) {
        ++refused;
        close(a->fd);
        guard.LogRefusal(FormatIpv4(a->ip, a->port),
                         absl::StrFormat("%d connections (%d from that address) have not sent "
                                         "the HTTP/2 preface yet",
                                         caps.total(), caps.from(a->ip)));
        continue;
      }
      pending.push_back({a->fd, a->ip, a->port, absl::Now() + opts.deadline});
    }
  }

  // Looks at what pending[i] sent so far; it leaves the list when it sent
  // the whole preface (to gRPC), anything else (closed) or nothing more
  // (EOF, error: closed).
  void Inspect(size_t i) {
    char buf[kPrefaceBytes];
    const int fd = pending[i].fd;
    const ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      close(Remove(i));  // gone before speaking: nothing to report
      return;
    }
    if (std::memcmp(buf, kPreface, static_cast<size_t>(n)) != 0) {
      return Drop(i, "its first bytes are not the HTTP/2 preface (not a gRPC client)");
    }
    if (n < kPrefaceBytes) return WakeAt(fd, kPrefaceBytes);
    Remove(i);
    WakeAt(fd, 1);
    SetNoDelay(fd);
    grpc::AddInsecureChannelFromFd(server, fd);  // gRPC owns fd from here
    ++handed;
  }

  void ExpireOverdue(absl::Time now) {
    for (size_t i = pending.size(); i-- > 0;) {
      if (pending[i].deadline <= now) Drop(i, "no HTTP/2 preface in time");
    }
  }

  void Loop() {
    std::vector<pollfd> fds;
    while (!stop.load(std::memory_order_acquire)) {
      const absl::Time now = absl::Now();
      ExpireOverdue(now);
      const bool listening = now >= guard.paused_until();
      fds.assign({{wake_fd.get(), POLLIN, 0}, {listening ? listen_fd.get() : -1, POLLIN, 0}});
      absl::Time next = listening ? absl::InfiniteFuture() : guard.paused_until();
      for (const Pending& p : pending) {
        fds.push_back({p.fd, POLLIN, 0});
        next = std::min(next, p.deadline);
      }
      pending_now.store(pending.size());
      if (poll(fds.data(), fds.size(), boot::PollTimeoutMs(next)) < 0 && errno != EINTR) {
        // Cannot happen with valid descriptors; do not spin if it does.
        GASP_LOG(Error) << name << ": " << ErrnoError("poll", errno);
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
      // Pending connections from the back: Inspect may erase.
      for (size_t k = fds.size(); k-- > 2;) {
        if (fds[k].revents != 0) Inspect(k - 2);
      }
      if (fds[1].revents != 0) AcceptAll();
    }
  }
};

absl::StatusOr<std::unique_ptr<PrefaceGate>> PrefaceGate::Start(const std::string& name,
                                                                const std::string& host,
                                                                grpc::Server* server,
                                                                PrefaceGateOptions options) {
  auto impl = std::make_unique<Impl>(name, server, options);
  // A name or a dotted quad, as GASP_TCP_ADDR allows.
  absl::StatusOr<sockaddr_in> addr = boot::ResolveIPv4(host, 0);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": cannot listen on '", host, "' (GASP_TCP_ADDR): ",
                     addr.status().message()));
  }
  impl->listen_fd.reset(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!impl->listen_fd.valid() ||
      bind(impl->listen_fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0 ||
      listen(impl->listen_fd.get(), SOMAXCONN) != 0) {
    return absl::UnavailableError(
        absl::StrCat(name, ": cannot listen on ", host, ": ", std::strerror(errno)));
  }
  socklen_t len = sizeof(*addr);
  getsockname(impl->listen_fd.get(), reinterpret_cast<sockaddr*>(&*addr), &len);
  impl->wake_fd.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!impl->wake_fd.valid()) return ErrnoError(absl::StrCat(name, ": eventfd"), errno);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    SetThreadName("gasp-gate");
    raw->Loop();
  });
  return std::unique_ptr<PrefaceGate>(new PrefaceGate(std::move(impl), ntohs(addr->sin_port)));
}

PrefaceGate::PrefaceGate(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

PrefaceGate::~PrefaceGate() {
  impl_->stop.store(true, std::memory_order_release);
  const uint64_t one = 1;
  (void)!write(impl_->wake_fd.get(), &one, sizeof(one));
  if (impl_->thread.joinable()) impl_->thread.join();
}

PrefaceGateCounters PrefaceGate::counters() const {
  return {impl_->handed.load(), impl_->refused.load(), impl_->dropped.load(),
          impl_->pending_now.load()};
}

}  // namespace rpc
}  // namespace gasp

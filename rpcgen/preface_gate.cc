#include "rpcgen/preface_gate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "base/thread.h"
#include "grpcpp/server_posix.h"

namespace gasp {
namespace rpc {
namespace {

// What every HTTP/2 client sends first (RFC 9113, section 3.4).
constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kPrefaceBytes = sizeof(kPreface) - 1;  // 24

std::string Address(uint32_t ip, uint16_t port) {
  return absl::StrFormat("%d.%d.%d.%d:%d", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255,
                         port);
}

struct Pending {
  int fd;
  uint32_t ip;
  std::string peer;
  absl::Time deadline;
};

}  // namespace

struct PrefaceGate::Impl {
  std::string name;
  grpc::Server* server = nullptr;
  PrefaceGateOptions opts;
  int listen_fd = -1;
  int wake_fd = -1;
  int reserve_fd = -1;  // spare descriptor for shedding connections at EMFILE
  absl::Time listen_paused_until = absl::InfinitePast();
  std::vector<Pending> pending;
  absl::flat_hash_map<uint32_t, int> pending_by_source;
  std::atomic<bool> stop{false};
  std::thread thread;
  LogLimiter refuse_log, drop_log;
  mutable std::mutex mu;  // counters
  PrefaceGateCounters counters;

  ~Impl() {
    for (const Pending& p : pending) close(p.fd);
    for (int fd : {listen_fd, wake_fd, reserve_fd}) {
      if (fd >= 0) close(fd);
    }
  }

  void Count(uint64_t PrefaceGateCounters::*field) {
    std::lock_guard<std::mutex> lock(mu);
    ++(counters.*field);
  }

  void Refuse(const std::string& why) {
    Count(&PrefaceGateCounters::refused);
    uint64_t held = 0;
    if (refuse_log.Allow(&held)) {
      GASP_LOG(Warn) << name << ": refusing a connection: " << why << " (" << held
                     << " refused without a line since the last one)";
    }
  }

  void Drop(size_t i, const std::string& why) {
    Count(&PrefaceGateCounters::dropped);
    uint64_t held = 0;
    if (drop_log.Allow(&held)) {
      GASP_LOG(Warn) << name << ": closing the connection from " << pending[i].peer << ": " << why
                     << " (" << held << " closed without a line since the last one)";
    }
    Forget(i);
    close(pending[i].fd);
    pending.erase(pending.begin() + static_cast<ptrdiff_t>(i));
  }

  void Forget(size_t i) {
    auto it = pending_by_source.find(pending[i].ip);
    if (it != pending_by_source.end() && --it->second <= 0) pending_by_source.erase(it);
  }

  // accept at EMFILE: shed the waiting connection with the spare
  // descriptor, or, without one, stop looking at the listener for a second
  // rather than spin on it.
  void ShedAtDescriptorLimit() {
    Refuse("out of file descriptors (raise `ulimit -n`)");
    if (reserve_fd < 0) {
      listen_paused_until = absl::Now() + absl::Seconds(1);
      return;
    }
    close(reserve_fd);
    const int shed = accept(listen_fd, nullptr, nullptr);
    if (shed >= 0) close(shed);
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (shed < 0) listen_paused_until = absl::Now() + absl::Seconds(1);
  }

  void AcceptAll() {
    for (;;) {
      sockaddr_in a{};
      socklen_t len = sizeof(a);
      const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&a), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) ShedAtDescriptorLimit();
        return;
      }
      const uint32_t ip = ntohl(a.sin_addr.s_addr);
      const std::string peer = Address(ip, ntohs(a.sin_port));
      int& from_source = pending_by_source[ip];
      if (from_source >= opts.max_pending_per_source ||
          static_cast<int>(pending.size()) >= opts.max_pending) {
        Refuse(absl::StrFormat("%s: %d connections (%d from that address) have not sent the "
                               "HTTP/2 preface yet",
                               peer, pending.size(), from_source));
        if (from_source == 0) pending_by_source.erase(ip);
        close(fd);
        continue;
      }
      ++from_source;
      pending.push_back({fd, ip, peer, absl::Now() + opts.deadline});
    }
  }

  // Looks at what pending[i] sent so far. True when it left `pending`.
  bool Inspect(size_t i) {
    char buf[kPrefaceBytes];
    const ssize_t n = recv(pending[i].fd, buf, sizeof(buf), MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      Forget(i);
      close(pending[i].fd);
      pending.erase(pending.begin() + static_cast<ptrdiff_t>(i));
      return true;
    }
    if (n < 0) return false;
    if (std::memcmp(buf, kPreface, static_cast<size_t>(n)) != 0) {
      Drop(i, "its first bytes are not the HTTP/2 preface (not a gRPC client)");
      return true;
    }
    if (static_cast<size_t>(n) < kPrefaceBytes) return false;
    const int fd = pending[i].fd;
    Forget(i);
    pending.erase(pending.begin() + static_cast<ptrdiff_t>(i));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    grpc::AddInsecureChannelFromFd(server, fd);  // gRPC owns fd from here
    Count(&PrefaceGateCounters::handed);
    return true;
  }

  void Loop() {
    std::vector<pollfd> fds;
    while (!stop.load(std::memory_order_acquire)) {
      const absl::Time now = absl::Now();
      for (size_t i = pending.size(); i-- > 0;) {
        if (pending[i].deadline <= now) {
          Drop(i, absl::StrFormat("no HTTP/2 preface within %s of connecting",
                                  absl::FormatDuration(opts.deadline)));
        }
      }
      const bool listening = now >= listen_paused_until;
      fds.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      fds.push_back({listening ? listen_fd : -1, POLLIN, 0});
      absl::Time next = listening ? absl::InfiniteFuture() : listen_paused_until;
      for (const Pending& p : pending) {
        fds.push_back({p.fd, POLLIN, 0});
        next = std::min(next, p.deadline);
      }
      const int timeout_ms =
          next == absl::InfiniteFuture()
              ? -1
              : static_cast<int>(std::max<int64_t>(
                    1, absl::ToInt64Milliseconds(absl::Ceil(next - now, absl::Milliseconds(1)))));
      if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
        GASP_LOG(Error) << name << ": poll: " << std::strerror(errno);
        return;
      }
      // Pending connections first, from the back: Inspect erases.
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
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  impl->server = server;
  impl->opts = options;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": cannot listen on '", host, "': not an IPv4 address (GASP_TCP_ADDR)"));
  }
  impl->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0 || bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(impl->listen_fd, SOMAXCONN) != 0) {
    return absl::UnavailableError(
        absl::StrCat(name, ": cannot listen on ", host, ": ", std::strerror(errno)));
  }
  socklen_t len = sizeof(a);
  getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
  impl->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  impl->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (impl->wake_fd < 0) return absl::UnavailableError(absl::StrCat(name, ": eventfd failed"));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    SetThreadName("gasp-gate");
    raw->Loop();
  });
  return std::unique_ptr<PrefaceGate>(new PrefaceGate(std::move(impl), ntohs(a.sin_port)));
}

PrefaceGate::PrefaceGate(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

PrefaceGate::~PrefaceGate() {
  impl_->stop.store(true, std::memory_order_release);
  const uint64_t one = 1;
  (void)!write(impl_->wake_fd, &one, sizeof(one));
  if (impl_->thread.joinable()) impl_->thread.join();
}

PrefaceGateCounters PrefaceGate::counters() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->counters;
}

}  // namespace rpc
}  // namespace gasp

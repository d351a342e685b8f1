#include "base/accept_guard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/log.h"

namespace gasp {
namespace {

// How long a listener is left alone after accept failed without a spare
// descriptor to shed with: long enough not to spin, short enough that the
// job hardly notices once descriptors are free again.
constexpr absl::Duration kPause = absl::Milliseconds(100);

int OpenSpare() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

std::string FormatIpv4(uint32_t ip, uint16_t port) {
  return absl::StrFormat("%d.%d.%d.%d:%d", (ip >> 24) & 0xff, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
                         ip & 0xff, port);
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

AcceptGuard::AcceptGuard(std::string what) : what_(std::move(what)), spare_(OpenSpare()) {}

AcceptGuard::~AcceptGuard() {
  if (spare_ >= 0) close(spare_);
}

std::optional<AcceptedConn> AcceptGuard::Next(int listen_fd) {
  for (;;) {
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    const int fd =
        accept4(listen_fd, reinterpret_cast<sockaddr*>(&a), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      paused_until_ = absl::InfinitePast();
      // A spare lost to another thread's open between close and reopen
      // comes back once descriptors are free again.
      if (spare_ < 0) spare_ = OpenSpare();
      return AcceptedConn{fd, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port)};
    }
    const int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) return std::nullopt;
    if ((err == EMFILE || err == ENFILE) && spare_ >= 0) {
      uint64_t held = 0;
      if (shed_log_.Allow(&held)) {
        GASP_LOG(Error) << what_ << ": out of file descriptors, refusing a connection (raise "
                        << "`ulimit -n`; " << held
                        << " connections refused without a line since the last one)";
      }
      close(spare_);
      const int shed = accept(listen_fd, nullptr, nullptr);
      spare_ = OpenSpare();
      // accept reports EMFILE before it looks at the queue: nothing may be
      // waiting at all.
      if (shed < 0) {
        Pause("accept", errno);
        return std::nullopt;
      }
      close(shed);
      continue;
    }
    Pause("accept", err);
    return std::nullopt;
  }
}

void AcceptGuard::Pause(const char* call, int err) {
  paused_until_ = absl::Now() + kPause;
  uint64_t held = 0;
  if (shed_log_.Allow(&held)) {
    GASP_LOG(Error) << what_ << ": " << call << ": " << std::strerror(err)
                    << (err == EMFILE || err == ENFILE ? " (raise `ulimit -n`)" : "")
                    << "; not accepting for " << absl::FormatDuration(kPause) << " (" << held
                    << " more without a line since the last one)";
  }
}

void AcceptGuard::LogRefusal(const std::string& peer, const std::string& why) {
  uint64_t held = 0;
  if (refuse_log_.Allow(&held)) {
    GASP_LOG(Warn) << what_ << ": refusing a connection from " << peer << ": " << why << " ("
                   << held << " refused without a line since the last one)";
  }
}

bool SourceCaps::Admit(uint32_t ip) {
  if (total_ >= total_cap_) return false;
  int& n = by_source_[ip];
  if (n >= per_source_) return false;
  ++n;
  ++total_;
  return true;
}

void SourceCaps::Release(uint32_t ip) {
  auto it = by_source_.find(ip);
  if (it == by_source_.end()) return;
  --total_;
  if (--it->second <= 0) by_source_.erase(it);
}

int SourceCaps::from(uint32_t ip) const {
  auto it = by_source_.find(ip);
  return it == by_source_.end() ? 0 : it->second;
}

}  // namespace gasp

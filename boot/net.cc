#include "boot/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/accept_guard.h"
#include "base/status.h"

namespace gasp {
namespace boot {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view setting,
                                       int min_port) {
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s='%s' is not host:port (for example %s=node001:29500)", setting, text, setting));
  }
  HostPort hp;
  hp.host = std::string(text.substr(0, colon));
  int port;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port < min_port || port > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s='%s' has an invalid port: expected a number in [%d, 65535]", setting, text, min_port));
  }
  hp.port = port;
  return hp;
}

absl::StatusOr<sockaddr_in> ResolveIPv4(const std::string& host, int port) {
  sockaddr_in addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("cannot resolve host '%s' to an IPv4 address: %s", host, gai_strerror(rc)));
  }
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return addr;
}

std::string FormatAddress(const sockaddr_in& addr) {
  char buf[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &addr.sin_addr, buf, sizeof(buf));
  return absl::StrCat(buf, ":", ntohs(addr.sin_port));
}

std::string ShortHostName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) return "unknown";
  char* dot = std::strchr(host, '.');
  if (dot != nullptr) *dot = '\0';
  return host;
}

absl::Status SetNonBlockingCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return ErrnoError("fcntl(O_NONBLOCK)", errno);
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) {
    return ErrnoError("fcntl(FD_CLOEXEC)", errno);
  }
  return absl::OkStatus();
}

int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
  if (ms > 24 * 3600 * 1000) ms = 24 * 3600 * 1000;
  return static_cast<int>(ms);
}

absl::StatusOr<short> PollOne(int fd, short events, absl::Time deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = poll(&p, 1, PollTimeoutMs(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll", errno);
    }
    if (rc == 0) {
      if (absl::Now() < deadline) continue;  // woke a little early
      return static_cast<short>(0);
    }
    return p.revents;
  }
}

absl::StatusOr<UniqueFd> ConnectOnce(const sockaddr_in& addr, absl::Time deadline) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  SetNoDelay(fd.get());
  std::string where = FormatAddress(addr);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    if (e != EINPROGRESS) {
      absl::Status s = ErrnoError(absl::StrCat("connect to ", where), e);
      if (e == ECONNREFUSED || e == ENETUNREACH || e == EHOSTUNREACH || e == ETIMEDOUT ||
          e == EAGAIN) {
        return absl::UnavailableError(s.message());
      }
      return s;
    }
    GASP_ASSIGN_OR_RETURN(short revents, PollOne(fd.get(), POLLOUT, deadline));
    if (revents == 0) {
      return absl::DeadlineExceededError(absl::StrCat("connect to ", where, " timed out"));
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return absl::UnavailableError(ErrnoError(absl::StrCat("connect to ", where), err).message());
    }
  }
  return fd;
}

absl::Status SendAll(int fd, absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      GASP_ASSIGN_OR_RETURN(short revents, PollOne(fd, POLLOUT, deadline));
      if (revents == 0) return absl::DeadlineExceededError("send timed out");
      continue;
    }
    return ErrnoError("send", errno);
  }
  return absl::OkStatus();
}

std::string LocalIPv4(int fd) {
  sockaddr_in addr;
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      addr.sin_family != AF_INET) {
    return "";
  }
  char buf[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &addr.sin_addr, buf, sizeof(buf));
  return buf;
}

}  // namespace boot
}  // namespace gasp

#include "transport/tcp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/status.h"

#if defined(__SANITIZE_THREAD__)
#define GASP_TCP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GASP_TCP_TSAN 1
#endif
#endif
#ifdef GASP_TCP_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_read_range(void* addr, unsigned long size);   // NOLINT
extern "C" void __tsan_write_range(void* addr, unsigned long size);  // NOLINT
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace gasp {
namespace transport {
namespace tcp {

namespace {

ssize_t RecvWithFlags(int fd, void* buf, size_t len, int flags) {
#ifdef GASP_TCP_TSAN
  __tsan_ignore_thread_begin();
  const ssize_t n = recv(fd, buf, len, flags);
  const int saved = errno;
  __tsan_ignore_thread_end();
  if (n > 0) __tsan_write_range(buf, static_cast<unsigned long>(n));
  errno = saved;
  return n;
#else
  return recv(fd, buf, len, flags);
#endif
}

}  // namespace

ssize_t WireRecv(int fd, void* buf, size_t len) { return RecvWithFlags(fd, buf, len, MSG_DONTWAIT); }

ssize_t WireRecvWait(int fd, void* buf, size_t len) { return RecvWithFlags(fd, buf, len, 0); }

absl::Status SetBlockingWithTimeout(int fd, absl::Duration slice) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return ErrnoError("fcntl(clear O_NONBLOCK)", errno);
  }
  const timeval tv = absl::ToTimeval(slice);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    return ErrnoError("setsockopt(SO_RCVTIMEO)", errno);
  }
  return absl::OkStatus();
}

ssize_t WireSendmsg(int fd, const struct msghdr* msg) {
#ifdef GASP_TCP_TSAN
  for (size_t i = 0; i < msg->msg_iovlen; ++i) {
    __tsan_read_range(msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
  }
  __tsan_ignore_thread_begin();
  const ssize_t n = sendmsg(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  const int saved = errno;
  __tsan_ignore_thread_end();
  errno = saved;
  return n;
#else
  return sendmsg(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
#endif
}

int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

void AdvanceIov(struct iovec** iov, int* iovcnt, size_t n) {
  while (*iovcnt > 0 && n >= (*iov)->iov_len) {
    n -= (*iov)->iov_len;
    ++*iov;
    --*iovcnt;
  }
  if (*iovcnt > 0 && n > 0) {
    (*iov)->iov_base = static_cast<uint8_t*>((*iov)->iov_base) + n;
    (*iov)->iov_len -= n;
  }
}

namespace {

// Waits for `events` on fd until the deadline. OK when ready.
absl::Status WaitFd(int fd, short events, absl::Time deadline, const char* what) {
  while (true) {
    pollfd pfd{fd, events, 0};
    const int rc = poll(&pfd, 1, PollTimeoutMs(deadline));
    if (rc > 0) return absl::OkStatus();
    if (rc == 0) {
      return absl::DeadlineExceededError(
          absl::StrFormat("timed out waiting to %s (GASP_TIMEOUT)", what));
    }
    if (errno != EINTR) return ErrnoError(absl::StrFormat("poll to %s", what), errno);
  }
}

}  // namespace

absl::Status SendAll(int fd, struct iovec* iov, int iovcnt, absl::Time deadline) {
  // Drop empty leading entries so the loop ends exactly when all is sent.
  AdvanceIov(&iov, &iovcnt, 0);
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(std::min(iovcnt, IOV_MAX));
    const ssize_t n = WireSendmsg(fd, &msg);
    if (n >= 0) {
      AdvanceIov(&iov, &iovcnt, static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      GASP_RETURN_IF_ERROR(WaitFd(fd, POLLOUT, deadline, "send"));
      continue;
    }
    return ErrnoError("send", errno);
  }
  return absl::OkStatus();
}

absl::Status RecvExact(int fd, void* buf, size_t len, absl::Time deadline) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t got = 0;
  while (got < len) {
    const ssize_t n = WireRecv(fd, p + got, len - got);
    if (n > 0) {
      got += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return absl::UnavailableError("connection closed by the peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      GASP_RETURN_IF_ERROR(WaitFd(fd, POLLIN, deadline, "receive"));
      continue;
    }
    return ErrnoError("recv", errno);
  }
  return absl::OkStatus();
}

void SetLingerZero(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

absl::StatusOr<uint32_t> ResolveIpv4(const std::string& host) {
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return ntohl(a.s_addr);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_TCP_ADDR=%s is neither an IPv4 address nor a resolvable host name (%s)", host,
        rc != 0 ? gai_strerror(rc) : "no IPv4 address"));
  }
  const uint32_t ip = ntohl(reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr);
  freeaddrinfo(res);
  return ip;
}

uint32_t DefaultAdvertiseAddress() {
  ifaddrs* list = nullptr;
  uint32_t chosen = INADDR_LOOPBACK;
  if (getifaddrs(&list) != 0) return chosen;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if ((i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
    chosen = ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
    break;
  }
  freeifaddrs(list);
  return chosen;
}

std::string ShortHostName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) return "unknown";
  char* dot = std::strchr(host, '.');
  if (dot != nullptr) *dot = '\0';
  return host;
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

// Small POSIX socket helpers for boot/ and tools/ (IPv4, TCP). Every call
// that can block takes a deadline; every failure is an absl::Status whose
// message names the peer address.
#ifndef GASP_BOOT_NET_H_
#define GASP_BOOT_NET_H_

#include <netinet/in.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gasp {
namespace boot {

// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership and returns the descriptor.
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  // Closes the current descriptor (if any) and owns `fd` instead.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// "host:port" split; port in [min_port, 65535]. `setting` names the source
// ("GASP_COORDINATOR") in the error.
struct HostPort {
  std::string host;
  int port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view setting,
                                       int min_port = 1);

// Resolves `host` (name or dotted quad) to its first IPv4 address.
absl::StatusOr<sockaddr_in> ResolveIPv4(const std::string& host, int port);

// "a.b.c.d:port".
std::string FormatAddress(const sockaddr_in& addr);

// This machine's short host name ("vm"), "unknown" if it cannot be read.
std::string ShortHostName();

// Sets O_NONBLOCK and FD_CLOEXEC.
absl::Status SetNonBlockingCloexec(int fd);

// One non-blocking connect attempt bounded by `deadline`; returns a
// connected, non-blocking, TCP_NODELAY socket. The error keeps the errno
// code (ECONNREFUSED -> Unavailable) so that callers can retry.
absl::StatusOr<UniqueFd> ConnectOnce(const sockaddr_in& addr, absl::Time deadline);

// Writes all of `data` to a non-blocking socket, waiting in poll() (never
// spinning) until `deadline`. DeadlineExceeded when it passes.
absl::Status SendAll(int fd, absl::string_view data, absl::Time deadline);

// poll() on one descriptor for `events` until `deadline` (absl::InfiniteFuture
// allowed). Returns the revents (0 on timeout). EINTR is retried.
absl::StatusOr<short> PollOne(int fd, short events, absl::Time deadline);

// Milliseconds until `deadline` for poll(): 0 if past, -1 if infinite,
// rounded up so that a wait never ends before the deadline.
int PollTimeoutMs(absl::Time deadline);

// Local IPv4 address of a connected socket ("" on failure).
std::string LocalIPv4(int fd);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_NET_H_

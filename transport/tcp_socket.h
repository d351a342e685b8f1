// Internal to the tcp backend: small, bounded socket helpers. Every wait is
// a poll() with a deadline; errors are absl::Status with the errno text
// (callers prepend which peer / address they were talking to).
#ifndef GASP_TRANSPORT_TCP_SOCKET_H_
#define GASP_TRANSPORT_TCP_SOCKET_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/accept_guard.h"  // SetNoDelay

namespace gasp {
namespace transport {
namespace tcp {

// recv(2) / sendmsg(2) (non-blocking, no SIGPIPE) with a ThreadSanitizer
// model of the wire. TSan orders a send before the matching receive, but
// its interceptors record the kernel's copy on the wrong side of that
// order: sendmsg's read of the buffer after the release, recv's write of
// the buffer before the acquire. So a target's read of memory for a READ
// response looked unordered with what the requester does after the
// response arrived. Like a NIC's DMA, the kernel copy is not a CPU access:
// under TSan these helpers hide it and record the equivalent CPU access
// where it belongs (read before sending, write after receiving). Outside
// TSan builds they are the plain system calls.
ssize_t WireRecv(int fd, void* buf, size_t len);
ssize_t WireSendmsg(int fd, const struct msghdr* msg);
// recv(2) that blocks, for a socket made blocking by
// SetBlockingWithTimeout: returns -1/EAGAIN once the timeout passes.
ssize_t WireRecvWait(int fd, void* buf, size_t len);

// Clears O_NONBLOCK and bounds a blocking receive by `slice`
// (SO_RCVTIMEO). Every other call on the socket passes MSG_DONTWAIT, so
// this changes only WireRecvWait: a thread waiting for a reply blocks in
// one recv instead of a poll and a recv.
absl::Status SetBlockingWithTimeout(int fd, absl::Duration slice);

// Milliseconds left until `deadline` for poll(): 0 when passed, capped so it
// fits an int, rounded up so a wait never ends before the deadline.
int PollTimeoutMs(absl::Time deadline);

// Advances the iovec array by `n` bytes: drops fully written entries from
// the front (updating *iov and *iovcnt) and trims the first remaining one.
void AdvanceIov(struct iovec** iov, int* iovcnt, size_t n);

// Writes all of iov[0..iovcnt) on a non-blocking socket (sendmsg with
// MSG_NOSIGNAL: a dead peer is an EPIPE error, not a SIGPIPE), waiting for
// POLLOUT until `deadline`. Modifies the array. Errors: DeadlineExceeded
// (the peer stopped reading), Unavailable (reset / broken pipe), Internal.
absl::Status SendAll(int fd, struct iovec* iov, int iovcnt, absl::Time deadline);

// Reads exactly `len` bytes from a non-blocking socket before `deadline`.
// Errors: Unavailable (EOF or reset), DeadlineExceeded, Internal.
absl::Status RecvExact(int fd, void* buf, size_t len, absl::Time deadline);

// Makes close() send a reset instead of a FIN (crash simulation).
void SetLingerZero(int fd);

// Parses a dotted IPv4 address or resolves a host name to IPv4 (host byte
// order). Errors name the text and suggest GASP_TCP_ADDR.
absl::StatusOr<uint32_t> ResolveIpv4(const std::string& host);

// Address to advertise when GASP_TCP_ADDR is empty: the first IPv4 address
// of an interface that is up and not loopback, else 127.0.0.1.
uint32_t DefaultAdvertiseAddress();

// Short host name (up to the first dot), "unknown" on failure.
std::string ShortHostName();

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TCP_SOCKET_H_

// The tcp backend: one-sided operations and messages over TCP sockets, for
// clusters without RDMA and for development. A progress thread per transport
// (blocking in epoll_wait, so oversubscribed nodes are not slowed down)
// serves peers' requests against registered memory the way a NIC would and
// completes this rank's operations.
//
// Connections are made lazily, one per direction and pair: rank A's requests
// and messages to B travel on the connection A opened, B's responses come
// back on it. So there is never a connect race, and per (peer, tag) message
// order is the order of that single stream.
//
// Peer-failure handlers run on the progress thread: they must not block on
// this transport (no Wait, Execute, Recv or Shutdown from inside them), as
// that thread is the one that would complete the wait.
//
// Settings: GASP_TCP_ADDR (address to listen on and advertise; "" picks the
// first non-loopback IPv4 interface, else 127.0.0.1), GASP_TCP_PORT (0 =
// any), GASP_TIMEOUT (connect, handshake, send and Deregister deadline).
#ifndef GASP_TRANSPORT_TCP_TRANSPORT_H_
#define GASP_TRANSPORT_TCP_TRANSPORT_H_

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

// Sizing of the preallocated tables (no allocation on the op path).
struct TcpTransportOptions {
  // Outstanding remote one-sided ops per transport. When all are in use,
  // Post waits (up to TransportOptions::timeout) for one to free up.
  size_t max_outstanding_ops = 4096;
  // Registered regions at a time.
  size_t max_regions = 4096;
};

// Creates a tcp transport for `options.rank` of `options.size`: binds the
// listening socket (so LocalEndpoint is valid at once) and starts the
// progress thread. Errors name the address/port and the setting to change
// (GASP_TCP_ADDR / GASP_TCP_PORT).
absl::StatusOr<std::unique_ptr<Transport>> CreateTcpTransport(
    const TransportOptions& options, const TcpTransportOptions& tcp_options = {});

// --- Test hooks (conformance tests only; never used by the library). -------
// Each returns InvalidArgument when `transport` is not a tcp transport.

// Pauses (true) or resumes (false) the progress thread: while paused it
// serves no request and completes nothing, like a hung process. Returns
// once the thread is parked.
absl::Status TcpPauseProgressForTesting(Transport* transport, bool paused);

// Simulates a crash: stops the progress thread and resets every socket
// without a goodbye, so peers see an abrupt loss. Local outstanding ops
// complete with kFlushed; the object stays valid (later ops are flushed)
// and is destroyed normally.
absl::Status TcpCrashForTesting(Transport* transport);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TCP_TRANSPORT_H_

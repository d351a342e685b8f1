// The shm backend: one-sided operations and messages between the ranks of
// one host through shared memory, for jobs whose ranks all run on one
// machine (GASP_TRANSPORT=shm). Semantics as transport.h; the design and
// the argument for it are in docs/design.md, "Transport".
//
// Each rank listens on a unix socket in a private (0700) directory under
// $XDG_RUNTIME_DIR (else /tmp), whose path is in its endpoint blob. A rank
// connects lazily to a node-mate, checks the listener's uid (SO_PEERCRED),
// runs the job-secret handshake of the tcp backend on the socket and hands
// over a sealed memfd holding two rings (requests and messages one way,
// responses the other) and its doorbell eventfd. A progress thread per
// transport serves node-mates' requests against registered regions (the
// same rkey, bounds and rights checks as tcp), with the target's own CPU
// atomics, and completes this rank's ops; it sleeps in epoll_wait on its
// doorbell and the sockets when there is nothing to do. A socket's end
// without the goodbye byte means the peer died.
//
// Peer-failure handlers run on the progress thread: they must not block on
// this transport (no Wait, Execute, Recv or Shutdown from inside them).
//
// Settings: GASP_TIMEOUT (connect, handshake, ring-full and Deregister
// deadline), GASP_WAIT_MODE / GASP_SPIN_US (how long the progress thread
// polls after work before it sleeps).
#ifndef GASP_TRANSPORT_SHM_TRANSPORT_H_
#define GASP_TRANSPORT_SHM_TRANSPORT_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

// Creates an shm transport for `options.rank` of `options.size`: makes the
// socket directory, listens (so LocalEndpoint is valid at once) and starts
// the progress and accept threads. Requires options.job_secret. Errors
// name the path and the setting to change (XDG_RUNTIME_DIR / TMPDIR-like
// directories too long for a socket path, no job secret).
absl::StatusOr<std::unique_ptr<Transport>> CreateShmTransport(const TransportOptions& options);

// --- Test hooks (tests only; never used by the library). -----------------
// Each returns InvalidArgument when `transport` is not an shm transport.

// Pauses (true) or resumes (false) the progress thread, like a hung
// process: nothing is served or completed. Returns once it is parked.
absl::Status ShmPauseProgressForTesting(Transport* transport, bool paused);

// Simulates a crash: stops the threads and closes every socket without the
// goodbye, so node-mates see the end of a process that did not shut down.
// Local outstanding ops complete with kFlushed; the object stays valid.
absl::Status ShmCrashForTesting(Transport* transport);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_SHM_TRANSPORT_H_

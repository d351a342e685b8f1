// Internal to the shm backend: the unix-socket side of a connection, every
// wait bounded by a deadline (poll), errors as absl::Status with errno's
// text.
#ifndef GASP_TRANSPORT_SHM_SOCKET_H_
#define GASP_TRANSPORT_SHM_SOCKET_H_

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/shm_wire.h"

namespace gasp {
namespace transport {
namespace shm {

// Makes this rank's private socket directory (mode 0700, mkdtemp) under
// $XDG_RUNTIME_DIR, else /tmp, named from `job_tag`, the rank and the pid,
// and returns the socket path inside it. The directory stays locked (an
// exclusive flock on it) until RemoveSocketPath. First removes the
// directories (of this uid) whose owner is gone (RemoveStaleSocketDirs).
// Errors name the directory; a path too
// long for the endpoint blob suggests setting XDG_RUNTIME_DIR to a short
// directory.
absl::StatusOr<std::string> MakeSocketPath(const std::string& job_tag, int rank);
// Removes the socket and its directory (best effort).
void RemoveSocketPath(const std::string& path);
// Removes the socket directories under `base` that this uid owns and whose
// lock nobody holds: ranks killed with SIGKILL cannot remove their own. A
// live process's directory is never touched, whatever PID namespace it
// runs in (the pid in the name is only for people reading it).
void RemoveStaleSocketDirs(const std::string& base);

// A non-blocking listening unix stream socket bound to `path`.
absl::StatusOr<int> ListenUnix(const std::string& path);

// Connects to `path`, retrying while nobody listens there (not yet, or any
// more) until `deadline`. Returns a non-blocking socket; errors say how
// many attempts failed and why, naming GASP_TIMEOUT.
absl::StatusOr<int> DialUnix(const std::string& path, absl::Time deadline);

// The uid and pid of the process at the other end (SO_PEERCRED); errors
// when it is not this process's effective uid.
absl::Status CheckPeerUid(int fd, const char* who);

// Sends one byte `kind` carrying `n` descriptors (SCM_RIGHTS) on the
// non-blocking socket `fd` before `deadline`.
absl::Status SendFds(int fd, uint8_t kind, const int* fds, int n, absl::Time deadline);
// Receives one byte that must be `kind` with exactly `n` descriptors into
// `fds` before `deadline`. On any error every descriptor received is
// closed and nothing is returned in `fds`.
absl::Status RecvFds(int fd, uint8_t kind, int* fds, int n, absl::Time deadline);

// This boot's id (/proc/sys/kernel/random/boot_id as 16 bytes), so blobs
// of ranks on another host are refused; a hash of the host name where the
// file cannot be read.
std::array<uint8_t, kBootIdBytes> BootId();

// Writes 1 to the eventfd `fd` (a doorbell); never blocks.
void RingDoorbell(int fd);

}  // namespace shm
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_SHM_SOCKET_H_

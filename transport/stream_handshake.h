// The job-secret handshake (tcp_wire.h, "Handshake") run with blocking,
// deadline-bounded reads and writes on a connected stream socket. The tcp
// backend's connector and both sides of the shm backend's unix-socket
// connections use it; the tcp acceptor runs the same exchange as a state
// machine on its progress thread (tcp_transport_conns.cc).
#ifndef GASP_TRANSPORT_STREAM_HANDSHAKE_H_
#define GASP_TRANSPORT_STREAM_HANDSHAKE_H_

#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace gasp {
namespace transport {
namespace tcp {

// Who this side is: rank, job size, session nonce (its endpoint blob's) and
// the job secret that keys the MACs.
struct HandshakeSelf {
  int rank = 0;
  int size = 0;
  uint64_t session = 0;
  absl::Span<const uint8_t> secret;
};

// Connector side on non-blocking `fd`: HELLO, then reads the acceptor's
// HELLO and PROOF, checks that it is rank `peer` with session
// `peer_session` and knows the secret, and sends this side's PROOF, all
// before `deadline`. `where` names the peer's address in errors.
// Errors: DataLoss (malformed reply), FailedPrecondition (another rank or
// session: a stale process), PermissionDenied (no knowledge of the job
// secret: "a process of another job"), Unavailable / DeadlineExceeded
// (the connection ended or stalled).
absl::Status ConnectorHandshake(int fd, const HandshakeSelf& self, int peer,
                                uint64_t peer_session, const std::string& where,
                                absl::Time deadline);

// Acceptor side on non-blocking `fd`: reads the connector's HELLO, checks
// the job size and that `session_of(rank)` accepts its session (it returns
// false for a session it does not know), answers HELLO + PROOF and checks
// the connector's PROOF, all before `deadline`. Returns the connector's
// rank. Errors say why the connection is refused (for the log).
absl::StatusOr<int> AcceptorHandshake(int fd, const HandshakeSelf& self,
                                      absl::FunctionRef<bool(int rank, uint64_t session)> session_ok,
                                      absl::Time deadline);

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_STREAM_HANDSHAKE_H_

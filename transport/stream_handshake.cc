#include "transport/stream_handshake.h"

#include <sys/uio.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/crypto.h"
#include "base/status.h"
#include "transport/tcp_socket.h"
#include "transport/tcp_wire.h"

namespace gasp {
namespace transport {
namespace tcp {
namespace {

absl::Status SendHeaders(int fd, const FrameHeader* headers, int n, absl::Time deadline) {
  uint8_t bytes[2][kFrameHeaderSize];
  iovec iov[2];
  for (int i = 0; i < n; ++i) {
    EncodeHeader(headers[i], bytes[i]);
    iov[i] = {bytes[i], kFrameHeaderSize};
  }
  return SendAll(fd, iov, n, deadline);
}

absl::StatusOr<FrameHeader> RecvHeader(int fd, absl::Time deadline) {
  uint8_t b[kFrameHeaderSize];
  GASP_RETURN_IF_ERROR(RecvExact(fd, b, sizeof(b), deadline));
  return DecodeHeader(absl::MakeConstSpan(b, sizeof(b)));
}

}  // namespace

absl::Status ConnectorHandshake(int fd, const HandshakeSelf& self, int peer,
                                uint64_t peer_session, const std::string& where,
                                absl::Time deadline) {
  HandshakeTranscript t;
  t.size = static_cast<uint64_t>(self.size);
  t.connector_rank = static_cast<uint64_t>(self.rank);
  t.acceptor_rank = static_cast<uint64_t>(peer);
  t.connector_session = self.session;
  t.connector_nonce = RandomU64();
  const FrameHeader hello = HelloFrame(self.rank, self.size, self.session, t.connector_nonce);
  GASP_RETURN_IF_ERROR(SendHeaders(fd, &hello, 1, deadline));
  // The acceptor answers with its HELLO and its PROOF at once.
  uint8_t reply[2 * kFrameHeaderSize];
  absl::Status s = RecvExact(fd, reply, sizeof(reply), deadline);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("no HELLO and PROOF in reply (", s.message(),
                                                "); the peer refused the connection, see its log"));
  }
  GASP_ASSIGN_OR_RETURN(FrameHeader h, DecodeHeader(absl::MakeConstSpan(reply, kFrameHeaderSize)));
  GASP_ASSIGN_OR_RETURN(FrameHeader p,
                        DecodeHeader(absl::MakeConstSpan(reply + kFrameHeaderSize, kFrameHeaderSize)));
  if (h.type != FrameType::kHello || p.type != FrameType::kProof) {
    return absl::DataLossError(absl::StrFormat("expected HELLO and PROOF in reply, got %s and %s",
                                               FrameTypeName(h.type), FrameTypeName(p.type)));
  }
  if (h.operand != static_cast<uint64_t>(peer) ||
      h.remote_addr != static_cast<uint64_t>(self.size) || h.compare != peer_session) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the process at %s is not this job's rank %d (it says rank %d of %d, session %x, "
        "expected session %x): a stale process may hold the address",
        where, peer, h.operand, h.remote_addr, h.compare, peer_session));
  }
  t.acceptor_session = h.compare;
  t.acceptor_nonce = h.req_id;
  if (!MacEqual(ProofOf(p).data(), HandshakeMac(self.secret, /*acceptor=*/true, t).data())) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "the process at %s answers as rank %d but does not know this job's secret (a process "
        "of another job holds the address, or the ranks were not started by one launcher: "
        "start every rank with the same gasprun, mpirun or srun)",
        where, peer));
  }
  const FrameHeader proof = ProofFrame(HandshakeMac(self.secret, /*acceptor=*/false, t));
  return SendHeaders(fd, &proof, 1, deadline);
}

absl::StatusOr<int> AcceptorHandshake(int fd, const HandshakeSelf& self,
                                      absl::FunctionRef<bool(int rank, uint64_t session)> session_ok,
                                      absl::Time deadline) {
  GASP_ASSIGN_OR_RETURN(FrameHeader h, RecvHeader(fd, deadline));
  if (h.type != FrameType::kHello) {
    return absl::FailedPreconditionError(
        absl::StrFormat("first frame is %s, not HELLO", FrameTypeName(h.type)));
  }
  const int peer = static_cast<int>(h.operand);
  if (h.remote_addr != static_cast<uint64_t>(self.size)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "HELLO from rank %d of a %d-rank job, this job has %d ranks (another job?)", peer,
        h.remote_addr, self.size));
  }
  if (peer == self.rank) return absl::FailedPreconditionError("HELLO claims to be this very rank");
  if (!session_ok(peer, h.compare)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "HELLO from rank %d carries session %x, not its endpoint blob's (a stale process?)", peer,
        h.compare));
  }
  HandshakeTranscript t;
  t.size = static_cast<uint64_t>(self.size);
  t.connector_rank = static_cast<uint64_t>(peer);
  t.acceptor_rank = static_cast<uint64_t>(self.rank);
  t.connector_session = h.compare;
  t.acceptor_session = self.session;
  t.connector_nonce = h.req_id;
  t.acceptor_nonce = RandomU64();
  const FrameHeader reply[2] = {HelloFrame(self.rank, self.size, self.session, t.acceptor_nonce),
                                ProofFrame(HandshakeMac(self.secret, /*acceptor=*/true, t))};
  GASP_RETURN_IF_ERROR(SendHeaders(fd, reply, 2, deadline));
  GASP_ASSIGN_OR_RETURN(FrameHeader p, RecvHeader(fd, deadline));
  if (p.type != FrameType::kProof) {
    return absl::PermissionDeniedError(absl::StrFormat("HELLO from rank %d followed by %s, not PROOF",
                                                       peer, FrameTypeName(p.type)));
  }
  if (!MacEqual(ProofOf(p).data(), HandshakeMac(self.secret, /*acceptor=*/false, t).data())) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "HELLO as rank %d with a PROOF that does not match this job's secret (a process of "
        "another job, or not started by this job's launcher)",
        peer));
  }
  return peer;
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

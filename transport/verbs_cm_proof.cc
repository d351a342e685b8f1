#include "transport/verbs_cm_proof.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "transport/tcp_wire.h"

namespace gasp {
namespace transport {

Mac CmMac(absl::Span<const uint8_t> secret, bool acceptor, const CmTranscript& t) {
  return HmacSha256(secret, {acceptor ? "gasp-verbs-v1 acceptor " : "gasp-verbs-v1 connector",
                             Le64(t.size), Le64(t.connector), Le64(t.acceptor), Le64(t.kind),
                             Le64(t.acceptor_session), Le64(t.nonce)});
}

std::array<uint8_t, kCmRequestBytes> EncodeCmRequest(absl::Span<const uint8_t> secret,
                                                     const CmTranscript& t) {
  std::array<uint8_t, kCmRequestBytes> b{};
  tcp::PutLe32(b.data(), tcp::kBlobMagic);
  tcp::PutLe32(b.data() + 4, static_cast<uint32_t>(t.connector));
  tcp::PutLe32(b.data() + 8, static_cast<uint32_t>(t.kind));
  tcp::PutLe32(b.data() + 12, kCmProofVersion);
  tcp::PutLe64(b.data() + 16, t.nonce);
  const Mac mac = CmMac(secret, false, t);
  std::memcpy(b.data() + 24, mac.data(), mac.size());
  return b;
}

absl::StatusOr<CmRequest> DecodeCmRequest(absl::Span<const uint8_t> data) {
  if (data.size() < kCmRequestBytes) {
    return absl::DataLossError(absl::StrFormat(
        "connection request with %d bytes of private data, need %d (a gasp of another "
        "version, or not gasp)",
        data.size(), kCmRequestBytes));
  }
  const uint8_t* p = data.data();
  if (tcp::GetLe32(p) != tcp::kBlobMagic) {
    return absl::DataLossError("connection request without gasp's magic (not gasp)");
  }
  CmRequest r;
  r.rank = tcp::GetLe32(p + 4);
  r.kind = tcp::GetLe32(p + 8);
  const uint32_t version = tcp::GetLe32(p + 12);
  if (version != kCmProofVersion) {
    return absl::DataLossError(absl::StrFormat(
        "connection request of handshake version %d, this gasp speaks %d (mixed versions)",
        version, kCmProofVersion));
  }
  if (r.kind > 1) {
    return absl::DataLossError(absl::StrFormat("connection request of unknown kind %d", r.kind));
  }
  r.nonce = tcp::GetLe64(p + 16);
  std::memcpy(r.mac.data(), p + 24, r.mac.size());
  return r;
}

absl::Status CheckCmRequest(absl::Span<const uint8_t> secret, const CmRequest& req, int size,
                            int my_rank, uint64_t my_session, CmTranscript* t) {
  // A rank may connect to itself (verbs loopback QPs for self-operations).
  if (req.rank >= static_cast<uint32_t>(size)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "connection request from rank %d, not a rank of this %d-rank job", req.rank, size));
  }
  t->size = static_cast<uint64_t>(size);
  t->connector = req.rank;
  t->acceptor = static_cast<uint64_t>(my_rank);
  t->kind = req.kind;
  t->acceptor_session = my_session;
  t->nonce = req.nonce;
  const Mac want = CmMac(secret, false, *t);
  if (!MacEqual(req.mac.data(), want.data())) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "connection request as rank %d whose MAC does not match this job's secret and this "
        "rank's session (another job, a stale process, or not started by this job's launcher)",
        req.rank));
  }
  return absl::OkStatus();
}

bool CmReplyMatches(absl::Span<const uint8_t> secret, const CmTranscript& t,
                    absl::Span<const uint8_t> reply) {
  if (reply.size() < kCmReplyBytes) return false;
  const Mac want = CmMac(secret, true, t);
  return MacEqual(reply.data(), want.data());
}

std::array<uint8_t, kCmRejectBytes> EncodeCmReject(CmRejectReason reason) {
  std::array<uint8_t, kCmRejectBytes> b{};
  tcp::PutLe32(b.data(), tcp::kBlobMagic);
  tcp::PutLe32(b.data() + 4, static_cast<uint32_t>(reason));
  return b;
}

bool CmRejectIsFinal(absl::Span<const uint8_t> data) {
  if (data.size() < kCmRejectBytes || tcp::GetLe32(data.data()) != tcp::kBlobMagic) return false;
  const auto reason = static_cast<CmRejectReason>(tcp::GetLe32(data.data() + 4));
  return reason == CmRejectReason::kNotThisJob || reason == CmRejectReason::kReplayed;
}

std::string DescribeCmReject(absl::Span<const uint8_t> data) {
  if (data.size() < kCmRejectBytes || tcp::GetLe32(data.data()) != tcp::kBlobMagic) return "";
  switch (static_cast<CmRejectReason>(tcp::GetLe32(data.data() + 4))) {
    case CmRejectReason::kNotThisJob:
      return "it does not take this process for a rank of its job (another job's process holds "
             "the port, or the ranks were not started by one launcher: start every rank with "
             "the same gasprun, mpirun or srun)";
    case CmRejectReason::kReplayed:
      return "the request repeated a nonce it had accepted (a replayed request)";
    case CmRejectReason::kResources:
      return "it could not create a queue pair (see its log)";
    case CmRejectReason::kShuttingDown:
      return "it is shutting down";
  }
  return "an unknown reason";
}

}  // namespace transport
}  // namespace gasp

// The private data of the verbs backend's RDMA CM handshake, keyed by the
// job secret: a CONNECT_REQUEST carries the connector's rank, the
// connection kind, a fresh nonce and an HMAC that only a holder of the job
// secret can make; the acceptor answers (in the REP's private data) with
// its own HMAC over the same nonce. So no queue pair is created for a
// process outside the job, and a connector never uses a queue pair to a
// process that is not the rank it dialed (docs/protection.md, "Threat
// model").
//
// REQ private data (kCmRequestBytes = 56, the most RC REQ carries):
//   off size field
//     0    4 magic     kBlobMagic ("GASP")
//     4    4 rank      connector's rank
//     8    4 kind      0 ops, 1 messages
//    12    4 version   kCmProofVersion
//    16    8 nonce     fresh per connection attempt
//    24   32 mac       HMAC(secret, "gasp-verbs-v1 connector", size,
//                      connector, acceptor, kind, acceptor session, nonce)
// REP private data (kCmReplyBytes = 32): HMAC(secret, "gasp-verbs-v1
// acceptor", the same fields).
// Little-endian throughout. The acceptor session is the nonce of the
// acceptor's endpoint blob, so a REQ made for one transport instance (one
// job, one run) is refused by every other.
#ifndef GASP_TRANSPORT_VERBS_CM_PROOF_H_
#define GASP_TRANSPORT_VERBS_CM_PROOF_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/crypto.h"

namespace gasp {
namespace transport {

inline constexpr size_t kCmRequestBytes = 56;
inline constexpr size_t kCmReplyBytes = kMacBytes;
inline constexpr uint32_t kCmProofVersion = 1;

// What both MACs cover.
struct CmTranscript {
  uint64_t size = 0;
  uint64_t connector = 0;
  uint64_t acceptor = 0;
  uint64_t kind = 0;
  uint64_t acceptor_session = 0;
  uint64_t nonce = 0;
};

Mac CmMac(absl::Span<const uint8_t> secret, bool acceptor, const CmTranscript& t);

// The REQ private data for `t` (t.connector, t.kind and t.nonce encoded).
std::array<uint8_t, kCmRequestBytes> EncodeCmRequest(absl::Span<const uint8_t> secret,
                                                     const CmTranscript& t);

// What a REQ claims, decoded (not yet checked).
struct CmRequest {
  uint32_t rank = 0;
  uint32_t kind = 0;
  uint64_t nonce = 0;
  Mac mac{};
};

// Decodes REQ private data from the network. DataLoss naming the defect:
// short data, a wrong magic or version, a kind other than 0 or 1.
absl::StatusOr<CmRequest> DecodeCmRequest(absl::Span<const uint8_t> data);

// Checks a decoded REQ at the acceptor (`my_rank` of `size`, session
// `my_session`): the rank is in range (ours too: self-connections are
// legitimate), and the MAC matches.
// PermissionDenied for a wrong MAC (not this job), InvalidArgument for a
// rank out of range. On success fills *t for the reply's MAC.
absl::Status CheckCmRequest(absl::Span<const uint8_t> secret, const CmRequest& req, int size,
                            int my_rank, uint64_t my_session, CmTranscript* t);

// Checks the acceptor's REP private data at the connector.
bool CmReplyMatches(absl::Span<const uint8_t> secret, const CmTranscript& t,
                    absl::Span<const uint8_t> reply);

// Why an acceptor refused a REQ, in the REJECT's private data (magic +
// u32 reason), so that the connector's error says it.
enum class CmRejectReason : uint32_t {
  kNotThisJob = 1,  // malformed, or no valid MAC for this job and session
  kReplayed = 2,    // a nonce already accepted
  kResources = 3,   // the acceptor could not create the queue pair
  kShuttingDown = 4,
};
inline constexpr size_t kCmRejectBytes = 8;
std::array<uint8_t, kCmRejectBytes> EncodeCmReject(CmRejectReason reason);
// A sentence for REJECT private data from a gasp acceptor; "" for anything
// else (a port without gasp behind it rejects without private data).
std::string DescribeCmReject(absl::Span<const uint8_t> data);
// True for reasons no retry can change (kNotThisJob, kReplayed).
bool CmRejectIsFinal(absl::Span<const uint8_t> data);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_VERBS_CM_PROOF_H_

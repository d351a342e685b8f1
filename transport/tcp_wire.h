// Wire format of the tcp backend: the fixed-size frame header that precedes
// every message on a connection, and the endpoint blob a rank publishes.
//
// Everything is encoded byte by byte in little-endian order (never by
// casting structs), and everything decoded from the network is validated
// here, once, before any other code looks at it: the transport only ever
// acts on a FrameHeader that DecodeHeader accepted.
//
// Frame header (kFrameHeaderSize = 56 bytes):
//   off size field
//     0    2 magic        kFrameMagic
//     2    1 version      kWireVersion
//     3    1 type         FrameType
//     4    1 status       CompletionCode on responses, 0 on requests
//     5    3 reserved     zero
//     8    4 length       payload bytes that follow the header
//    12    4 tag          MSG: message tag; else zero
//    16    8 req_id       requester's id, echoed in the response;
//                         HELLO: the sender's fresh connection nonce
//    24    8 remote_addr  target virtual address (HELLO: job size)
//    32    8 rkey         RemoteKey::packed
//    40    8 operand      READ_REQ: bytes to read; CAS: new value;
//                         FETCH_ADD: addend; ATOMIC_RESP: old value;
//                         HELLO: sender rank
//    48    8 compare      CAS: expected value; HELLO: session nonce
// PROOF carries its 32-byte HMAC in req_id, remote_addr, rkey and operand
// (in that order, byte for byte); every other field is zero.
// A field a frame type does not use must be zero, so every accepted header
// has exactly one encoding.
//
// Handshake (docs/protocol.md, "tcp handshake"), keyed by the job secret:
//   connector -> acceptor  HELLO{rank, size, session, nonce Nc}
//   acceptor -> connector  HELLO{rank, size, session, nonce Ns}
//                          PROOF{HMAC(secret, "acceptor", transcript)}
//   connector -> acceptor  PROOF{HMAC(secret, "connector", transcript)}
// where the transcript is both ranks, the job size, both sessions and both
// nonces. Each side's fresh nonce makes a recorded PROOF useless on any
// other connection; only then does the acceptor act on requests, and the
// connector sends none before the acceptor's PROOF checked out.
#ifndef GASP_TRANSPORT_TCP_WIRE_H_
#define GASP_TRANSPORT_TCP_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/crypto.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace tcp {

inline constexpr uint16_t kFrameMagic = 0x4753;  // bytes "SG" on the wire
inline constexpr uint8_t kWireVersion = 2;  // 2: HMAC handshake (PROOF)
inline constexpr size_t kFrameHeaderSize = 56;

// Largest READ/WRITE payload (also Capabilities::max_op_bytes).
inline constexpr uint64_t kMaxOpBytes = uint64_t{1} << 30;
// Largest rank / job size a HELLO may name.
inline constexpr uint64_t kMaxRanks = uint64_t{1} << 24;

enum class FrameType : uint8_t {
  kHello = 1,       // first frame each way on a connection
  kBye = 2,         // orderly close: the following EOF is not a failure
  kReadReq = 3,
  kReadResp = 4,    // payload: the bytes read (only on success)
  kWriteReq = 5,    // payload: the bytes to write
  kWriteResp = 6,
  kCasReq = 7,
  kFaaReq = 8,
  kAtomicResp = 9,  // operand: the old value
  kMsg = 10,        // two-sided message: tag + payload
  kProof = 11,      // handshake: HMAC over the transcript (see above)
};

// "READ_REQ", "MSG", ...; "UNKNOWN" for other values.
const char* FrameTypeName(FrameType type);

// A decoded (and, when it came from DecodeHeader, validated) frame header.
struct FrameHeader {
  FrameType type = FrameType::kBye;
  uint8_t status = 0;
  uint32_t length = 0;
  uint32_t tag = 0;
  uint64_t req_id = 0;
  uint64_t remote_addr = 0;
  uint64_t rkey = 0;
  uint64_t operand = 0;
  uint64_t compare = 0;

  friend bool operator==(const FrameHeader& a, const FrameHeader& b);
};

// Writes `h` into `out` (exactly kFrameHeaderSize bytes). Does not validate:
// the sender builds headers from already-validated ops.
void EncodeHeader(const FrameHeader& h, uint8_t out[kFrameHeaderSize]);

// Decodes and validates the first kFrameHeaderSize bytes of `bytes`.
// Errors: InvalidArgument when fewer bytes are given; DataLoss, with a
// message naming the field and the value, for a wrong magic or version, an
// unknown type or status, non-zero reserved or unused fields, a payload
// length over the type's limit (READ/WRITE: kMaxOpBytes, MSG:
// kMaxMessageBytes, everything else: 0), a misaligned atomic address, or a
// HELLO naming an impossible rank or job size.
absl::StatusOr<FrameHeader> DecodeHeader(absl::Span<const uint8_t> bytes);

// Convenience constructors for the frames the transport sends. `session`
// is the sender's transport-instance nonce (its endpoint blob's), `nonce`
// fresh per connection.
FrameHeader HelloFrame(int rank, int size, uint64_t session, uint64_t nonce);
FrameHeader ByeFrame();
FrameHeader ProofFrame(const Mac& mac);
// The HMAC a PROOF header carries.
Mac ProofOf(const FrameHeader& proof);

// What both sides of a handshake MAC: identical on both ends of one
// connection, different on every other connection.
struct HandshakeTranscript {
  uint64_t size = 0;
  uint64_t connector_rank = 0;
  uint64_t acceptor_rank = 0;
  uint64_t connector_session = 0;
  uint64_t acceptor_session = 0;
  uint64_t connector_nonce = 0;
  uint64_t acceptor_nonce = 0;
};

// HMAC-SHA256 with the job secret over a role label ("connector" or
// "acceptor", so one side's PROOF never passes as the other's) and the
// transcript.
Mac HandshakeMac(absl::Span<const uint8_t> secret, bool acceptor,
                 const HandshakeTranscript& transcript);

// ---------------------------------------------------------------------------
// Endpoint blob (transport.h's EndpointBlob, 128 bytes):
//   off size field
//     0    4 magic     kBlobMagic (common to every backend)
//     4    2 backend   BlobBackend
//     6    2 version   kBlobVersion
//     8    4 ipv4      address, network byte order (a.b.c.d as 4 bytes)
//    12    2 port      little-endian
//    14    2 reserved  zero
//    16    4 pid
//    20    4 rank
//    24    8 nonce     random per transport instance (checked in HELLO)
//    32   64 hostname  NUL-padded, at most 63 characters
//    96   32 reserved  zero

inline constexpr uint32_t kBlobMagic = 0x50534147;  // bytes "GASP"
inline constexpr uint16_t kBlobVersion = 1;
inline constexpr size_t kBlobHostnameBytes = 64;

// Backend ids in the common blob prefix, so an error can name the backend
// a blob is from.
enum class BlobBackend : uint16_t { kTcp = 1, kVerbs = 2, kShm = 3 };

// Writes the common 8-byte prefix {kBlobMagic, backend, version}.
void EncodeBlobPrefix(BlobBackend backend, uint16_t version, EndpointBlob* blob);

// Checks the common prefix of a blob a `backend` rank of blob `version`
// accepts. Errors (InvalidArgument) say what to check: a wrong magic (not
// a gasp blob / different build), another backend's blob (set the same
// GASP_TRANSPORT everywhere), another version (mixed gasp builds).
absl::Status CheckBlobPrefix(const EndpointBlob& blob, BlobBackend backend, uint16_t version);

// What a tcp rank publishes about itself.
struct TcpEndpoint {
  uint32_t ipv4 = 0;  // host byte order (0x7f000001 = 127.0.0.1)
  uint16_t port = 0;
  uint32_t pid = 0;
  uint32_t rank = 0;
  uint64_t nonce = 0;
  std::string hostname;  // truncated to 63 characters when encoded

  friend bool operator==(const TcpEndpoint& a, const TcpEndpoint& b);
};

EndpointBlob EncodeEndpoint(const TcpEndpoint& endpoint);

// Validates and decodes a blob. Errors (InvalidArgument) say what is wrong
// and what to check: a wrong magic (not a gasp blob / different build), a
// blob of another backend (set the same GASP_TRANSPORT everywhere), another
// blob version (mixed gasp versions), a zero port or address, an
// unterminated hostname or non-zero reserved bytes.
absl::StatusOr<TcpEndpoint> DecodeEndpoint(const EndpointBlob& blob);

// "10.0.0.5:40123".
std::string FormatAddress(uint32_t ipv4, uint16_t port);

// Little-endian helpers, exposed for the tests and the fuzzer.
void PutLe16(uint8_t* p, uint16_t v);
void PutLe32(uint8_t* p, uint32_t v);
void PutLe64(uint8_t* p, uint64_t v);
uint16_t GetLe16(const uint8_t* p);
uint32_t GetLe32(const uint8_t* p);
uint64_t GetLe64(const uint8_t* p);

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TCP_WIRE_H_

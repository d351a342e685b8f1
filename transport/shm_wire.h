// Wire format of the shm backend: the records in the shared-memory rings
// between two processes of one host, and the endpoint blob a rank
// publishes. Like tcp_wire.h, everything is encoded byte by byte in
// little-endian order and everything read from a peer's memory is copied
// out and validated here, once, before any other code acts on it (the peer
// can rewrite shared memory at any time).
//
// Record header (kRecordHeaderSize = 56 bytes), followed by `length`
// payload bytes, padded to a multiple of 8 in the ring:
//   off size field
//     0    2 magic     kRecordMagic
//     2    1 version   kShmWireVersion
//     3    1 type      RecordType
//     4    1 status    CompletionCode on responses, 0 on requests
//     5    3 reserved  zero
//     8    4 length    payload bytes (at most kMaxChunkBytes)
//    12    4 tag       MSG: message tag; else zero
//    16    8 req_id    requester's op id, echoed in responses
//    24    8 addr      READ/WRITE: this chunk's target address;
//                      atomics: the word's address
//    32    8 rkey      RemoteKey::packed
//    40    8 span      READ/WRITE: bytes the target checks from addr (the
//                      rest of the op, so the first chunk's check covers
//                      it all and a refused WRITE writes nothing);
//                      CAS: new value; FETCH_ADD: addend;
//                      ATOMIC_RESP: old value; MSG: the message's size
//    48    8 aux       READ_REQ: chunk bytes to read; CAS: expected
//                      value; MSG: the chunk's offset in the message;
//                      READ_RESP: the chunk's address (echoed, so the
//                      requester knows where in its buffer it goes)
// A field a record type does not use must be zero.
//
// Endpoint blob (transport.h's EndpointBlob, 128 bytes):
//   off size field
//     0    8 common prefix (tcp_wire.h): magic, backend kShm, kShmBlobVersion
//     8    4 pid
//    12    4 rank
//    16    8 nonce     random per transport instance (checked in HELLO)
//    24    4 uid       the rank's effective uid (must be ours)
//    28    4 reserved  zero
//    32   16 boot_id   /proc/sys/kernel/random/boot_id: same host
//    48   80 path      the unix socket, NUL-terminated and NUL-padded
#ifndef GASP_TRANSPORT_SHM_WIRE_H_
#define GASP_TRANSPORT_SHM_WIRE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace shm {

inline constexpr uint16_t kRecordMagic = 0x5253;  // bytes "SR"
inline constexpr uint8_t kShmWireVersion = 1;
inline constexpr size_t kRecordHeaderSize = 56;
// Largest payload of one record: READ/WRITE and messages are cut into
// chunks of at most this size, so every record fits a ring many times.
inline constexpr uint32_t kMaxChunkBytes = 64u << 10;
// Largest READ/WRITE (Capabilities::max_op_bytes).
inline constexpr uint64_t kMaxOpBytes = uint64_t{1} << 30;

enum class RecordType : uint8_t {
  kReadReq = 1,
  kReadResp = 2,    // payload: the bytes read (only on success)
  kWriteReq = 3,    // payload: the bytes to write
  kWriteResp = 4,
  kCasReq = 5,
  kFaaReq = 6,
  kAtomicResp = 7,  // span: the old value
  kMsg = 8,         // one chunk of a two-sided message
};

// "READ_REQ", ...; "UNKNOWN" for other values.
const char* RecordTypeName(RecordType type);

// True for the records that travel from requester to target.
inline bool IsRequest(RecordType t) {
  return t == RecordType::kReadReq || t == RecordType::kWriteReq || t == RecordType::kCasReq ||
         t == RecordType::kFaaReq || t == RecordType::kMsg;
}

struct RecordHeader {
  RecordType type = RecordType::kReadReq;
  uint8_t status = 0;
  uint32_t length = 0;
  uint32_t tag = 0;
  uint64_t req_id = 0;
  uint64_t addr = 0;
  uint64_t rkey = 0;
  uint64_t span = 0;
  uint64_t aux = 0;

  friend bool operator==(const RecordHeader& a, const RecordHeader& b);
};

// Bytes a record with `payload` bytes takes in a ring (header + payload,
// padded to 8).
inline uint64_t RecordBytes(uint64_t payload) {
  return kRecordHeaderSize + ((payload + 7) & ~uint64_t{7});
}

// Writes `h` (exactly kRecordHeaderSize bytes). Does not validate.
void EncodeRecord(const RecordHeader& h, uint8_t out[kRecordHeaderSize]);

// Decodes and validates a header. Errors: InvalidArgument when fewer than
// kRecordHeaderSize bytes are given; DataLoss naming the field and value
// for a wrong magic or version, an unknown type or status, a status on a
// request, non-zero reserved or unused fields, a payload over
// kMaxChunkBytes or on a type that carries none, a READ chunk over
// kMaxChunkBytes or beyond its span, a span over kMaxOpBytes (READ/WRITE)
// or kMaxMessageBytes (MSG), a MSG chunk beyond its message, or a
// misaligned atomic address.
absl::StatusOr<RecordHeader> DecodeRecord(absl::Span<const uint8_t> bytes);

// ---------------------------------------------------------------------------
// Endpoint blob

inline constexpr uint16_t kShmBlobVersion = 1;
inline constexpr size_t kBootIdBytes = 16;
inline constexpr size_t kBlobPathBytes = 80;  // path + NUL at most

struct ShmEndpoint {
  uint32_t pid = 0;
  uint32_t rank = 0;
  uint64_t nonce = 0;
  uint32_t uid = 0;
  std::array<uint8_t, kBootIdBytes> boot_id{};
  std::string path;  // at most kBlobPathBytes - 1 characters

  friend bool operator==(const ShmEndpoint& a, const ShmEndpoint& b);
};

// REQUIRES: endpoint.path.size() < kBlobPathBytes.
EndpointBlob EncodeShmEndpoint(const ShmEndpoint& endpoint);

// Validates and decodes a blob. Errors (InvalidArgument) as
// tcp::CheckBlobPrefix for the prefix, and for an empty, relative or
// unterminated path, a zero nonce or non-zero reserved bytes.
absl::StatusOr<ShmEndpoint> DecodeShmEndpoint(const EndpointBlob& blob);

}  // namespace shm
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_SHM_WIRE_H_

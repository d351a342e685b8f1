// Wire format of the TCP rendezvous (boot/coordinator.h). Pure functions,
// no I/O: everything here is a decoder of untrusted network bytes and is
// fuzzed (boot/coordinator_wire_fuzzer.cc).
//
// Frame = 12-byte header + payload. The header is hand-coded, little-endian:
//   u32 magic "GSPC" (0x43505347)   u16 protocol version   u16 type   u32 payload length
// so that a stream can be cut into frames, and a stranger (an HTTP probe, a
// port scanner) refused, before any payload is parsed. The payload is the
// protobuf message of boot/coordinator.proto that the type names.
//
// Compatibility: the header and the ERROR payload (u32 code, u32 length,
// message bytes; little-endian, as in every protocol version) never change,
// so a coordinator can always explain a version mismatch to an older or
// newer rank; it reads the version from the header before it parses the
// HELLO.
#ifndef GASP_BOOT_COORDINATOR_WIRE_H_
#define GASP_BOOT_COORDINATOR_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "boot/coordinator.pb.h"

namespace gasp {
namespace boot {
namespace wire {

inline constexpr uint32_t kMagic = 0x43505347;  // "GSPC" in little-endian bytes
inline constexpr uint16_t kProtocolVersion = 3;  // 2: HELLO carries a proof; 3: protobuf payloads
inline constexpr size_t kHeaderBytes = 12;

// Frames a rank may send to the coordinator (bounded by the largest blob).
inline constexpr size_t kMaxBlobBytes = size_t{1} << 20;
inline constexpr size_t kMaxClientPayload = kMaxBlobBytes + 64;
// Frames the coordinator sends (an allgather result holds every rank's blob).
inline constexpr size_t kMaxServerPayload = size_t{256} << 20;
// Strings: host names, job ids, messages.
inline constexpr size_t kMaxStringBytes = 4096;
// Largest job the coordinator accepts.
inline constexpr int32_t kMaxRanks = 1 << 24;

enum class MsgType : uint16_t {
  kHello = 1,            // rank -> coordinator, first frame
  kWelcome = 2,          // coordinator -> rank, HELLO accepted
  kError = 3,            // coordinator -> rank, refusal; connection closes
  kAllgather = 4,        // rank -> coordinator
  kAllgatherResult = 5,  // coordinator -> every rank
  kAllgatherFail = 6,    // coordinator -> contributors: timeout, death, misuse
  kAbort = 7,            // both ways: a rank ends the job
  kRankDied = 8,         // coordinator -> ranks: a rank left without FINALIZE
  kFinalize = 9,         // rank -> coordinator: clean leave
  kFinalizeAck = 10,     // coordinator -> rank
};

// Name for logs ("HELLO"); "type 77" for unknown values.
std::string MsgTypeName(uint16_t type);

// One decoded frame: header fields and the raw payload.
struct Frame {
  uint16_t version = kProtocolVersion;
  uint16_t type = 0;
  std::string payload;
};

// Header + payload bytes of a frame.
std::string EncodeFrame(uint16_t type, absl::string_view payload,
                        uint16_t version = kProtocolVersion);

// Decodes the frame at the front of `bytes`. Returns nullopt (and sets
// *consumed = 0) when more bytes are needed; a Frame with *consumed = its
// full length when complete; InvalidArgument on a bad magic or a payload
// longer than `max_payload` (the stream is then unusable). Any version and
// type are returned as they are: callers decide what they accept.
absl::StatusOr<std::optional<Frame>> DecodeFrame(absl::string_view bytes, size_t max_payload,
                                                 size_t* consumed);

// ---- Payloads: the messages of boot/coordinator.proto. Encode with
// SerializeAsString(); the Decode functions parse untrusted bytes and then
// check what protobuf cannot (lengths, counts, enum values), so that a
// decoded message is always safe to use and to quote in messages.

// HMAC-SHA256 with the job secret over the fields of `m` that this
// protocol version defines, except the proof (field by field,
// length-prefixed: independent of protobuf's encoding). A later version
// that adds fields must add them here.
std::string HelloProof(absl::Span<const uint8_t> secret, const Hello& m);

absl::StatusOr<Hello> DecodeHello(absl::string_view payload);
absl::StatusOr<Welcome> DecodeWelcome(absl::string_view payload);

absl::StatusOr<Allgather> DecodeAllgather(absl::string_view payload);
absl::StatusOr<AllgatherResult> DecodeAllgatherResult(absl::string_view payload);
absl::StatusOr<AllgatherFail> DecodeAllgatherFail(absl::string_view payload);
absl::StatusOr<Abort> DecodeAbort(absl::string_view payload);
absl::StatusOr<RankDied> DecodeRankDied(absl::string_view payload);

// The absl::StatusCode a refusal or failed round carries; kUnknown for 0
// (a failure cannot be OK) and for values this build does not know.
absl::StatusCode ErrorCode(uint32_t code);

// "allgather" / "barrier"; "collective" for unknown values.
const char* CollectiveName(CollectiveKind kind);

// ERROR: the coordinator refuses the connection (then closes it). Frozen
// hand-coded layout, the same in every protocol version.
struct Error {
  uint32_t code = 0;  // absl::StatusCode
  std::string message;
};
std::string EncodeError(const Error& m);
absl::StatusOr<Error> DecodeError(absl::string_view payload);

// FINALIZE and FINALIZE_ACK have empty payloads.
absl::Status DecodeEmpty(absl::string_view payload, uint16_t type);

}  // namespace wire
}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_COORDINATOR_WIRE_H_

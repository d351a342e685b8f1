// Wire format of the TCP rendezvous (boot/coordinator.h). Pure functions,
// no I/O: everything here is a decoder of untrusted network bytes and is
// fuzzed (boot/coordinator_wire_fuzzer.cc).
//
// Frame = 12-byte header + payload, all integers little-endian:
//   u32 magic "GSPC" (0x43505347)   u16 frame version   u16 type   u32 payload length
// Strings and blobs inside payloads are u32 length + bytes. Every decoder
// refuses truncated input, trailing bytes, lengths beyond the remaining
// bytes, and counts that could not fit in the payload.
//
// Compatibility: the header and the ERROR payload never change, so a
// coordinator can always explain a version mismatch to an older or newer
// rank. HELLO starts with the protocol version so that the coordinator can
// refuse a rank of another build before reading the rest.
#ifndef GASP_BOOT_COORDINATOR_WIRE_H_
#define GASP_BOOT_COORDINATOR_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace gasp {
namespace boot {
namespace wire {

inline constexpr uint32_t kMagic = 0x43505347;  // "GSPC" in little-endian bytes
inline constexpr uint16_t kProtocolVersion = 2;  // 2: HELLO carries a proof
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

// ---- Payloads. Encode never fails; Decode validates everything. ----

// HELLO, the first frame of a rank: who it is and which job it belongs to.
struct Hello {
  uint16_t protocol_version = kProtocolVersion;
  int32_t rank = -1;
  int32_t size = 0;
  int32_t pid = 0;
  int64_t timeout_ms = 0;  // the rank's GASP_TIMEOUT, quoted in messages
  std::string job_id;
  std::string host;
  // HelloProof() with the job secret when the launcher gave the rank one
  // (gasprun), else empty; a coordinator that knows the secret admits only
  // HELLOs with the right proof.
  std::string proof;
};
std::string EncodeHello(const Hello& m);
absl::StatusOr<Hello> DecodeHello(absl::string_view payload);

// HMAC-SHA256 with the job secret over every other field of `m`.
std::string HelloProof(absl::Span<const uint8_t> secret, const Hello& m);

// First field of a HELLO payload of any version (for a precise refusal).
absl::StatusOr<uint16_t> PeekHelloVersion(absl::string_view payload);

// WELCOME: HELLO accepted.
struct Welcome {
  int32_t size = 0;
  std::string owner;  // who runs the coordinator: "gasprun (vm:1234)", "rank 0 (vm:1234)"
};
std::string EncodeWelcome(const Welcome& m);
absl::StatusOr<Welcome> DecodeWelcome(absl::string_view payload);

// ERROR: the coordinator refuses the connection (then closes it). Frozen
// layout (see above).
struct Error {
  uint32_t code = 0;  // absl::StatusCode
  std::string message;
};
std::string EncodeError(const Error& m);
absl::StatusOr<Error> DecodeError(absl::string_view payload);

enum class CollectiveKind : uint8_t { kAllgather = 0, kBarrier = 1 };
// "allgather" / "barrier"; "collective" for unknown values.
const char* CollectiveName(CollectiveKind kind);

// ALLGATHER / BARRIER contribution of one rank to round `seq`.
struct Allgather {
  uint64_t seq = 0;
  CollectiveKind kind = CollectiveKind::kAllgather;  // for messages only
  int64_t wait_ms = 0;  // time the rank still waits; the coordinator fails the round then
  std::string blob;
};
std::string EncodeAllgather(const Allgather& m);
absl::StatusOr<Allgather> DecodeAllgather(absl::string_view payload);

// Every rank's contribution to round `seq`.
struct AllgatherResult {
  uint64_t seq = 0;
  std::vector<std::string> blobs;  // indexed by rank
};
std::string EncodeAllgatherResult(const AllgatherResult& m);
absl::StatusOr<AllgatherResult> DecodeAllgatherResult(absl::string_view payload);

// Round `seq` cannot complete; `message` names the ranks and the cause.
struct AllgatherFail {
  uint64_t seq = 0;
  uint32_t code = 0;             // absl::StatusCode for the caller
  std::vector<int32_t> missing;  // ranks that did not contribute
  std::string message;
};
std::string EncodeAllgatherFail(const AllgatherFail& m);
absl::StatusOr<AllgatherFail> DecodeAllgatherFail(absl::string_view payload);

// ABORT: from a rank (which then exits), relayed to every other rank.
struct Abort {
  int32_t rank = -1;  // rank that aborts
  int32_t code = 1;   // its exit code
  std::string host;
  int32_t pid = 0;
  std::string message;
};
std::string EncodeAbort(const Abort& m);
absl::StatusOr<Abort> DecodeAbort(absl::string_view payload);

// RANK_DIED: a rank left without FINALIZE (crash, kill, exit).
struct RankDied {
  int32_t rank = -1;
  int32_t pid = 0;
  std::string host;
  std::string reason;  // full sentence: "rank 1 (vm:1234) was killed by signal 9 (Killed)"
};
std::string EncodeRankDied(const RankDied& m);
absl::StatusOr<RankDied> DecodeRankDied(absl::string_view payload);

// FINALIZE and FINALIZE_ACK have empty payloads.
absl::Status DecodeEmpty(absl::string_view payload, uint16_t type);

}  // namespace wire
}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_COORDINATOR_WIRE_H_

// The fixed-size record every rank publishes at init (identity + how the
// transport reaches it), and its exchange over the bootstrap.
//
// Encoding: 240 bytes, explicitly little-endian, field by field (never a
// struct cast), in declaration order:
//   u32 magic  u16 version  u16 record_bytes  i32 rank  i32 pid
//   char host[64] (NUL-terminated, NUL-padded)  u8 transport_blob[128]
//   u64 extra[4]
// A rank built from another gasp (other magic, version or size) is refused
// by name, so that mixed builds fail at init rather than misbehave later.
#ifndef GASP_BOOT_ENDPOINT_EXCHANGE_H_
#define GASP_BOOT_ENDPOINT_EXCHANGE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boot/bootstrap.h"

namespace gasp {
namespace boot {

inline constexpr uint32_t kRankRecordMagic = 0x52505347;  // "GSPR" in little-endian bytes
inline constexpr uint16_t kRankRecordVersion = 1;
inline constexpr size_t kRankRecordHostBytes = 64;
inline constexpr size_t kRankRecordBlobBytes = 128;  // == transport::kEndpointBlobSize
inline constexpr size_t kRankRecordBytes =
    4 + 2 + 2 + 4 + 4 + kRankRecordHostBytes + kRankRecordBlobBytes + 4 * 8;  // 240

// One rank's record. In memory only; the wire form is EncodeRankRecord's.
struct RankRecord {
  uint32_t magic = kRankRecordMagic;
  uint16_t version = kRankRecordVersion;
  uint16_t record_bytes = kRankRecordBytes;
  int32_t rank = -1;
  int32_t pid = 0;
  char host[kRankRecordHostBytes] = {};  // always NUL-terminated after decoding
  uint8_t transport_blob[kRankRecordBlobBytes] = {};
  uint64_t extra[4] = {};  // reserved for later fields of this version; zero now
};

// Record for this process: magic/version/size set, `rank`, getpid(), the
// short host name (truncated to 63 bytes), `blob` copied (at most 128
// bytes, zero-padded).
RankRecord MakeRankRecord(int rank, absl::string_view transport_blob);

// The 240-byte wire form of `r` (magic, version and record_bytes are
// written as they are in `r`; the host is written NUL-padded and always
// NUL-terminated).
std::string EncodeRankRecord(const RankRecord& r);

// Decodes and validates untrusted bytes: magic, version, record_bytes ==
// input size == kRankRecordBytes, a NUL-terminated host, rank >= 0. Errors
// are FailedPrecondition for another build (magic/version/size: the message
// says to rebuild every rank from the same gasp) and InvalidArgument for
// corrupt content.
absl::StatusOr<RankRecord> DecodeRankRecord(absl::string_view bytes);

// Allgathers `mine` over `bootstrap` and returns every rank's record,
// indexed by rank. Refuses, with a FailedPrecondition error naming the
// rank, its host when known and both versions ("rebuild every rank from
// the same gasp"), any record of another magic, version or size, and any
// record that claims another rank than its position. `mine.rank` must be
// bootstrap.rank().
absl::StatusOr<std::vector<RankRecord>> ExchangeRecords(Bootstrap& bootstrap,
                                                        const RankRecord& mine,
                                                        absl::Time deadline);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_ENDPOINT_EXCHANGE_H_

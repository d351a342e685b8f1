// The record every rank publishes at init (identity + how the transport
// reaches it, boot/rank_record.proto), and its exchange over the bootstrap.
// A rank built from another gasp (other magic or version) is refused by
// name, so that mixed builds fail at init rather than misbehave later.
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
#include "boot/rank_record.pb.h"

namespace gasp {
namespace boot {

inline constexpr uint32_t kRankRecordMagic = 0x52505347;  // "GSPR" in little-endian bytes
inline constexpr uint32_t kRankRecordVersion = 2;          // 2: protobuf
inline constexpr size_t kRankRecordHostBytes = 63;
inline constexpr size_t kRankRecordBlobBytes = 128;  // == transport::kEndpointBlobSize
// Largest record accepted: every field of version 2 at its limit takes
// about 275 bytes; the rest leaves room for fields a later build adds.
inline constexpr size_t kMaxRankRecordBytes = 512;

// Record for this process: magic and version set, `rank`, getpid(), the
// short host name (truncated to 63 bytes), `transport_blob` (truncated to
// 128 bytes). The caller fills in the address-space fields.
RankRecord MakeRankRecord(int rank, absl::string_view transport_blob);

// Decodes and validates untrusted bytes. FailedPrecondition for bytes of
// another build (not a record, other magic or version: the message says to
// rebuild every rank from the same gasp); InvalidArgument for corrupt
// content (negative rank, a host name too long or unprintable, a transport
// blob too long).
absl::StatusOr<RankRecord> DecodeRankRecord(absl::string_view bytes);

// Allgathers `mine` over `bootstrap` and returns every rank's record,
// indexed by rank. Refuses, with a FailedPrecondition error naming the
// rank, its host when known and both versions ("rebuild every rank from
// the same gasp"), any record of another magic or version, and any
// record that claims another rank than its position. `mine.rank()` must be
// bootstrap.rank().
absl::StatusOr<std::vector<RankRecord>> ExchangeRecords(Bootstrap& bootstrap,
                                                        const RankRecord& mine,
                                                        absl::Time deadline);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_ENDPOINT_EXCHANGE_H_

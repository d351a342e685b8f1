// Collective-call checking: every collective call (allocation, domain
// creation and grants, barrier, finalize) advances a per-rank sequence
// number and a running signature over the calls' descriptions. The stamp
// rides on the next synchronization's messages (barrier rounds, allgather),
// so checking costs no extra round trip; a rank whose stamp differs from its
// peer's stops the job with both calls named:
//   rank 1 (host:pid) called CoAlloc(4096 bytes, block) where this rank
//   (rank 0) called CoAlloc(8192 bytes, block) (collective #7)
#ifndef GASP_CONSISTENCY_COLLECTIVE_H_
#define GASP_CONSISTENCY_COLLECTIVE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace gasp {
namespace consistency {

// Longest description carried (longer ones are cut).
inline constexpr size_t kMaxCollectiveDesc = 120;

struct CollectiveStamp {
  uint64_t seq = 0;   // collective calls made so far
  uint64_t hash = 0;  // running signature of all of them, in order
  std::string last;   // description of the latest one

  // Records one more call.
  void Note(const std::string& description);
};

// Wire form: u64 seq, u64 hash, u8 length, that many bytes of text.
void AppendStamp(const CollectiveStamp& stamp, std::vector<uint8_t>* out);
// Decodes a stamp at the start of `bytes`; returns the bytes it took.
// InvalidArgument if truncated, over-long, or not printable ASCII.
absl::StatusOr<size_t> DecodeStamp(absl::Span<const uint8_t> bytes, CollectiveStamp* out);

// OK if the stamps agree, else FailedPrecondition with both calls named
// (`peer` describes the other rank, `rank` is this one).
absl::Status CompareStamps(const CollectiveStamp& mine, const CollectiveStamp& theirs, int rank,
                           const std::string& peer);

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_COLLECTIVE_H_

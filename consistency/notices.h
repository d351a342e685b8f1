// Write notices: which pages a rank wrote home since some point, so that
// an acquire invalidates only the pages that can be stale.
//
// Two carriers, both decoded from bytes other ranks sent (fuzzed by
// //consistency:notices_fuzz_test):
//   * barrier messages: each dissemination round carries the notices of
//     every rank the sender has heard from in this barrier (one
//     contribution per origin rank), so every rank ends with all of them;
//   * the notice log: fixed-size entries that releases append at the log's
//     home with FETCH_ADD + WRITE, and acquires read with one READ (see
//     docs/protocol.md, "Write notices").
#ifndef GASP_CONSISTENCY_NOTICES_H_
#define GASP_CONSISTENCY_NOTICES_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "consistency/collective.h"

namespace gasp {
namespace consistency {

// Consecutive pages [first, first + count) of the global range.
struct PageRun {
  uint64_t first = 0;
  uint64_t count = 0;
  friend bool operator==(const PageRun& a, const PageRun& b) {
    return a.first == b.first && a.count == b.count;
  }
};

// Appends `page` to `runs`, extending the last run when `page` follows it.
// Pages must come in ascending order for runs to merge.
void AppendPage(uint64_t page, std::vector<PageRun>* runs);

// The notices of one origin rank, and its values for a reduction carried
// by the same barrier (gasp::Allreduce; empty for a plain barrier).
struct Contribution {
  int origin = 0;
  std::vector<PageRun> runs;
  std::vector<double> values;
};

// Values one rank may contribute to a barrier's reduction.
inline constexpr size_t kMaxReduceValues = 64;

// One dissemination round of a barrier.
struct BarrierMessage {
  uint64_t epoch = 0;    // barrier number (both sides must agree)
  uint32_t distance = 0; // dissemination distance of the round
  CollectiveStamp stamp; // the sender's collective calls so far
  std::vector<Contribution> contributions;
};

// Wire form: little-endian u64 epoch, u32 distance, u32 contributions, the
// collective stamp (consistency/collective.h); each contribution u32
// origin, u32 runs, u32 values, then runs as u64 first, u64 count, then
// values as IEEE-754 doubles.
std::vector<uint8_t> EncodeBarrierMessage(const BarrierMessage& m);

// Strict decoder: InvalidArgument (naming the defect) for a truncated or
// oversized message, an origin outside [0, nranks), an origin given twice,
// an empty run, a run that leaves [0, num_pages), or more than
// kMaxReduceValues values. Nothing is returned on error.
absl::StatusOr<BarrierMessage> DecodeBarrierMessage(absl::Span<const uint8_t> bytes, int nranks,
                                                    uint64_t num_pages);

// Sorts `runs` and merges the ones that overlap or touch.
void MergeRuns(std::vector<PageRun>* runs);
// Appends to `out` the pages of `runs` that are not in `minus` (both
// sorted by first page, `minus` merged).
void SubtractRuns(absl::Span<const PageRun> runs, absl::Span<const PageRun> minus,
                  std::vector<PageRun>* out);
// Runs over all of `contributions`.
size_t CountRuns(absl::Span<const Contribution> contributions);

// Notices a function-shipped call carries instead of publishing them to the
// notice log before it (docs/protocol.md, "Notices carried by calls"): the
// sender's own and those it relays, one contribution per origin rank,
// without reduction values. At most kMaxCarriedRuns runs in all (a sender
// with more publishes them to the log instead).
inline constexpr size_t kMaxCarriedRuns = 1024;
// Wire form: nothing at all when there are no contributions; else
// little-endian u32 contributions, then each u32 origin, u32 runs, runs as
// u64 first, u64 count.
std::vector<uint8_t> EncodeCarriedNotices(absl::Span<const Contribution> contributions);
// Strict decoder: InvalidArgument (naming the defect) for truncated or
// trailing bytes, an origin outside [0, nranks) or given twice, an empty
// contribution or run, a run outside [0, num_pages), or more than
// kMaxCarriedRuns runs. Nothing is returned on error.
absl::StatusOr<std::vector<Contribution>> DecodeCarriedNotices(absl::Span<const uint8_t> bytes,
                                                                int nranks, uint64_t num_pages);

// One entry of the notice log (24 bytes). `check` binds the other two
// words, so that an entry read while it was being written (a torn read of a
// concurrent release) is recognized as not yet written. The lap is the
// number of times the ring had wrapped when the entry's slot was reserved,
// so that an entry left from an earlier lap is not taken for a new one.
struct LogEntry {
  uint64_t tag = 0;    // (lap << 32) | origin
  uint64_t run = 0;    // (first << 20) | count, 0 < count < 2^20
  uint64_t check = 0;  // Mix(tag, run) | 1
};
static_assert(sizeof(LogEntry) == 24, "log entries are 24 bytes on the wire");
inline constexpr uint64_t kMaxLogRunPages = (uint64_t{1} << 20) - 1;
inline constexpr uint64_t kMaxLogFirstPage = (uint64_t{1} << 44) - 1;

// Unsealed entries for `runs` of `origin` (long runs are split).
// REQUIRES: every page < 2^44.
void AppendLogEntries(int origin, absl::Span<const PageRun> runs, std::vector<LogEntry>* out);

// Stamps an entry with the lap of the slot it goes to and its check word.
void SealLogEntry(uint64_t lap, LogEntry* e);

// What an entry read back from a slot of lap `lap` says: kValid (origin
// and run filled in), kNotYet (not written in this lap yet, overwritten by
// a later lap, or torn), or kCorrupt (a valid check over values no rank
// could have written: origin or pages out of range).
enum class EntryState { kValid, kNotYet, kCorrupt };
EntryState DecodeLogEntry(const LogEntry& e, uint64_t lap, int nranks, uint64_t num_pages,
                          int* origin, PageRun* run);

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_NOTICES_H_

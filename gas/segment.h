// Segments: allocation extents of the global range, each with a home
// policy that says which rank keeps the home copy of each of its pages.
//
// The table is append-only and lock-free for readers: the SIGSEGV path looks
// segments up without locks or allocation while other threads append.
#ifndef GASP_GAS_SEGMENT_H_
#define GASP_GAS_SEGMENT_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "gas/range.h"

namespace gasp {
namespace gas {

enum class HomePolicy : uint8_t {
  kBlock,     // pages split into size() contiguous shares, rank 0 first
  kCyclic,    // blocks of block_pages dealt round-robin over ranks
  kExplicit,  // every page at home_rank
  kFirstTouch,  // the first rank to write a page (decided at run time, see touch)
};

// First-touch directory word of a page (one 8-byte word per page in a
// collective allocation): the home rank + 1 in the low 32 bits (0: nobody
// has written the page yet); the other bits are zero.
inline constexpr uint64_t kTouchHomeMask = 0xffffffffu;

const char* HomePolicyName(HomePolicy policy);

struct Segment {
  uint64_t offset = 0;     // from the range base, page aligned
  uint64_t num_pages = 0;
  HomePolicy policy = HomePolicy::kBlock;
  int home_rank = 0;       // kExplicit
  uint32_t block_pages = 1;  // kCyclic
  int nranks = 1;
  // Packed remote key of each rank's registration of its home pages of this
  // segment (index = rank; 0 where a rank has none). Owned by the runtime,
  // immutable once the segment is in the table.
  const uint64_t* rkeys = nullptr;
  // Protection domain of the segment's pages (0: the default domain, open
  // to every thread). Enforced by protect/; the DSM only caps its own page
  // protections with it (Coherence::SetProtCap).
  int domain = 0;
  // Number of the collective call that allocated it (0: not collective),
  // and the bytes asked for, for error messages.
  uint64_t collective_seq = 0;
  uint64_t requested_bytes = 0;
  // kFirstTouch: the global address of the directory (one word per page,
  // kTouch* above) and this rank's knowledge of it, per page: the home rank,
  // or -1 while unknown here. Owned by the runtime; homes, once set, never
  // change.
  uint64_t touch_dir = 0;
  std::atomic<int32_t>* touch = nullptr;

  uint64_t end_offset() const { return offset + (num_pages << kPageShift); }

  // Home rank of the page at `page` (index within the range); -1 for a
  // first-touch page whose home this rank does not know yet.
  int HomeOfPage(uint64_t page) const {
    uint64_t i = page - (offset >> kPageShift);
    switch (policy) {
      case HomePolicy::kFirstTouch:
        return touch[i].load(std::memory_order_acquire);
      case HomePolicy::kExplicit:
        return home_rank;
      case HomePolicy::kCyclic:
        return static_cast<int>((i / block_pages) % static_cast<uint64_t>(nranks));
      case HomePolicy::kBlock: {
        uint64_t share = (num_pages + nranks - 1) / nranks;
        return static_cast<int>(i / share);
      }
    }
    return 0;
  }

  // Number of pages from `page` on (within the segment) with the same home
  // (first touch: the same known home, counted up to kMaxTouchRun pages).
  uint64_t SameHomeRun(uint64_t page) const;
  static constexpr uint64_t kMaxTouchRun = 1024;

  // Calls fn(first_page, count) for every run of pages homed at `rank`
  // (page indices within the range; first touch: the homes known here).
  template <typename Fn>
  void ForEachHomeRun(int rank, Fn fn) const {
    uint64_t first = offset >> kPageShift, end = first + num_pages;
    for (uint64_t p = first; p < end;) {
      uint64_t run = SameHomeRun(p);
      if (HomeOfPage(p) == rank) fn(p, run);
      p += run;
    }
  }
};

// Append-only table of segments; capacity fixed at construction.
class SegmentTable {
 public:
  explicit SegmentTable(size_t capacity);
  ~SegmentTable();
  SegmentTable(const SegmentTable&) = delete;
  SegmentTable& operator=(const SegmentTable&) = delete;

  // Adds a segment. Segments must not overlap. Not thread-safe against
  // other Add calls (the runtime serializes them); safe against Find.
  absl::StatusOr<const Segment*> Add(const Segment& segment);

  // The segment containing range page `page`, or nullptr. Lock-free,
  // async-signal-safe.
  const Segment* FindPage(uint64_t page) const;

  size_t count() const { return count_.load(std::memory_order_acquire); }
  const Segment& at(size_t i) const { return slots_[i]; }

 private:
  Segment* slots_;
  size_t capacity_;
  std::atomic<size_t> count_{0};
};

}  // namespace gas
}  // namespace gasp

#endif  // GASP_GAS_SEGMENT_H_

#include "gas/segment.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace gasp {
namespace gas {

const char* HomePolicyName(HomePolicy policy) {
  switch (policy) {
    case HomePolicy::kBlock: return "block";
    case HomePolicy::kCyclic: return "cyclic";
    case HomePolicy::kExplicit: return "explicit";
    case HomePolicy::kFirstTouch: return "first touch";
  }
  return "?";
}

uint64_t Segment::SameHomeRun(uint64_t page) const {
  uint64_t first = offset >> kPageShift;
  uint64_t end = first + num_pages;
  uint64_t i = page - first;
  uint64_t run_end = end;
  switch (policy) {
    case HomePolicy::kExplicit:
      break;
    case HomePolicy::kFirstTouch: {
      const int home = touch[i].load(std::memory_order_acquire);
      uint64_t j = i + 1;
      while (j < num_pages && j - i < kMaxTouchRun &&
             touch[j].load(std::memory_order_acquire) == home) {
        ++j;
      }
      run_end = first + j;
      break;
    }
    case HomePolicy::kCyclic:
      run_end = first + (i / block_pages + 1) * block_pages;
      break;
    case HomePolicy::kBlock: {
      uint64_t share = (num_pages + nranks - 1) / nranks;
      run_end = first + (i / share + 1) * share;
      break;
    }
  }
  return std::min(run_end, end) - page;
}

SegmentTable::SegmentTable(size_t capacity)
    : slots_(new Segment[capacity]), capacity_(capacity) {}

SegmentTable::~SegmentTable() { delete[] slots_; }

absl::StatusOr<const Segment*> SegmentTable::Add(const Segment& segment) {
  size_t n = count_.load(std::memory_order_relaxed);
  if (n == capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("too many global segments (%d); allocate fewer, larger arrays", n));
  }
  for (size_t i = 0; i < n; ++i) {
    const Segment& s = slots_[i];
    if (segment.offset < s.end_offset() && s.offset < segment.end_offset()) {
      return absl::InternalError("overlapping global segments");
    }
  }
  slots_[n] = segment;
  count_.store(n + 1, std::memory_order_release);
  return &slots_[n];
}

const Segment* SegmentTable::FindPage(uint64_t page) const {
  size_t n = count_.load(std::memory_order_acquire);
  uint64_t off = page << kPageShift;
  // Linear scan from the newest: few segments in practice, and the table is
  // unsorted (heaps at the top, collective segments growing from the bottom).
  for (size_t i = n; i-- > 0;) {
    const Segment& s = slots_[i];
    if (off >= s.offset && off < s.end_offset()) return &s;
  }
  return nullptr;
}

}  // namespace gas
}  // namespace gasp

// Per-page coherence state and page sets, shared by the fault path and the
// release/acquire paths. Everything here is lock-free and async-signal-safe.
#ifndef GASP_CONSISTENCY_PAGE_STATE_H_
#define GASP_CONSISTENCY_PAGE_STATE_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"

namespace gasp {
namespace consistency {

// State word of one page (32 bits so threads can futex-wait on it):
//   bits 0-1  kInvalid / kRead / kWrite / kHome
//   bit  2    busy: a thread is changing the page; others wait
//   bit  3    with kHome: open (writable); a home page is closed (read-only)
//             from the moment its write notice is taken until the next write
//             faults it open, so that every write to it is noticed
//   bits 8-31 twin slot + 1 while kWrite (0: none)
enum PageState : uint32_t { kInvalid = 0, kRead = 1, kWrite = 2, kHome = 3 };
inline constexpr uint32_t kStateMask = 3;
inline constexpr uint32_t kBusy = 4;
inline constexpr uint32_t kHomeOpen = 8;
inline constexpr int kTwinShift = 8;

inline uint32_t StateOf(uint32_t word) { return word & kStateMask; }
inline bool IsBusy(uint32_t word) { return (word & kBusy) != 0; }
inline uint32_t TwinOf(uint32_t word) { return word >> kTwinShift; }  // slot + 1
inline uint32_t MakeWord(PageState s, uint32_t twin_plus_one = 0) {
  return static_cast<uint32_t>(s) | (twin_plus_one << kTwinShift);
}

// A large sparse array mapped with MAP_NORESERVE (memory used only where
// touched), for per-page state over the whole range.
class SparseArray {
 public:
  static absl::StatusOr<SparseArray> Create(uint64_t bytes);
  SparseArray() = default;
  SparseArray(SparseArray&& o) noexcept : mem_(o.mem_), bytes_(o.bytes_) { o.mem_ = nullptr; }
  SparseArray& operator=(SparseArray&& o) noexcept;
  ~SparseArray();
  void* data() const { return mem_; }

 private:
  void* mem_ = nullptr;
  uint64_t bytes_ = 0;
};

// A set of pages: one bit per page plus a summary bit per 64-page word, so
// that walking a sparse set costs little more than its size.
class PageBitmap {
 public:
  static absl::StatusOr<PageBitmap> Create(uint64_t num_pages);

  // Returns true if the bit was newly set.
  bool Set(uint64_t page);
  // Returns true if the bit was set before.
  bool Clear(uint64_t page);
  bool Test(uint64_t page) const;

  // Calls fn(page) for each set page in [first, end), ascending. Pages set
  // concurrently may or may not be visited.
  template <typename Fn>
  void ForEach(uint64_t first, uint64_t end, Fn fn) const {
    if (first >= end) return;
    uint64_t w_first = first >> 6, w_end = (end + 63) >> 6;
    for (uint64_t s = w_first >> 6; s <= (w_end - 1) >> 6; ++s) {
      uint64_t sum = summary_[s].load(std::memory_order_acquire);
      while (sum != 0) {
        int b = __builtin_ctzll(sum);
        sum &= sum - 1;
        uint64_t w = (s << 6) + static_cast<uint64_t>(b);
        if (w < w_first || w >= w_end) continue;
        uint64_t bits = words_[w].load(std::memory_order_acquire);
        while (bits != 0) {
          int i = __builtin_ctzll(bits);
          bits &= bits - 1;
          uint64_t page = (w << 6) + static_cast<uint64_t>(i);
          if (page >= first && page < end) fn(page);
        }
      }
    }
  }

 private:
  SparseArray words_mem_;
  SparseArray summary_mem_;
  std::atomic<uint64_t>* words_ = nullptr;
  std::atomic<uint64_t>* summary_ = nullptr;
};

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_PAGE_STATE_H_

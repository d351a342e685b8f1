#include "consistency/page_state.h"

#include <sys/mman.h>

#include <cerrno>

#include "base/status.h"

namespace gasp {
namespace consistency {

absl::StatusOr<SparseArray> SparseArray::Create(uint64_t bytes) {
  bytes = (bytes + 4095) & ~uint64_t{4095};
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (m == MAP_FAILED) return ErrnoError("mapping page-state arrays", errno);
  SparseArray a;
  a.mem_ = m;
  a.bytes_ = bytes;
  return a;
}

SparseArray& SparseArray::operator=(SparseArray&& o) noexcept {
  if (this != &o) {
    if (mem_ != nullptr) munmap(mem_, bytes_);
    mem_ = o.mem_;
    bytes_ = o.bytes_;
    o.mem_ = nullptr;
  }
  return *this;
}

SparseArray::~SparseArray() {
  if (mem_ != nullptr) munmap(mem_, bytes_);
}

absl::StatusOr<PageBitmap> PageBitmap::Create(uint64_t num_pages) {
  PageBitmap b;
  uint64_t words = (num_pages + 63) / 64;
  uint64_t sums = (words + 63) / 64;
  GASP_ASSIGN_OR_RETURN(b.words_mem_, SparseArray::Create(words * 8));
  GASP_ASSIGN_OR_RETURN(b.summary_mem_, SparseArray::Create(sums * 8));
  b.words_ = static_cast<std::atomic<uint64_t>*>(b.words_mem_.data());
  b.summary_ = static_cast<std::atomic<uint64_t>*>(b.summary_mem_.data());
  return b;
}

bool PageBitmap::Set(uint64_t page) {
  uint64_t w = page >> 6, bit = uint64_t{1} << (page & 63);
  uint64_t old = words_[w].fetch_or(bit, std::memory_order_seq_cst);
  if (old == 0) summary_[w >> 6].fetch_or(uint64_t{1} << (w & 63), std::memory_order_seq_cst);
  return (old & bit) == 0;
}

bool PageBitmap::Clear(uint64_t page) {
  uint64_t w = page >> 6, bit = uint64_t{1} << (page & 63);
  uint64_t old = words_[w].fetch_and(~bit, std::memory_order_seq_cst);
  if (old == bit) {
    // The word became empty: drop its summary bit so walks skip it. A Set
    // racing with us either sees an empty word and sets the summary bit
    // itself, or is seen by the re-check below.
    const uint64_t sbit = uint64_t{1} << (w & 63);
    summary_[w >> 6].fetch_and(~sbit, std::memory_order_seq_cst);
    if (words_[w].load(std::memory_order_seq_cst) != 0) {
      summary_[w >> 6].fetch_or(sbit, std::memory_order_seq_cst);
    }
  }
  return (old & bit) != 0;
}

bool PageBitmap::Test(uint64_t page) const {
  return (words_[page >> 6].load(std::memory_order_acquire) >> (page & 63)) & 1;
}

}  // namespace consistency
}  // namespace gasp

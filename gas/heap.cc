#include "gas/heap.h"

#include <sanitizer/asan_interface.h>

#include "absl/strings/str_format.h"
#include "gas/range.h"

namespace gasp {
namespace gas {
namespace {

// Under AddressSanitizer (--config=asan) the bytes of a chunk or page run
// that no live allocation covers are poisoned, and every allocation gets a
// poisoned redzone after it, so that an overflow of gasp::Alloc memory is
// reported ("use-after-poison"). Only this rank's shadow of the app view
// is poisoned: gasp moves pages (fetches, twins, diffs, bundles) through
// the system view (gas/range.h), another address whose shadow is clean, so
// its page copies never trip; other ranks see no poison at all. Without
// ASan the macros are no-ops and the redzones are zero.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kSmallRedzone = 16;
constexpr uint64_t kPageRedzone = kPageSize;
#else
constexpr size_t kSmallRedzone = 0;
constexpr uint64_t kPageRedzone = 0;
#endif

void Poison(uint64_t addr, uint64_t bytes) {
  ASAN_POISON_MEMORY_REGION(reinterpret_cast<void*>(addr), bytes);
}

// [addr, addr+bytes) usable, the rest of the `block` bytes poisoned.
void Expose(uint64_t addr, uint64_t bytes, uint64_t block) {
  Poison(addr, block);
  ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(addr), bytes);
}

}  // namespace

HeapAllocator::HeapAllocator(uint64_t begin, uint64_t length)
    : begin_(begin), length_(length), free_small_(ClassOf(kMaxSmall) + 1) {
  absl::MutexLock lock(&mu_);
  free_extents_[begin] = length;
}

HeapAllocator::~HeapAllocator() {
  ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(begin_), length_);
}

int HeapAllocator::ClassOf(size_t bytes) {
  int c = 0;
  size_t s = kMinClass;
  while (s < bytes) {
    s <<= 1;
    ++c;
  }
  return c;
}

absl::StatusOr<uint64_t> HeapAllocator::AllocatePagesLocked(uint64_t bytes) {
  bytes = (bytes + kPageSize - 1) & ~(kPageSize - 1);
  for (auto it = free_extents_.begin(); it != free_extents_.end(); ++it) {
    if (it->second < bytes) continue;
    uint64_t addr = it->first;
    uint64_t left = it->second - bytes;
    free_extents_.erase(it);
    if (left > 0) free_extents_[addr + bytes] = left;
    return addr;
  }
  return absl::ResourceExhaustedError(absl::StrFormat(
      "this rank's global heap is full (%d of %d bytes in use, %d requested); raise "
      "GASP_HEAP_SIZE",
      allocated_, length_, bytes));
}

void HeapAllocator::FreePagesLocked(uint64_t addr, uint64_t bytes) {
  auto next = free_extents_.lower_bound(addr);
  if (next != free_extents_.end() && addr + bytes == next->first) {
    bytes += next->second;
    next = free_extents_.erase(next);
  }
  if (next != free_extents_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == addr) {
      prev->second += bytes;
      return;
    }
  }
  free_extents_[addr] = bytes;
}

absl::StatusOr<uint64_t> HeapAllocator::Allocate(size_t bytes, size_t align) {
  if (bytes == 0) bytes = 1;
  if (align == 0 || (align & (align - 1)) != 0 || align > kPageSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("alignment %d must be a power of two <= 4096", align));
  }
  absl::MutexLock lock(&mu_);
  size_t need = std::max(bytes + kSmallRedzone, align);
  if (need <= kMaxSmall) {
    int c = ClassOf(need);
    size_t cls = kMinClass << c;  // class sizes are powers of two: aligned to themselves
    auto& list = free_small_[c];
    if (list.empty()) {
      auto chunk = AllocatePagesLocked(kChunkBytes);
      if (!chunk.ok()) return chunk.status();
      Poison(*chunk, kChunkBytes);
      for (uint64_t a = *chunk + kChunkBytes; a > *chunk;) {
        a -= cls;
        list.push_back(a);
      }
    }
    uint64_t addr = list.back();
    list.pop_back();
    live_[addr] = cls;
    allocated_ += cls;
    Expose(addr, bytes, cls);
    return addr;
  }
  const uint64_t rounded = (bytes + kPageRedzone + kPageSize - 1) & ~(kPageSize - 1);
  auto addr = AllocatePagesLocked(rounded);
  if (!addr.ok()) return addr.status();
  Expose(*addr, bytes, rounded);
  live_[*addr] = rounded;
  allocated_ += rounded;
  return *addr;
}

absl::Status HeapAllocator::Free(uint64_t addr) {
  absl::MutexLock lock(&mu_);
  auto it = live_.find(addr);
  if (it == live_.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gasp::Delete(%#x): not a live allocation of this rank's heap (double free, interior "
        "pointer, or memory allocated by another rank: only the allocating rank may delete)",
        addr));
  }
  uint64_t bytes = it->second;
  live_.erase(it);
  allocated_ -= bytes;
  Poison(addr, bytes);  // use after gasp::Free is reported too
  if (bytes <= kMaxSmall) {
    free_small_[ClassOf(bytes)].push_back(addr);
  } else {
    FreePagesLocked(addr, bytes);
  }
  return absl::OkStatus();
}

uint64_t HeapAllocator::allocated_bytes() const {
  absl::MutexLock lock(&mu_);
  return allocated_;
}

}  // namespace gas
}  // namespace gasp

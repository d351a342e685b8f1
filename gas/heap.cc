#include "gas/heap.h"

#include "absl/strings/str_format.h"
#include "gas/range.h"

namespace gasp {
namespace gas {

HeapAllocator::HeapAllocator(uint64_t begin, uint64_t length)
    : begin_(begin), length_(length), free_small_(ClassOf(kMaxSmall) + 1) {
  absl::MutexLock lock(&mu_);
  free_extents_[begin] = length;
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
  size_t need = std::max(bytes, align);
  if (need <= kMaxSmall) {
    int c = ClassOf(need);
    size_t cls = kMinClass << c;  // class sizes are powers of two: aligned to themselves
    auto& list = free_small_[c];
    if (list.empty()) {
      auto chunk = AllocatePagesLocked(kChunkBytes);
      if (!chunk.ok()) return chunk.status();
      for (uint64_t a = *chunk + kChunkBytes; a > *chunk;) {
        a -= cls;
        list.push_back(a);
      }
    }
    uint64_t addr = list.back();
    list.pop_back();
    live_[addr] = cls;
    allocated_ += cls;
    return addr;
  }
  auto addr = AllocatePagesLocked(bytes);
  if (!addr.ok()) return addr.status();
  uint64_t rounded = (bytes + kPageSize - 1) & ~(kPageSize - 1);
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

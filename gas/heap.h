// Allocator for one rank's heap extent (gasp::New / gasp::Delete).
//
// All bookkeeping lives in private memory, never in the global range: a
// global page may be invalid (PROT_NONE) on this rank, and the allocator
// must never fault or touch memory other ranks may be writing.
// Thread-safe.
#ifndef GASP_GAS_HEAP_H_
#define GASP_GAS_HEAP_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace gasp {
namespace gas {

class HeapAllocator {
 public:
  // Manages [begin, begin+length) (addresses; page aligned). Under ASan,
  // memory of the extent outside live allocations is poisoned in this
  // process's shadow (heap.cc says why that is safe for gasp's page copies).
  HeapAllocator(uint64_t begin, uint64_t length);
  // Under ASan, unpoisons the whole extent again (a later runtime may map
  // something else there).
  ~HeapAllocator();

  // Returns an address aligned to `align` (power of two, <= 4096) with room
  // for `bytes`. ResourceExhausted names GASP_HEAP_SIZE when full.
  absl::StatusOr<uint64_t> Allocate(size_t bytes, size_t align);

  // Frees an address returned by Allocate. InvalidArgument for anything else
  // (double free, interior pointer, another rank's heap).
  absl::Status Free(uint64_t addr);

  // Bytes currently allocated (rounded to size classes / pages).
  uint64_t allocated_bytes() const;

  bool Contains(uint64_t addr) const { return addr - begin_ < length_; }

 private:
  static constexpr size_t kMinClass = 16;
  static constexpr size_t kMaxSmall = 2048;
  static constexpr size_t kChunkBytes = 64 * 1024;
  static int ClassOf(size_t bytes);
  absl::StatusOr<uint64_t> AllocatePagesLocked(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreePagesLocked(uint64_t addr, uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t begin_;
  const uint64_t length_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, uint64_t> free_extents_ ABSL_GUARDED_BY(mu_);  // addr -> bytes
  std::vector<std::vector<uint64_t>> free_small_ ABSL_GUARDED_BY(mu_);  // per class
  absl::flat_hash_map<uint64_t, uint64_t> live_ ABSL_GUARDED_BY(mu_);   // addr -> bytes
  uint64_t allocated_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gas
}  // namespace gasp

#endif  // GASP_GAS_HEAP_H_

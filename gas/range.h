// The global range: one virtual interval [base, base+size) at the same
// address on every rank, backed by one memfd per rank.
//
// The memfd is indexed by offset from base and mapped twice:
//   app view     at base, what the application dereferences. Home pages are
//                read-write for good; cached (non-home) pages move between
//                PROT_NONE / READ / READ|WRITE as the coherence protocol says.
//   system view  anywhere, always read-write: the transport reads and writes
//                pages here (remote reads of home pages, fetches into the
//                cache, diffs), whatever the app view's protection.
// Home pages and cached pages never share an offset, so one file serves both.
// The file is sparse: memory is used only for pages that are touched.
#ifndef GASP_GAS_RANGE_H_
#define GASP_GAS_RANGE_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace gasp {
namespace gas {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr int kPageShift = 12;

enum class Prot { kNone, kRead, kReadWrite };

class GlobalRange {
 public:
  // Reserves the range with MAP_FIXED_NOREPLACE. A collision with an
  // existing mapping is an error naming GASP_BASE / GASP_SIZE and the
  // mapping in the way; the range is never silently moved.
  // REQUIRES: base and size page-aligned.
  static absl::StatusOr<std::unique_ptr<GlobalRange>> Reserve(uint64_t base, uint64_t size);
  ~GlobalRange();

  uint64_t base() const { return base_; }
  uint64_t size() const { return size_; }
  uint64_t num_pages() const { return size_ >> kPageShift; }
  bool Contains(uintptr_t addr) const { return addr - base_ < size_; }

  // Address of `offset` in the application view / system view.
  char* app(uint64_t offset) const { return reinterpret_cast<char*>(base_ + offset); }
  char* sys(uint64_t offset) const { return sys_ + offset; }
  char* sys_base() const { return sys_; }

  // Changes the app-view protection of [offset, offset+length) (page
  // aligned). Async-signal-safe. ENOMEM (too many mappings) gets a hint to
  // raise vm.max_map_count.
  absl::Status Protect(uint64_t offset, uint64_t length, Prot prot) const;

  // Memory the backing file uses now (home pages written plus cached
  // copies): the range itself is virtual and sparse.
  uint64_t ResidentBytes() const;

  // Signal-safe variant: returns errno (0 on success).
  int ProtectRaw(uint64_t offset, uint64_t length, Prot prot) const;

 private:
  GlobalRange(uint64_t base, uint64_t size, int fd, char* sys)
      : base_(base), size_(size), fd_(fd), sys_(sys) {}
  uint64_t base_;
  uint64_t size_;
  int fd_;
  char* sys_;
};

// Describes what occupies [addr, addr+len) according to /proc/self/maps
// ("" if nothing); used to name the mapping in collision errors.
std::string DescribeMappingsAt(uint64_t addr, uint64_t len);

// True when the process runs under valgrind (RUNNING_ON_VALGRIND where
// <valgrind/valgrind.h> exists at build time, else valgrind's preload in
// LD_PRELOAD).
bool RunningOnValgrind();

// vm.max_map_count, or -1 if unreadable.
long MaxMapCount();

}  // namespace gas
}  // namespace gasp

#endif  // GASP_GAS_RANGE_H_

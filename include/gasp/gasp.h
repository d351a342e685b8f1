// gasp: one protected 64-bit global address space for the processes of an
// HPC job. This header is the whole public API.
//
//   gasp::Runtime rt = gasp::Init(&argc, &argv).value();
//   double* grid = gasp::CoNewArray<double>(n * n);   // same pointer on every rank
//   ... plain loads and stores ...
//   gasp::Barrier();                                  // release + acquire
//   return rt.Finalize();
//
// Memory model: release consistency for data-race-free programs. Writes
// become visible to another rank after the writer releases (Barrier,
// unlock, a release atomic, Release) and the reader then acquires
// (Barrier, lock, an acquire atomic, Acquire). Different ranks may write
// different bytes of one page (even of one word) between synchronizations.
//
// Threads: loads, stores, faults, locks and atomics may come from any
// number of threads of a rank. Collective calls (Init, CoAlloc, CoNew*,
// CoNewLock, Barrier, Finalize) are made by one thread per rank, in the same
// order on every rank.
//
// Errors: calls that cannot return a status end the whole job with a
// message naming the cause (like MPI_ERRORS_ARE_FATAL); Try* variants
// return absl::Status instead. Every wait is bounded by GASP_TIMEOUT.
// Settings: docs/settings.md (`gasp_info -c` prints the effective values).
#ifndef GASP_GASP_H_
#define GASP_GASP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gasp {

// Options of Init. `settings` override the environment (and the defaults),
// keyed by variable name: {{"GASP_TIMEOUT", "10s"}}.
struct InitOptions {
  std::map<std::string, std::string> settings;
};

// Handle of the initialized runtime (one per process).
class Runtime {
 public:
  int rank() const;
  int size() const;
  // Collective: releases, waits for every rank, prints GASP_STATS counters,
  // shuts the transport down. Returns 0 on success, 1 otherwise (suitable
  // as main's return value). No gasp call is allowed afterwards.
  int Finalize();
};

// Initializes the runtime: reads settings, reserves the global range at
// GASP_BASE, finds rank and size from the launcher (gasprun, mpirun, srun),
// connects the transport. Collective. Errors name the setting to change.
// `argc`/`argv` may be null; they are not modified in this release.
absl::StatusOr<Runtime> Init(int* argc, char*** argv, const InitOptions& options = {});

// This process's rank and the job size (REQUIRES: Init).
int Rank();
int Size();

// Where the home copies of an allocation's pages live.
struct Placement {
  enum class Policy { kDefault, kBlock, kCyclic, kRank };
  Policy policy = Policy::kDefault;  // kDefault: GASP_HOME_POLICY
  int rank = 0;                      // kRank: the home of every page
  uint32_t block_pages = 0;          // kCyclic: pages per block (0: GASP_CYCLIC_BLOCK_PAGES)

  static Placement Block() { return {Policy::kBlock, 0, 0}; }
  static Placement Cyclic(uint32_t block_pages = 0) { return {Policy::kCyclic, 0, block_pages}; }
  static Placement OnRank(int r) { return {Policy::kRank, r, 0}; }
};

// Collective allocation: every rank calls it with the same arguments in
// the same order and gets the same address. The memory is zero-filled,
// page-granular, and never reused. Ends the job on failure.
void* CoAlloc(size_t bytes, Placement placement = {});
absl::StatusOr<void*> TryCoAlloc(size_t bytes, Placement placement = {});

// Collective array of n zero-initialized T (T must be implicit-lifetime:
// trivially default constructible and destructible).
template <typename T>
T* CoNewArray(size_t n, Placement placement = {}) {
  static_assert(std::is_trivially_default_constructible<T>::value &&
                    std::is_trivially_destructible<T>::value,
                "CoNewArray<T>: T must be trivially constructible (memory is zero-filled)");
  return static_cast<T*>(CoAlloc(n * sizeof(T), placement));
}

// Collective single object, constructed by rank 0 with `args`, visible to
// every rank on return (a Barrier is included).
void Barrier();
template <typename T, typename... Args>
T* CoNew(Args&&... args) {
  void* p = CoAlloc(sizeof(T), Placement::OnRank(0));
  if (Rank() == 0) new (p) T(std::forward<Args>(args)...);
  Barrier();
  return static_cast<T*>(p);
}

// Per-rank allocation from this rank's heap (homed here, GASP_HEAP_SIZE).
// Any rank may read or write it; only this rank may free it.
void* Alloc(size_t bytes, size_t align = alignof(std::max_align_t));
absl::StatusOr<void*> TryAlloc(size_t bytes, size_t align = alignof(std::max_align_t));
// Frees memory from Alloc on this rank; ends the job for anything else.
void Free(void* p);

template <typename T, typename... Args>
T* New(Args&&... args) {
  return new (Alloc(sizeof(T), alignof(T))) T(std::forward<Args>(args)...);
}
template <typename T>
void Delete(T* p) {
  if (p == nullptr) return;
  p->~T();
  Free(p);
}

// Synchronization. Barrier (declared above): release, wait for all ranks,
// acquire. Release/Acquire: make this rank's writes visible / see others'
// released writes, for everything or for the pages overlapping [p, p+n).
void Release();
void Acquire();
void Release(const void* p, size_t n);
void Acquire(const void* p, size_t n);

// A lock on a global word; usable with std::lock_guard / std::unique_lock.
// lock() has acquire semantics, unlock() release semantics. Not recursive.
// Copies refer to the same lock.
class GlobalLock {
 public:
  GlobalLock() = default;
  explicit GlobalLock(uint64_t* word) : word_(word) {}
  void lock();
  void unlock();
  bool try_lock();
  uint64_t* word() const { return word_; }

 private:
  uint64_t* word_ = nullptr;
};

// Collective: a new lock (homes spread over the ranks).
GlobalLock CoNewLock();
// Per-rank: a new lock homed at this rank, for handing to others by pointer.
GlobalLock NewLock();

// Atomics on 8-byte aligned global words, executed at the word's home.
// Orders: release (and stronger) releases first; acquire (and stronger)
// acquires after. Plain loads of the word see it only after an acquire.
uint64_t AtomicFetchAdd(uint64_t* p, uint64_t value, std::memory_order order = std::memory_order_seq_cst);
bool AtomicCompareExchange(uint64_t* p, uint64_t* expected, uint64_t desired,
                           std::memory_order order = std::memory_order_seq_cst);
uint64_t AtomicLoad(uint64_t* p, std::memory_order order = std::memory_order_seq_cst);
void AtomicStore(uint64_t* p, uint64_t value, std::memory_order order = std::memory_order_seq_cst);

// True if `p` points into the global range.
bool IsGlobal(const void* p);
// Home rank of the page holding `p`; -1 if not allocated global memory.
int HomeOf(const void* p);

// Ends the whole job: prints `message`, every rank exits non-zero.
[[noreturn]] void Abort(int exit_code, const std::string& message);

// This rank's counters ("name value" lines), as printed with GASP_STATS=1.
std::string StatsReport();

}  // namespace gasp

#endif  // GASP_GASP_H_

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
// return a gasp::Status or gasp::Result<T> instead (gasp/status.h: standard
// C++ only). Every wait is bounded by GASP_TIMEOUT.
// Settings: docs/settings.md (`gasp_info -c` prints the effective values).
#ifndef GASP_GASP_H_
#define GASP_GASP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "gasp/status.h"
#include "gasp/version.h"

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
Result<Runtime> Init(int* argc, char*** argv, const InitOptions& options = {});

// This process's rank and the job size (REQUIRES: Init).
int Rank();
int Size();

// Where the home copies of an allocation's pages live.
struct Placement {
  enum class Policy { kDefault, kBlock, kCyclic, kRank, kFirstTouch };
  Policy policy = Policy::kDefault;  // kDefault: GASP_HOME_POLICY
  int rank = 0;                      // kRank: the home of every page
  uint32_t block_pages = 0;          // kCyclic: pages per block (0: GASP_CYCLIC_BLOCK_PAGES)

  static Placement Block() { return {Policy::kBlock, 0, 0}; }
  static Placement Cyclic(uint32_t block_pages = 0) { return {Policy::kCyclic, 0, block_pages}; }
  static Placement OnRank(int r) { return {Policy::kRank, r, 0}; }
  // Each page's home is the first rank that writes it (decided at run time,
  // once, by one atomic at a directory; docs/running.md, "Choosing a home
  // policy"). For arrays each rank initializes its own part of, in any
  // pattern. A load of a page nobody has written yet reads zeros and claims
  // nothing.
  static Placement FirstTouch() { return {Policy::kFirstTouch, 0, 0}; }
};

// A protection domain: a set of collective allocations that only the
// threads and ranks granted it may touch (docs/protection.md). A value
// type, the same on every rank. Domain() is the default domain: memory
// every thread of every rank may read and write.
class Domain {
 public:
  Domain() = default;
  explicit Domain(int id) : id_(id) {}
  // Collective id (0: the default domain).
  int id() const { return id_; }
  friend bool operator==(Domain a, Domain b) { return a.id_ == b.id_; }

 private:
  int id_ = 0;
};

// Access to a domain. Read implies no write; read-write implies read.
enum class Access : uint8_t { kNone = 0, kRead = 1, kReadWrite = 3 };

// Collective allocation: every rank calls it with the same arguments in
// the same order and gets the same address. The memory is zero-filled,
// page-granular, and never reused. With a non-default `domain`, the pages
// belong to it: no thread may touch them (the CPU refuses: memory
// protection keys, or mprotect where the CPU lacks them) and no rank may
// reach them remotely (its transport holds no key) until CoGrant. Ends the
// job on failure.
void* CoAlloc(size_t bytes, Placement placement = {}, Domain domain = {});
Result<void*> TryCoAlloc(size_t bytes, Placement placement = {}, Domain domain = {});

// Collective array of n zero-initialized T (T must be implicit-lifetime:
// trivially default constructible and destructible).
template <typename T>
T* CoNewArray(size_t n, Placement placement = {}, Domain domain = {}) {
  static_assert(std::is_trivially_default_constructible<T>::value &&
                    std::is_trivially_destructible<T>::value,
                "CoNewArray<T>: T must be trivially constructible (memory is zero-filled)");
  return static_cast<T*>(CoAlloc(n * sizeof(T), placement, domain));
}

// ---- Protection domains (docs/protection.md) ------------------------------

// Collective: a new, empty domain named `name` (for reports), the same on
// every rank. Nobody holds it yet.
Domain CoNewDomain(const std::string& name);
Result<Domain> TryCoNewDomain(const std::string& name);

// Whether the granted rank's own code is trusted with the domain.
enum class Trust {
  kTrusted,    // every thread of the rank may access it directly (a trusted
               // client: its calls into the domain's code are direct calls)
  kUntrusted,  // only code entered through a Gate may (an untrusted client)
};

// Collective: gives rank `rank` `access` to `domain` (not kNone; grants only
// grow). That rank, and only it, receives the remote keys of the domain's
// memory: read-only registrations for kRead, read-write for kReadWrite, so
// a rank without the grant (or with kRead, writing) gets a remote access
// error from the NIC or the tcp backend and changes nothing. On `rank`,
// kTrusted also opens the domain to all its threads; kUntrusted leaves it
// closed except inside gates (OpenGate). Every rank passes the same
// arguments.
void CoGrant(Domain domain, int rank, Access access, Trust trust = Trust::kTrusted);
Status TryCoGrant(Domain domain, int rank, Access access, Trust trust = Trust::kTrusted);

// Trusted setup code of a rank: gives the calling thread alone `access` to
// `domain` (kNone takes it back), e.g. a server thread of a rank that was
// granted the domain as untrusted. REQUIRES: this rank was granted at least
// `access` (PermissionDenied otherwise). Not for untrusted code: it would
// bypass the gates.
Status GrantThread(Domain domain, Access access);

// The calling thread's access to `domain` right now (kReadWrite for the
// default domain).
Access AccessOf(Domain domain);
// The domain of a global address (Domain() if none or not global).
Domain DomainOf(const void* p);
// "pkeys" or "mprotect": the protection backend in use (GASP_PROTECT).
const char* ProtectionBackend();

// Resets the calling thread's rights to its rank's process-wide grants.
// Linux threads inherit their creator's protection-key register (PKRU), so
// a thread created inside a gate would start with the gate's domain open:
// call this first in any thread that may be created inside a gate, or start
// threads with gasp::StartThread.
void OnThreadStart();

// std::thread whose body begins with OnThreadStart().
template <typename Fn, typename... Args>
std::thread StartThread(Fn&& fn, Args&&... args) {
  return std::thread(
      [](auto&& f, auto&&... a) {
        OnThreadStart();
        std::invoke(std::forward<decltype(f)>(f), std::forward<decltype(a)>(a)...);
      },
      std::forward<Fn>(fn), std::forward<Args>(args)...);
}

// What a gate does with the caller's own rights while inside.
enum class CallerRights {
  kSuspend,  // untrusted server: cannot follow the caller's pointers into
             // the caller's private domains (default)
  kKeep,     // trusted server: may
};

namespace internal {
// What a call through a gate returns for fn's result type R: Status for
// void and for Status (fn's own status, or why the gate refused), else
// Result<R>.
template <typename R>
using CallResult = std::conditional_t<std::is_void_v<R> || std::is_same_v<std::decay_t<R>, Status>,
                                      Status, Result<R>>;
// Gate internals (runtime/domains.cc); `local_domain` is Gate::local_.
Status EnterGate(uint64_t binding, int local_domain, Access access, CallerRights caller);
void LeaveGate();
}  // namespace internal

// A call gate into a domain: the only way untrusted code of this rank
// reaches a domain it was not trusted with. Call() switches the calling
// thread's rights to the domain (a WRPKRU under pkeys; process-wide
// mprotect, serialized, under the fallback), calls fn, and restores the
// caller's rights on every return path. Copyable; valid until Finalize.
class Gate {
 public:
  Gate() = default;
  Domain domain() const { return Domain(domain_); }
  Access access() const { return access_; }

  // fn(args...) inside the domain. Returns Status when fn returns void
  // (or Status: fn's), Result<R> when it returns R; PermissionDenied (fn
  // not called) for a default-constructed gate.
  template <typename Fn, typename... Args>
  auto Call(Fn&& fn, Args&&... args) {
    using R = std::invoke_result_t<Fn, Args...>;
    using Out = internal::CallResult<R>;
    Status entered = internal::EnterGate(binding_, local_, access_, caller_);
    if (!entered.ok()) return Out(entered);
    struct Leave {
      ~Leave() { internal::LeaveGate(); }
    } leave;
    if constexpr (std::is_void_v<R>) {
      std::invoke(std::forward<Fn>(fn), std::forward<Args>(args)...);
      return Out(OkStatus());
    } else {
      return Out(std::invoke(std::forward<Fn>(fn), std::forward<Args>(args)...));
    }
  }

 private:
  friend Result<Gate> OpenGate(Domain, Access, CallerRights);
  uint64_t binding_ = 0;
  int domain_ = 0;  // collective id
  int local_ = 0;   // this process's id of the domain
  Access access_ = Access::kNone;
  CallerRights caller_ = CallerRights::kSuspend;
};

// A gate into `domain` with at most `access`, usable by any thread of this
// rank. REQUIRES: this rank was granted at least `access` (CoGrant, either
// trust); PermissionDenied otherwise.
Result<Gate> OpenGate(Domain domain, Access access,
                              CallerRights caller = CallerRights::kSuspend);

// A client's handle on a service object of this rank (the stub of
// docs/protection.md, "Trusted and untrusted"): a trusted client calls the
// object directly; an untrusted one through a gate into the object's
// domain. Call() has the same result type either way.
template <typename T>
class LocalRef {
 public:
  static LocalRef Trusted(T* object) { return LocalRef(object, Gate(), true); }
  static LocalRef Untrusted(T* object, Gate gate) { return LocalRef(object, gate, false); }

  // (object->*method)(args...), directly or through the gate.
  template <typename M, typename... Args>
  auto Call(M method, Args&&... args) {
    using R = std::invoke_result_t<M, T*, Args...>;
    using Out = internal::CallResult<R>;
    if (trusted_) {
      if constexpr (std::is_void_v<R>) {
        std::invoke(method, object_, std::forward<Args>(args)...);
        return Out(OkStatus());
      } else {
        return Out(std::invoke(method, object_, std::forward<Args>(args)...));
      }
    }
    return gate_.Call(method, object_, std::forward<Args>(args)...);
  }
  bool trusted() const { return trusted_; }

 private:
  LocalRef(T* object, Gate gate, bool trusted) : object_(object), gate_(gate), trusted_(trusted) {}
  T* object_;
  Gate gate_;
  bool trusted_;
};

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
Result<void*> TryAlloc(size_t bytes, size_t align = alignof(std::max_align_t));
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

// How Allreduce combines values.
enum class ReduceOp { kSum, kMin, kMax };
// Collective: a Barrier that also combines `n` doubles from every rank:
// on every rank, out[k] = in[k] of rank 0 op in[k] of rank 1 op ... (in
// rank order, so every rank gets the same bits). The values ride in the
// barrier's own messages: no round trip beyond the barrier's. Every rank
// passes the same n and op (a mismatch stops the job, naming both calls).
// 0 < n <= kMaxAllreduceValues; `in` and `out` may be the same array.
inline constexpr size_t kMaxAllreduceValues = 64;
void Allreduce(const double* in, double* out, size_t n, ReduceOp op = ReduceOp::kSum);
// One value: the combined value.
double Allreduce(double value, ReduceOp op = ReduceOp::kSum);

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
// Home rank of the page holding `p`; -1 if not allocated global memory, or
// if `p` is in a first-touch allocation and no rank has written its page yet
// (asking claims nothing).
int HomeOf(const void* p);

// Ends the whole job: prints `message`, every rank exits non-zero.
[[noreturn]] void Abort(int exit_code, const std::string& message);

// This rank's counters ("name value" lines), as printed with GASP_STATS=1.
std::string StatsReport();

// This rank's counters by name, in a fixed order: snake_case names such as
// "read_faults" or "lock_wait_ns" (times are in nanoseconds), the names of
// StatsReport and of the GASP_STATS_FILE dumps (docs/running.md, "Metrics").
// Counters start at zero with the process and only grow. Callable from any
// thread at any time, also before Init and after Finalize. Each value is
// read atomically, but the list is not one snapshot: counters other threads
// bump meanwhile may be a step apart.
std::vector<std::pair<std::string, uint64_t>> Stats();

}  // namespace gasp

#endif  // GASP_GASP_H_

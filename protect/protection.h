// Protection domains for gasp (DESIGN.md section 6, docs/protection.md).
//
// Model
//   * A domain is a set of page-aligned address ranges. Domain 0
//     (kDefaultDomain) is everything not attached to a domain and is always
//     readable and writable.
//   * A thread's rights are, per domain, kNone / kRead / kReadWrite. They are
//     the union of the process-wide grants and, outside call gates, the
//     thread's own grants. Inside a gate they are the process-wide grants plus
//     the gate's domain; the caller's own rights are suspended (an untrusted
//     server cannot touch the caller's private domains) unless the gate
//     keeps them (CallerRights::kKeep: a trusted server may follow the
//     caller's pointers).
//   * Grant() is the trusted setup path; at run time only call gates
//     (protect/gate.h) change rights.
//
// Backends (chosen once, at Create):
//   * pkeys: one protection key per domain, rights are the per-thread PKRU
//     register, switched with WRPKRU (no syscall). More domains than keys:
//     keys are virtualized; a domain that nobody holds (no grant, no gate
//     inside it) may lose its key to the domain being entered (least recently
//     entered first) and is then parked on a key that no thread ever enables,
//     so it is closed to every thread until it gets a key again. Re-keying
//     costs one pkey_mprotect per range. At most (keys - 1) domains can be
//     held at the same moment (one key is the parking key); beyond that
//     Grant/gate entry fail with ResourceExhausted.
//   * mprotect: process-wide fallback for CPUs without PKU. A domain's ranges
//     are PROT_NONE unless some thread holds it (grant or gate), then they are
//     opened (read or read/write) FOR ALL THREADS. Gate calls are serialized
//     by one process-wide (recursive) lock held for the whole call, so at most
//     one thread is inside gates at a time; threads outside gates still see
//     every open domain. Correct isolation only between gate users; slower
//     (one mprotect per range per switch).
//
// Coexistence with coherence: pages keep their protection key when their
// protection bits are changed with plain mprotect (INVALID/READ/WRITE), so
// under pkeys coherence and keys are orthogonal. Attaching, re-keying,
// parking and (mprotect backend) opening or closing a domain go through
// ProtectionOptions::apply_prot, which the runtime implements so that each
// page keeps min(its coherence state, the domain's protection); the DSM in
// turn caps its own changes with MaxProt() of the page's domain.
//
// Signals and threads: see docs/protection.md. On Linux a new thread inherits
// its creator's PKRU (so a thread started inside a gate would inherit the
// gate's rights): start threads with protect::StartThread or call
// OnThreadStart() first thing in the new thread. Signal handlers run with
// the kernel's default PKRU (key 0 only); the SIGSEGV handler of this layer
// sets PKRU to full access while it reads its metadata and restores it.
//
// Violations: an access a thread has no right to (SEGV_PKUERR under pkeys,
// SEGV_ACCERR into a closed domain under mprotect) is reported with a
// signal-safe log line (domain, address, thread id), then given to the
// violation callback; by default the process then dies of SIGSEGV. It is
// never treated as a coherence miss.
//
// One Protection instance per process at a time (the fault handler is
// process-wide). All methods are thread-safe.
#ifndef GASP_PROTECT_PROTECTION_H_
#define GASP_PROTECT_PROTECTION_H_

#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gasp {
namespace protect {

enum class BackendKind { kAuto, kPkeys, kMprotect };

// Parses "auto|pkeys|mprotect" (the GASP_PROTECT values).
absl::Status ParseBackend(absl::string_view text, BackendKind* kind);
const char* BackendName(BackendKind kind);

enum class Rights : uint8_t { kNone = 0, kRead = 1, kReadWrite = 3 };
const char* RightsName(Rights rights);
// True when `have` includes every right in `need`.
inline bool Covers(Rights have, Rights need) {
  return (static_cast<uint8_t>(have) & static_cast<uint8_t>(need)) == static_cast<uint8_t>(need);
}

using DomainId = int;
constexpr DomainId kDefaultDomain = 0;
constexpr DomainId kNoDomain = -1;

enum class Scope { kThread, kProcess };

// Permission to enter a gate into one domain with some rights. Issued by the
// trusted side (Bind); checked by Gate::Call at every entry.
struct Binding {
  uint64_t id = 0;
};

// What the fault handler reports. Strings point to static storage.
struct Violation {
  DomainId domain = kNoDomain;
  const char* domain_name = "";
  uintptr_t address = 0;
  bool write = false;
  int pkey = -1;    // si_pkey (pkeys backend), else -1
  int si_code = 0;  // SEGV_PKUERR (4) or SEGV_ACCERR (2)
  pid_t tid = 0;
};

// Runs in signal context (async-signal-safe code only), with the faulting
// thread's PKRU already restored. Return true when it repaired the cause (the
// access is retried); false lets the default action end the process. It may
// also siglongjmp out; the thread should then call Protection::ResyncThread().
using ViolationCallback = bool (*)(const Violation& violation, void* context);

// Sets the hardware protection of [addr, addr+len), a part of an attached
// range: page protection at most `prot` and, when `pkey` >= 0, protection
// key `pkey` on every page. Returns 0 or an errno value. Called with the
// layer's lock held (never in signal context); it must not call back into
// Protection. The default gives every page exactly `prot`. A runtime whose
// pages carry their own access states (the DSM's INVALID / READ / WRITE)
// passes one that gives each page min(its state, prot): this is how
// domains and coherence compose (see "Coexistence" above).
using ApplyProtFn = int (*)(void* addr, size_t len, int prot, int pkey, void* context);

// The default ApplyProtFn (`context` unused): every page of the range gets
// `prot`, and key `pkey` when pkey >= 0. Returns 0 or an errno value.
int DefaultApplyProt(void* addr, size_t len, int prot, int pkey, void* context);

struct ProtectionOptions {
  BackendKind backend = BackendKind::kAuto;  // GASP_PROTECT
  int max_keys = 15;  // pkeys: keys to allocate (one is the parking key); 2..15
  ViolationCallback on_violation = nullptr;
  void* violation_context = nullptr;
  ApplyProtFn apply_prot = nullptr;  // nullptr: plain (pkey_)mprotect
  void* apply_prot_context = nullptr;
};

// What a gate does with the caller's own thread grants while inside.
enum class CallerRights {
  kSuspend,  // untrusted server: it cannot follow the caller's pointers into
             // the caller's private domains (the default)
  kKeep,     // trusted server: it may (the caller's grants stay on)
};

struct Core;     // internal (protect/core.h)
class Backend;   // internal

class Protection {
 public:
  // kAuto: pkeys when ProbePku() says usable, else mprotect. kPkeys fails
  // with FailedPrecondition (and the probe's reason) when PKU is not usable.
  // Fails with AlreadyExists while another instance is alive. Registers the
  // SIGSEGV handler with gas::RegisterFaultHandler.
  static absl::StatusOr<std::unique_ptr<Protection>> Create(const ProtectionOptions& options);

  // Unregisters the handler, returns all attached ranges to key 0 with their
  // open_prot, frees the keys.
  ~Protection();
  Protection(const Protection&) = delete;
  Protection& operator=(const Protection&) = delete;

  // The live instance, or nullptr.
  static Protection* Current();

  BackendKind backend() const;
  // Why this backend was chosen ("PKU usable", or the probe's reason).
  const std::string& backend_reason() const;

  // New empty domain; `name` (truncated to 31 chars) appears in reports.
  absl::StatusOr<DomainId> CreateDomain(absl::string_view name);

  // Attaches [addr, addr+len) (page-aligned, mapped, not overlapping another
  // attached range) to `domain`. `open_prot` is the protection the pages have
  // when the domain is open (PROT_READ|PROT_WRITE for data). From now on the
  // range is protected: only threads with rights on `domain` may touch it.
  absl::Status Attach(DomainId domain, void* addr, size_t len,
                      int open_prot = PROT_READ | PROT_WRITE);
  // Detaches a range given exactly as attached: it returns to the default
  // domain with its open_prot.
  absl::Status Detach(void* addr, size_t len);

  // Trusted setup: gives `rights` on `domain` to the calling thread
  // (kThread; kNone revokes) or to every thread of the process (kProcess;
  // process grants can only be raised, never lowered, because other threads'
  // PKRU registers cannot be reached synchronously; they pick the grant up on
  // their first access). ResourceExhausted when no key can be freed (pkeys).
  absl::Status Grant(DomainId domain, Rights rights, Scope scope);

  // The calling thread's current rights on `domain` (kReadWrite for the
  // default domain, kNone for unknown domains).
  Rights RightsOf(DomainId domain) const;
  Rights ProcessRights(DomainId domain) const;
  // The domain an address is attached to: kDefaultDomain if none.
  DomainId DomainAt(const void* addr) const;
  // The most access any page of `domain` may have in the page tables now:
  // mprotect backend: what its holders need (PROT_NONE when nobody holds
  // it); pkeys: PROT_READ|PROT_WRITE (the keys do the rest). Signal-safe.
  int MaxProt(DomainId domain) const;
  // pkeys: the key currently backing `domain`, or -1 (no key / mprotect).
  int KeyOf(DomainId domain) const;
  // pkeys: the parking key of evicted domains, else -1.
  int ParkingKey() const;

  // Issues a binding that allows entering gates into `domain` with at most
  // `rights`, from the calling thread only (kThread) or from any thread.
  absl::StatusOr<Binding> Bind(DomainId domain, Rights rights, Scope scope);
  absl::Status Unbind(Binding binding);

  // Thread start hook: gives the calling thread a fresh state (no thread
  // grants, not in a gate) and sets its PKRU to the process grants. Call it
  // first in every thread created by gasp's users, or use StartThread.
  void OnThreadStart();
  // Re-applies the calling thread's rights to the hardware (after a
  // siglongjmp out of a violation callback, say).
  void ResyncThread();

  // Gate internals (protect/gate.h). EnterGate checks the binding, holds the
  // domain and switches the calling thread's rights; LeaveGate undoes it.
  absl::Status EnterGate(Binding binding, DomainId domain, Rights rights,
                         CallerRights caller = CallerRights::kSuspend);
  void LeaveGate();

  // Counters for tests/benchmarks.
  uint64_t violations() const;
  uint64_t rekeys() const;

 private:
  Protection();
  Core* core_;
};

// std::thread whose body starts with Protection::Current()->OnThreadStart().
template <typename Fn, typename... Args>
std::thread StartThread(Fn&& fn, Args&&... args) {
  return std::thread(
      [](auto&& f, auto&&... a) {
        if (Protection* p = Protection::Current()) p->OnThreadStart();
        f(std::forward<decltype(a)>(a)...);
      },
      std::forward<Fn>(fn), std::forward<Args>(args)...);
}

}  // namespace protect
}  // namespace gasp

#endif  // GASP_PROTECT_PROTECTION_H_

// Internal state shared by protection.cc, the two backends and the fault
// handler. Everything the SIGSEGV handler reads is in fixed-size arrays of
// atomics (no allocation, no locks in signal context).
#ifndef GASP_PROTECT_CORE_H_
#define GASP_PROTECT_CORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "protect/protection.h"

namespace gasp {
namespace protect {

constexpr int kMaxDomains = 1024;
constexpr int kMaxRanges = 1024;
constexpr int kMaxGateDepth = 32;
constexpr int kMaxKeys = 16;
constexpr int kMaxBindings = 4096;
// DomainSlot::fast_pins while the domain is losing its key (pkeys).
constexpr int kEvicting = -(1 << 30);

struct DomainSlot {
  std::atomic<bool> used{false};
  std::atomic<int> key{-1};                 // pkeys: current key or -1
  std::atomic<uint8_t> process_rights{0};   // Rights
  std::atomic<int> readers{0};              // mprotect: holders with kRead
  std::atomic<int> writers{0};              // mprotect: holders with kReadWrite
  int pins = 0;                             // holders (grants + slow gate frames); under mu
  // pkeys: gate frames entered on the lock-free path. The key is taken from
  // a domain only after CASing this from 0 to kEvicting (under mu), so a
  // fast entry either sees kEvicting (and takes the slow path) or pins the
  // domain before the evictor looks.
  std::atomic<int> fast_pins{0};
  std::atomic<uint64_t> last_entered{0};    // LRU tick
  char name[32] = {0};
};

struct RangeSlot {
  std::atomic<uintptr_t> start{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<int> domain{-1};  // -1: free slot
  int open_prot = 0;
};

struct GateFrame {
  DomainId domain;
  Rights rights;
  bool keep_caller;  // CallerRights::kKeep: the rights below stay visible
  bool fast;         // entered on the lock-free path (holds a fast pin)
};

// A binding, readable without the lock: `id` is published last (release)
// and cleared by Unbind. Binding ids are (sequence << 12) | slot.
struct BindingSlot {
  std::atomic<uint64_t> id{0};
  DomainId domain = kNoDomain;
  Rights rights = Rights::kNone;
  Scope scope = Scope::kThread;
  pid_t tid = 0;
};

// Per-thread state. Reached through a trivial thread_local pointer, so the
// signal handler can read it.
struct ThreadState {
  uint64_t gen = 0;  // Core generation this state belongs to
  pid_t tid = 0;     // cached gettid() (thread-scoped bindings)
  uint8_t grants[kMaxDomains] = {0};
  GateFrame frames[kMaxGateDepth];
  std::atomic<int> depth{0};
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendKind kind() const = 0;
  // Under core->mu. A new holder of `rights` on `domain` (grant or gate).
  virtual absl::Status Hold(DomainId domain, Rights rights) = 0;
  virtual void Unhold(DomainId domain, Rights rights) = 0;
  // Under core->mu: protect a freshly attached range / return it to normal.
  virtual absl::Status OnAttach(int range_slot, DomainId domain) = 0;
  virtual void OnDetach(int range_slot) = 0;
  // Under core->mu: make the calling thread's hardware state match its rights.
  virtual void Apply() = 0;
  // Not under mu: restore everything at shutdown.
  virtual void Shutdown() = 0;
  // Signal-safe: see Protection::MaxProt.
  virtual int MaxProt(DomainId domain) const = 0;
  virtual int KeyOf(DomainId domain) const { return -1; }
  virtual int ParkingKey() const { return -1; }
};

struct Core {
  std::mutex mu;
  std::recursive_mutex gate_mu;  // mprotect backend: serializes gate calls
  uint64_t gen = 0;
  std::atomic<bool> live{false};
  BackendKind kind = BackendKind::kMprotect;
  std::string reason;
  std::unique_ptr<Backend> backend;
  DomainSlot domains[kMaxDomains];
  RangeSlot ranges[kMaxRanges];
  int next_domain = 1;
  // One past the highest range slot ever used: FindRange runs on every
  // SIGSEGV of the process (coherence misses included), so it scans only
  // the used prefix.
  std::atomic<int> ranges_hi{0};
  ApplyProtFn apply_prot = nullptr;  // never nullptr once created
  void* apply_prot_context = nullptr;
  std::atomic<uint64_t> tick{0};
  BindingSlot bindings[kMaxBindings];
  uint64_t next_binding = 1;  // sequence part of the next id; under mu
  ViolationCallback on_violation = nullptr;
  void* violation_context = nullptr;
  std::atomic<uint64_t> violations{0};
  std::atomic<uint64_t> rekeys{0};
  // pkeys: what the signal handler needs to compute a PKRU.
  std::atomic<int> key_owner[kMaxKeys];  // domain owning key k, or -1
  uint32_t owned_mask = 0;               // PKRU bits of the keys we own
  int parking_key = -1;

  // Signal-safe lookup: the domain of `addr` and the range slot, or -1.
  int FindRange(uintptr_t addr) const;
};

// The live core (or nullptr) and the calling thread's state for it
// (nullptr in signal context when the thread has none yet).
Core* LiveCore();
ThreadState* SignalSafeThreadState(const Core* core);
// Not for signal context: creates the state when missing or stale.
ThreadState* SelfState(Core* core);

// Effective rights of a thread (state may be nullptr). Signal-safe.
Rights EffectiveRights(const Core& core, const ThreadState* ts, DomainId domain);
// pkeys: the PKRU value for a thread, keeping the bits of keys we do not own.
uint32_t ComputePkru(const Core& core, const ThreadState* ts, uint32_t current);

std::unique_ptr<Backend> NewPkeysBackend(Core* core, int max_keys, absl::Status* status);
std::unique_ptr<Backend> NewMprotectBackend(Core* core);

// violation.cc
absl::Status InstallFaultHandler(Core* core);
void RemoveFaultHandler(Core* core);

}  // namespace protect
}  // namespace gasp

#endif  // GASP_PROTECT_CORE_H_

#include "protect/protection.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "protect/core.h"
#include "protect/cpu_probe.h"

namespace gasp {
namespace protect {
namespace {

std::atomic<Core*> g_core{nullptr};
std::atomic<Protection*> g_instance{nullptr};
std::atomic<uint64_t> g_gen{0};

thread_local ThreadState* t_state = nullptr;  // trivial: readable in signal context

// Owns the thread's state; on thread exit releases its grants.
struct ThreadOwner {
  std::unique_ptr<ThreadState> state;
  ~ThreadOwner() {
    Core* core = LiveCore();
    if (core != nullptr && state != nullptr && state->gen == core->gen) {
      std::lock_guard<std::mutex> lock(core->mu);
      for (int d = 0; d < kMaxDomains; ++d) {
        if (state->grants[d] != 0) core->backend->Unhold(d, static_cast<Rights>(state->grants[d]));
      }
    }
    t_state = nullptr;
  }
};
thread_local ThreadOwner t_owner;

pid_t Tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

Rights Max(Rights a, Rights b) {
  return static_cast<Rights>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}

bool ValidDomain(const Core& c, DomainId d) {
  return d > 0 && d < kMaxDomains && c.domains[d].used.load(std::memory_order_acquire);
}

}  // namespace

Core* LiveCore() { return g_core.load(std::memory_order_acquire); }

ThreadState* SignalSafeThreadState(const Core* core) {
  ThreadState* ts = t_state;
  if (ts == nullptr || core == nullptr || ts->gen != core->gen) return nullptr;
  return ts;
}

ThreadState* SelfState(Core* core) {
  ThreadState* ts = t_state;
  if (ts != nullptr && ts->gen == core->gen) return ts;
  if (t_owner.state == nullptr) t_owner.state = std::make_unique<ThreadState>();
  ts = t_owner.state.get();
  std::memset(ts->grants, 0, sizeof(ts->grants));
  ts->depth.store(0, std::memory_order_relaxed);
  ts->tid = Tid();
  ts->gen = core->gen;
  t_state = ts;
  return ts;
}

Rights EffectiveRights(const Core& core, const ThreadState* ts, DomainId d) {
  if (d == kDefaultDomain) return Rights::kReadWrite;
  if (d < 0 || d >= kMaxDomains) return Rights::kNone;
  Rights r = static_cast<Rights>(core.domains[d].process_rights.load(std::memory_order_acquire));
  if (ts != nullptr) {
    // Innermost frame outwards; a frame that suspends its caller's rights
    // ends the walk, and the thread's grants count only when every frame
    // keeps them.
    int depth = ts->depth.load(std::memory_order_acquire);
    bool grants_visible = true;
    for (int i = depth - 1; i >= 0; --i) {
      const GateFrame& f = ts->frames[i];
      if (f.domain == d) r = Max(r, f.rights);
      if (!f.keep_caller) {
        grants_visible = false;
        break;
      }
    }
    if (grants_visible) r = Max(r, static_cast<Rights>(ts->grants[d]));
  }
  return r;
}

int DefaultApplyProt(void* addr, size_t len, int prot, int pkey, void*) {
  int rc = pkey >= 0 ? SysPkeyMprotect(addr, len, prot, pkey) : mprotect(addr, len, prot);
  return rc == 0 ? 0 : errno;
}

uint32_t ComputePkru(const Core& core, const ThreadState* ts, uint32_t current) {
  uint32_t v = current & ~core.owned_mask;
  for (int k = 1; k < kMaxKeys; ++k) {
    if (!(core.owned_mask & PkruKeyMask(k))) continue;
    int d = core.key_owner[k].load(std::memory_order_acquire);
    Rights r = d > 0 ? EffectiveRights(core, ts, d) : Rights::kNone;
    if (r == Rights::kNone) {
      v |= PkruAd(k) | PkruWd(k);
    } else if (r == Rights::kRead) {
      v |= PkruWd(k);
    }
  }
  return v;
}

int Core::FindRange(uintptr_t addr) const {
  const int hi = ranges_hi.load(std::memory_order_acquire);
  for (int i = 0; i < hi; ++i) {
    if (ranges[i].domain.load(std::memory_order_acquire) < 0) continue;
    if (addr >= ranges[i].start.load(std::memory_order_relaxed) &&
        addr < ranges[i].end.load(std::memory_order_relaxed)) {
      return i;
    }
  }
  return -1;
}

absl::Status ParseBackend(absl::string_view text, BackendKind* kind) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "auto" || t.empty()) {
    *kind = BackendKind::kAuto;
  } else if (t == "pkeys" || t == "pku" || t == "mpk") {
    *kind = BackendKind::kPkeys;
  } else if (t == "mprotect") {
    *kind = BackendKind::kMprotect;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("GASP_PROTECT: '", text, "' is not one of auto|pkeys|mprotect"));
  }
  return absl::OkStatus();
}

const char* BackendName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto: return "auto";
    case BackendKind::kPkeys: return "pkeys";
    case BackendKind::kMprotect: return "mprotect";
  }
  return "?";
}

const char* RightsName(Rights rights) {
  switch (rights) {
    case Rights::kNone: return "none";
    case Rights::kRead: return "read";
    case Rights::kReadWrite: return "read-write";
  }
  return "?";
}

Protection::Protection() : core_(nullptr) {}

absl::StatusOr<std::unique_ptr<Protection>> Protection::Create(const ProtectionOptions& options) {
  if (options.max_keys < 2 || options.max_keys > 15) {
    return absl::InvalidArgumentError("max_keys must be in [2, 15]");
  }
  Protection* expected = nullptr;
  std::unique_ptr<Protection> p(new Protection());
  if (!g_instance.compare_exchange_strong(expected, p.get())) {
    return absl::AlreadyExistsError("a protect::Protection instance is already alive");
  }
  auto core = std::make_unique<Core>();
  core->gen = g_gen.fetch_add(1) + 1;
  for (auto& k : core->key_owner) k.store(-1);
  core->on_violation = options.on_violation;
  core->violation_context = options.violation_context;
  core->apply_prot = options.apply_prot != nullptr ? options.apply_prot : DefaultApplyProt;
  core->apply_prot_context = options.apply_prot_context;
  const PkuProbe& probe = ProbePku();
  BackendKind kind = options.backend;
  if (kind == BackendKind::kAuto) {
    kind = probe.usable() ? BackendKind::kPkeys : BackendKind::kMprotect;
    core->reason = probe.usable() ? "auto: PKU usable" : "auto: " + probe.reason;
  } else if (kind == BackendKind::kPkeys && !probe.usable()) {
    g_instance.store(nullptr);
    return absl::FailedPreconditionError("GASP_PROTECT=pkeys: " + probe.reason);
  } else {
    core->reason = std::string("requested ") + BackendName(kind);
  }
  core->kind = kind;
  if (kind == BackendKind::kPkeys) {
    absl::Status st;
    core->backend = NewPkeysBackend(core.get(), options.max_keys, &st);
    if (!st.ok()) {
      g_instance.store(nullptr);
      return st;
    }
  } else {
    core->backend = NewMprotectBackend(core.get());
  }
  core->live.store(true);
  absl::Status st = InstallFaultHandler(core.get());
  if (!st.ok()) {
    core->backend->Shutdown();
    g_instance.store(nullptr);
    return st;
  }
  p->core_ = core.release();
  g_core.store(p->core_, std::memory_order_release);
  p->ResyncThread();
  GASP_LOG(Info) << "protect: backend " << BackendName(kind) << " (" << p->core_->reason << ")";
  return p;
}

Protection::~Protection() {
  if (core_ == nullptr) return;
  RemoveFaultHandler(core_);
  core_->live.store(false);
  core_->backend->Shutdown();
  g_core.store(nullptr, std::memory_order_release);
  t_state = nullptr;
  // The core is retired, not freed: another thread may still be reading it
  // in a signal handler or in its thread-exit hook. It is ~200 KB per
  // Create/destroy cycle, which only tests do repeatedly. The retired list
  // keeps it reachable (no leak report under LSan).
  static std::mutex retired_mu;
  static std::vector<Core*>* retired = new std::vector<Core*>();
  {
    std::lock_guard<std::mutex> lock(retired_mu);
    retired->push_back(core_);
  }
  g_instance.store(nullptr);
}

Protection* Protection::Current() { return g_instance.load(std::memory_order_acquire); }

BackendKind Protection::backend() const { return core_->kind; }
const std::string& Protection::backend_reason() const { return core_->reason; }

absl::StatusOr<DomainId> Protection::CreateDomain(absl::string_view name) {
  std::lock_guard<std::mutex> lock(core_->mu);
  if (core_->next_domain >= kMaxDomains) {
    return absl::ResourceExhaustedError(absl::StrCat("more than ", kMaxDomains - 1, " domains"));
  }
  DomainId d = core_->next_domain++;
  DomainSlot& s = core_->domains[d];
  size_t n = std::min(name.size(), sizeof(s.name) - 1);
  std::memcpy(s.name, name.data(), n);
  s.name[n] = '\0';
  s.used.store(true, std::memory_order_release);
  return d;
}

absl::Status Protection::Attach(DomainId domain, void* addr, size_t len, int open_prot) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (len == 0 || a % page != 0 || len % page != 0) {
    return absl::InvalidArgumentError("Attach: range must be page-aligned and non-empty");
  }
  std::lock_guard<std::mutex> lock(core_->mu);
  if (!ValidDomain(*core_, domain)) return absl::NotFoundError(absl::StrCat("no domain ", domain));
  int free_slot = -1;
  for (int i = 0; i < kMaxRanges; ++i) {
    RangeSlot& r = core_->ranges[i];
    if (r.domain.load() < 0) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    if (a < r.end.load() && a + len > r.start.load()) {
      return absl::AlreadyExistsError("Attach: range overlaps an attached range");
    }
  }
  if (free_slot < 0) return absl::ResourceExhaustedError("Attach: too many ranges");
  RangeSlot& r = core_->ranges[free_slot];
  r.start.store(a);
  r.end.store(a + len);
  r.open_prot = open_prot;
  if (free_slot >= core_->ranges_hi.load()) core_->ranges_hi.store(free_slot + 1);
  GASP_RETURN_IF_ERROR(core_->backend->OnAttach(free_slot, domain));
  r.domain.store(domain, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status Protection::Detach(void* addr, size_t len) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  std::lock_guard<std::mutex> lock(core_->mu);
  for (int i = 0; i < kMaxRanges; ++i) {
    RangeSlot& r = core_->ranges[i];
    if (r.domain.load() >= 0 && r.start.load() == a && r.end.load() == a + len) {
      core_->backend->OnDetach(i);
      r.domain.store(-1, std::memory_order_release);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError("Detach: no attached range with this start and length");
}

absl::Status Protection::Grant(DomainId domain, Rights rights, Scope scope) {
  ThreadState* ts = SelfState(core_);
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (!ValidDomain(*core_, domain)) return absl::NotFoundError(absl::StrCat("no domain ", domain));
    DomainSlot& s = core_->domains[domain];
    if (scope == Scope::kThread) {
      Rights old = static_cast<Rights>(ts->grants[domain]);
      if (old != rights) {
        if (rights != Rights::kNone) GASP_RETURN_IF_ERROR(core_->backend->Hold(domain, rights));
        if (old != Rights::kNone) core_->backend->Unhold(domain, old);
        ts->grants[domain] = static_cast<uint8_t>(rights);
      }
    } else {
      Rights old = static_cast<Rights>(s.process_rights.load());
      if (!Covers(rights, old)) {
        return absl::FailedPreconditionError(
            absl::StrCat("process grants cannot be lowered (domain ", domain, " is ",
                         RightsName(old), ")"));
      }
      if (old != rights) {
        GASP_RETURN_IF_ERROR(core_->backend->Hold(domain, rights));
        if (old != Rights::kNone) core_->backend->Unhold(domain, old);
        s.process_rights.store(static_cast<uint8_t>(rights), std::memory_order_release);
      }
    }
    // Under mu: a released key must be closed in this thread's PKRU before
    // another thread can re-key it to a different domain.
    core_->backend->Apply();
  }
  return absl::OkStatus();
}

Rights Protection::RightsOf(DomainId domain) const {
  if (domain != kDefaultDomain && !ValidDomain(*core_, domain)) return Rights::kNone;
  return EffectiveRights(*core_, SelfState(core_), domain);
}

Rights Protection::ProcessRights(DomainId domain) const {
  if (domain == kDefaultDomain) return Rights::kReadWrite;
  if (!ValidDomain(*core_, domain)) return Rights::kNone;
  return static_cast<Rights>(core_->domains[domain].process_rights.load());
}

DomainId Protection::DomainAt(const void* addr) const {
  int i = core_->FindRange(reinterpret_cast<uintptr_t>(addr));
  return i < 0 ? kDefaultDomain : core_->ranges[i].domain.load();
}

int Protection::MaxProt(DomainId domain) const {
  if (domain == kDefaultDomain) return PROT_READ | PROT_WRITE;
  if (domain < 0 || domain >= kMaxDomains) return PROT_NONE;
  return core_->backend->MaxProt(domain);
}

int Protection::KeyOf(DomainId domain) const { return core_->backend->KeyOf(domain); }
int Protection::ParkingKey() const { return core_->backend->ParkingKey(); }

absl::StatusOr<Binding> Protection::Bind(DomainId domain, Rights rights, Scope scope) {
  std::lock_guard<std::mutex> lock(core_->mu);
  if (!ValidDomain(*core_, domain)) return absl::NotFoundError(absl::StrCat("no domain ", domain));
  if (rights == Rights::kNone) return absl::InvalidArgumentError("Bind: rights kNone");
  for (int slot = 0; slot < kMaxBindings; ++slot) {
    BindingSlot& b = core_->bindings[slot];
    if (b.id.load(std::memory_order_relaxed) != 0) continue;
    b.domain = domain;
    b.rights = rights;
    b.scope = scope;
    b.tid = Tid();
    const uint64_t id = (core_->next_binding++ << 12) | static_cast<uint64_t>(slot);
    b.id.store(id, std::memory_order_release);  // publish after the fields
    return Binding{id};
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("Bind: more than ", kMaxBindings, " live bindings; Unbind unused ones"));
}

absl::Status Protection::Unbind(Binding binding) {
  std::lock_guard<std::mutex> lock(core_->mu);
  BindingSlot& b = core_->bindings[binding.id & (kMaxBindings - 1)];
  if (binding.id == 0 || b.id.load() != binding.id) {
    return absl::NotFoundError("Unbind: unknown binding");
  }
  // A gate call that validated the binding just before this may still
  // enter: unbinding does not interrupt calls in flight.
  b.id.store(0, std::memory_order_release);
  return absl::OkStatus();
}

void Protection::OnThreadStart() {
  SelfState(core_);
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->backend->Apply();
}

void Protection::ResyncThread() {
  SelfState(core_);
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->backend->Apply();
}

namespace {

// The binding check shared by both paths. Lock-free: fields are read after
// the id (acquire) and the id is re-checked after them.
absl::Status CheckBinding(const Core& core, const ThreadState& ts, Binding binding,
                          DomainId domain, Rights rights) {
  const BindingSlot& b = core.bindings[binding.id & (kMaxBindings - 1)];
  if (binding.id == 0 || b.id.load(std::memory_order_acquire) != binding.id) {
    return absl::PermissionDeniedError("gate: no such binding (never bound or unbound)");
  }
  const DomainId bd = b.domain;
  const Rights br = b.rights;
  const Scope bs = b.scope;
  const pid_t bt = b.tid;
  if (b.id.load(std::memory_order_acquire) != binding.id) {
    return absl::PermissionDeniedError("gate: the binding was just unbound");
  }
  if (bd != domain) {
    return absl::PermissionDeniedError(
        absl::StrCat("gate: the binding is for domain ", bd, ", not ", domain));
  }
  if (!Covers(br, rights)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "gate: the binding allows ", RightsName(br), ", the gate needs ", RightsName(rights)));
  }
  if (bs == Scope::kThread && bt != ts.tid) {
    return absl::PermissionDeniedError("gate: the binding belongs to another thread");
  }
  if (ts.depth.load(std::memory_order_relaxed) >= kMaxGateDepth) {
    return absl::ResourceExhaustedError("gate: nested too deeply");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Protection::EnterGate(Binding binding, DomainId domain, Rights rights,
                                   CallerRights caller) {
  Core* const core = core_;
  ThreadState* ts = SelfState(core);
  const bool keep = caller == CallerRights::kKeep;
  GASP_RETURN_IF_ERROR(CheckBinding(*core, *ts, binding, domain, rights));
  DomainSlot& slot = core->domains[domain];
  if (core->kind == BackendKind::kPkeys) {
    // Fast path: the domain has a key and is not being evicted. No lock, no
    // system call: pin, push the frame, one WRPKRU.
    if (slot.fast_pins.fetch_add(1, std::memory_order_acq_rel) >= 0) {
      if (slot.key.load(std::memory_order_acquire) >= 0) {
        // LRU: the current tick, read not bumped (a shared increment on
        // every call would bounce a cache line between cores); only the slow
        // path advances it, which is enough to tell recent from stale.
        slot.last_entered.store(core->tick.load(std::memory_order_relaxed),
                                std::memory_order_relaxed);
        const int depth = ts->depth.load(std::memory_order_relaxed);
        ts->frames[depth] = GateFrame{domain, rights, keep, true};
        ts->depth.store(depth + 1, std::memory_order_release);
        const uint32_t cur = ReadPkru();
        const uint32_t want = ComputePkru(*core, ts, cur);
        if (want != cur) WritePkru(want);
        return absl::OkStatus();
      }
    }
    slot.fast_pins.fetch_sub(1, std::memory_order_acq_rel);
  }
  // Slow path: the domain needs a key (pkeys) or a process-wide mprotect.
  const bool serialize = core->kind == BackendKind::kMprotect;
  if (serialize) core->gate_mu.lock();
  absl::Status st;
  {
    std::lock_guard<std::mutex> lock(core->mu);
    st = CheckBinding(*core, *ts, binding, domain, rights);
    if (st.ok()) st = core->backend->Hold(domain, rights);
    if (st.ok()) {
      slot.last_entered.store(core->tick.fetch_add(1) + 1);
      const int depth = ts->depth.load();
      ts->frames[depth] = GateFrame{domain, rights, keep, false};
      ts->depth.store(depth + 1, std::memory_order_release);
      core->backend->Apply();
    }
  }
  if (!st.ok() && serialize) core->gate_mu.unlock();
  return st;
}

void Protection::LeaveGate() {
  Core* const core = core_;
  ThreadState* ts = SelfState(core);
  const int depth = ts->depth.load(std::memory_order_relaxed);
  if (depth == 0) return;
  const GateFrame f = ts->frames[depth - 1];
  if (f.fast) {
    // Close the key in this thread's PKRU first, then unpin: once unpinned
    // the key may be given to another domain.
    ts->depth.store(depth - 1, std::memory_order_release);
    const uint32_t cur = ReadPkru();
    const uint32_t want = ComputePkru(*core, ts, cur);
    if (want != cur) WritePkru(want);
    core->domains[f.domain].fast_pins.fetch_sub(1, std::memory_order_acq_rel);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(core->mu);
    ts->depth.store(depth - 1, std::memory_order_release);
    core->backend->Unhold(f.domain, f.rights);
    core->backend->Apply();  // under mu, see Grant
  }
  if (core->kind == BackendKind::kMprotect) core->gate_mu.unlock();
}

uint64_t Protection::violations() const { return core_->violations.load(); }
uint64_t Protection::rekeys() const { return core_->rekeys.load(); }

}  // namespace protect
}  // namespace gasp

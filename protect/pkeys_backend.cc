// pkeys (MPK) backend: a protection key per held domain, rights in PKRU.
//
// Key virtualization (in the spirit of libmpk): the backend owns up to
// max_keys keys; one is the parking key, never enabled in any PKRU, which
// every unkeyed domain's ranges carry. Holding a domain (grant or gate entry)
// gives it a key: a free one, or the key of the least recently entered
// domain that nobody holds (pins == 0 and no fast gate frames), which is
// parked first. Keys are only taken from domains nobody holds, a slow-path
// PKRU write happens under core->mu, and a fast gate exit closes the key in
// its PKRU before it drops its fast pin: no thread can have a reassigned
// key enabled.
#include <errno.h>
#include <sys/mman.h>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "protect/core.h"
#include "protect/cpu_probe.h"

namespace gasp {
namespace protect {
namespace {

class PkeysBackend : public Backend {
 public:
  explicit PkeysBackend(Core* core) : core_(core) {}

  absl::Status Init(int max_keys) {
    for (int i = 0; i < max_keys; ++i) {
      // Disabled in the allocating thread from the start; other threads have
      // the kernel's default (access disabled) for keys never used before.
      int k = SysPkeyAlloc(0, PKEY_DISABLE_ACCESS);
      if (k < 0) {
        if (i >= 2) break;  // use what we got
        int e = errno;
        Shutdown();
        return ErrnoError("pkey_alloc", e);
      }
      if (k >= kMaxKeys) {
        SysPkeyFree(k);
        break;
      }
      keys_[num_keys_++] = k;
      core_->owned_mask |= PkruKeyMask(k);
    }
    core_->parking_key = keys_[0];
    for (int i = 1; i < num_keys_; ++i) free_[num_free_++] = keys_[i];
    GASP_LOG(Info) << "protect/pkeys: " << num_keys_ << " keys, parking key " << keys_[0];
    return absl::OkStatus();
  }

  BackendKind kind() const override { return BackendKind::kPkeys; }

  absl::Status Hold(DomainId d, Rights) override {
    DomainSlot& s = core_->domains[d];
    if (s.key.load() < 0) GASP_RETURN_IF_ERROR(AssignKey(d));
    ++s.pins;
    return absl::OkStatus();
  }

  void Unhold(DomainId d, Rights) override {
    DomainSlot& s = core_->domains[d];
    if (s.pins > 0) --s.pins;
  }

  absl::Status OnAttach(int slot, DomainId d) override {
    int k = core_->domains[d].key.load();
    return Protect(core_->ranges[slot], k >= 0 ? k : core_->parking_key);
  }

  void OnDetach(int slot) override {
    RangeSlot& r = core_->ranges[slot];
    Protect(r, 0).IgnoreError();
  }

  void Apply() override {
    const uint32_t cur = ReadPkru();
    const uint32_t want = ComputePkru(*core_, SignalSafeThreadState(core_), cur);
    if (want != cur) WritePkru(want);
  }

  void Shutdown() override {
    for (int i = 0; i < kMaxRanges; ++i) {
      RangeSlot& r = core_->ranges[i];
      if (r.domain.load() >= 0) Protect(r, 0).IgnoreError();
    }
    // Close our keys in this thread before freeing them (the kernel leaves
    // PKRU alone on pkey_free).
    uint32_t v = ReadPkru();
    for (int i = 0; i < num_keys_; ++i) v |= PkruAd(keys_[i]) | PkruWd(keys_[i]);
    WritePkru(v);
    for (int i = 0; i < num_keys_; ++i) SysPkeyFree(keys_[i]);
    num_keys_ = 0;
    num_free_ = 0;
  }

  int MaxProt(DomainId) const override { return PROT_READ | PROT_WRITE; }

  int KeyOf(DomainId d) const override {
    if (d <= 0 || d >= kMaxDomains) return -1;
    return core_->domains[d].key.load();
  }
  int ParkingKey() const override { return core_->parking_key; }

 private:
  absl::Status Protect(const RangeSlot& r, int key) {
    void* a = reinterpret_cast<void*>(r.start.load());
    size_t len = r.end.load() - r.start.load();
    int e = core_->apply_prot(a, len, r.open_prot, key, core_->apply_prot_context);
    if (e != 0) {
      return ErrnoError(absl::StrCat("pkey_mprotect(", absl::Hex(reinterpret_cast<uintptr_t>(a)),
                                     ", ", len, ", key ", key, ")"),
                        e);
    }
    return absl::OkStatus();
  }

  absl::Status SetDomainKey(DomainId d, int key) {
    for (int i = 0; i < kMaxRanges; ++i) {
      RangeSlot& r = core_->ranges[i];
      if (r.domain.load() == d) GASP_RETURN_IF_ERROR(Protect(r, key));
    }
    return absl::OkStatus();
  }

  absl::Status AssignKey(DomainId d) {
    int key = -1;
    if (num_free_ > 0) {
      key = free_[--num_free_];
    } else {
      // Evict the least recently entered unpinned keyed domain.
      // Candidates in LRU order; a candidate must have no holders, and its
      // fast pins are closed (0 -> kEvicting) before it loses the key.
      DomainId victim = -1;
      for (int attempt = 0; attempt < num_keys_ && victim < 0; ++attempt) {
        DomainId best = -1;
        for (int i = 0; i < num_keys_; ++i) {
          int owner = core_->key_owner[keys_[i]].load();
          if (owner <= 0 || owner == d) continue;
          const DomainSlot& o = core_->domains[owner];
          if (o.pins != 0 || o.fast_pins.load() != 0) continue;
          if (best < 0 || o.last_entered.load() < core_->domains[best].last_entered.load()) {
            best = owner;
          }
        }
        if (best < 0) break;
        int zero = 0;
        if (core_->domains[best].fast_pins.compare_exchange_strong(zero, kEvicting)) victim = best;
      }
      if (victim < 0) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "protect/pkeys: all ", num_keys_ - 1, " keys are held by domains in use; cannot give "
            "domain ", d, " a key"));
      }
      DomainSlot& v = core_->domains[victim];
      key = v.key.load();
      absl::Status parked = SetDomainKey(victim, core_->parking_key);
      if (parked.ok()) {
        v.key.store(-1);
        core_->key_owner[key].store(-1);
        core_->rekeys.fetch_add(1);
      }
      v.fast_pins.store(0);  // reopen: a fast entry now finds key -1 (slow path)
      GASP_RETURN_IF_ERROR(parked);
    }
    GASP_RETURN_IF_ERROR(SetDomainKey(d, key));
    core_->domains[d].key.store(key);
    core_->key_owner[key].store(d, std::memory_order_release);
    return absl::OkStatus();
  }

  Core* core_;
  int keys_[kMaxKeys] = {0};
  int num_keys_ = 0;
  int free_[kMaxKeys] = {0};
  int num_free_ = 0;
};

}  // namespace

std::unique_ptr<Backend> NewPkeysBackend(Core* core, int max_keys, absl::Status* status) {
  auto b = std::make_unique<PkeysBackend>(core);
  *status = b->Init(max_keys);
  if (!status->ok()) return nullptr;
  return b;
}

}  // namespace protect
}  // namespace gasp

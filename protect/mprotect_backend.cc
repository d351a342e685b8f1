// mprotect backend: the process-wide fallback for CPUs without PKU.
//
// A domain's ranges are PROT_NONE while nobody holds it; while some holder
// (a thread grant, a process grant or a thread inside a gate into it) has
// kRead they are open_prot without PROT_WRITE; with a kReadWrite holder
// they are open_prot. This is PROCESS-WIDE: every thread of the process
// sees an open domain, not only the holder. Gate calls are serialized by
// Core::gate_mu (see Protection::EnterGate), so only one thread is inside
// gates at a time; threads that are not in a gate are not isolated from open
// domains. Each switch costs one mprotect per range (and a TLB shootdown).
#include <errno.h>
#include <sys/mman.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "protect/core.h"

namespace gasp {
namespace protect {
namespace {

class MprotectBackend : public Backend {
 public:
  explicit MprotectBackend(Core* core) : core_(core) {}

  BackendKind kind() const override { return BackendKind::kMprotect; }

  absl::Status Hold(DomainId d, Rights rights) override {
    DomainSlot& s = core_->domains[d];
    const int before = ProtOf(d, PROT_READ | PROT_WRITE);
    if (rights == Rights::kReadWrite) {
      s.writers.fetch_add(1);
    } else {
      s.readers.fetch_add(1);
    }
    ++s.pins;
    if (ProtOf(d, PROT_READ | PROT_WRITE) != before) return Reprotect(d);
    return absl::OkStatus();
  }

  void Unhold(DomainId d, Rights rights) override {
    DomainSlot& s = core_->domains[d];
    const int before = ProtOf(d, PROT_READ | PROT_WRITE);
    if (rights == Rights::kReadWrite) {
      s.writers.fetch_sub(1);
    } else {
      s.readers.fetch_sub(1);
    }
    if (s.pins > 0) --s.pins;
    if (ProtOf(d, PROT_READ | PROT_WRITE) != before) Reprotect(d).IgnoreError();
  }

  absl::Status OnAttach(int slot, DomainId d) override { return Protect(core_->ranges[slot], d); }

  void OnDetach(int slot) override {
    RangeSlot& r = core_->ranges[slot];
    core_->apply_prot(reinterpret_cast<void*>(r.start.load()), r.end.load() - r.start.load(),
                      r.open_prot, -1, core_->apply_prot_context);
  }

  void Apply() override {}  // nothing per thread

  int MaxProt(DomainId d) const override { return ProtOf(d, PROT_READ | PROT_WRITE); }

  void Shutdown() override {
    for (int i = 0; i < kMaxRanges; ++i) {
      RangeSlot& r = core_->ranges[i];
      if (r.domain.load() >= 0) OnDetach(i);
    }
  }

 private:
  // The protection of a range of `d` whose open protection is `open_prot`.
  int ProtOf(DomainId d, int open_prot) const {
    const DomainSlot& s = core_->domains[d];
    if (s.writers.load() > 0) return open_prot;
    if (s.readers.load() > 0) return open_prot & ~PROT_WRITE;
    return PROT_NONE;
  }

  absl::Status Protect(const RangeSlot& r, DomainId d) {
    void* a = reinterpret_cast<void*>(r.start.load());
    size_t len = r.end.load() - r.start.load();
    int e = core_->apply_prot(a, len, ProtOf(d, r.open_prot), -1, core_->apply_prot_context);
    if (e != 0) {
      return ErrnoError(
          absl::StrCat("mprotect(", absl::Hex(reinterpret_cast<uintptr_t>(a)), ", ", len, ")"), e);
    }
    return absl::OkStatus();
  }

  absl::Status Reprotect(DomainId d) {
    for (int i = 0; i < kMaxRanges; ++i) {
      RangeSlot& r = core_->ranges[i];
      if (r.domain.load() == d) GASP_RETURN_IF_ERROR(Protect(r, d));
    }
    return absl::OkStatus();
  }

  Core* core_;
};

}  // namespace

std::unique_ptr<Backend> NewMprotectBackend(Core* core) {
  return std::make_unique<MprotectBackend>(core);
}

}  // namespace protect
}  // namespace gasp

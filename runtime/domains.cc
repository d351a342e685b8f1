// Protection domains in the runtime: the protect/ layer for this process's
// threads, and per-domain memory registrations whose keys only granted ranks
// receive (remote protection). docs/protection.md has the model.
#include <sys/mman.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "consistency/tags.h"
#include "gasp/gasp.h"
#include "protect/code_scan.h"
#include "runtime/key_grant.h"
#include "runtime/public_status.h"
#include "runtime/runtime_internal.h"
#include "runtime/state.h"

namespace gasp {
namespace rt {
namespace {

using protect::Rights;

using consistency::kKeyGrantTag;

Rights ToRights(Access a) { return static_cast<Rights>(static_cast<uint8_t>(a)); }
Access ToAccess(Rights r) { return static_cast<Access>(static_cast<uint8_t>(r)); }
Rights Union(Rights a, Rights b) {
  return static_cast<Rights>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}

// protect::ApplyProtFn: pages of the global range keep min(coherence state,
// domain protection); anything else gets `prot` as asked.
int ApplyProt(void* addr, size_t len, int prot, int pkey, void* context) {
  State* s = static_cast<State*>(context);
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  if (s->coherence != nullptr && s->range->Contains(a)) {
    return s->coherence->ApplyProtection(a - s->range->base(), len, prot, pkey);
  }
  return protect::DefaultApplyProt(addr, len, prot, pkey, nullptr);
}

// consistency::ProtCapFn.
int Cap(int local_domain, void* context) {
  return static_cast<protect::Protection*>(context)->MaxProt(local_domain);
}

absl::StatusOr<DomainInfo*> Find(State& s, int domain) {
  if (domain <= 0 || domain >= static_cast<int>(s.domains.size())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown protection domain %d (this job has domains 1..%d; Domain() is the default "
        "domain, which needs no grant)",
        domain, static_cast<int>(s.domains.size()) - 1));
  }
  return &s.domains[domain];
}

// Sends `grantee` this rank's keys for d's segments [first_seg, end), or, on
// the grantee, receives every other rank's and installs them once all are
// valid. Collective over all ranks (only the grantee waits).
absl::Status ExchangeKeys(State& s, int domain, int grantee, size_t first_seg) {
  DomainInfo& d = s.domains[domain];
  const uint64_t epoch = ++s.key_epoch;
  const Rights access = d.granted[grantee];
  const size_t n = d.segments.size() - first_seg;
  if (s.rank != grantee) {
    KeyGrant g = MakeKeyGrant(epoch, static_cast<uint32_t>(domain),
                              static_cast<uint32_t>(access));
    for (size_t i = first_seg; i < d.segments.size(); ++i) {
      const DomainInfo::Seg& seg = d.segments[i];
      KeyGrantEntry* e = g.add_entries();
      e->set_segment_offset(seg.offset);
      e->set_key(access == Rights::kReadWrite ? seg.rw_key : seg.ro_key);
    }
    std::vector<uint8_t> bytes = EncodeKeyGrant(g);
    return Annotate(s.transport->Send(grantee, kKeyGrantTag, bytes),
                    absl::StrFormat("sending the keys of domain %d to %s", domain,
                                    Describe(grantee)));
  }
  const absl::Time deadline = absl::Now() + s.config.timeout;
  std::vector<KeyGrant> got(s.size);
  for (int r = 0; r < s.size; ++r) {
    if (r == s.rank) continue;
    absl::StatusOr<transport::Message> m = s.transport->Recv(kKeyGrantTag, r, deadline);
    if (!m.ok()) {
      return Annotate(m.status(), absl::StrFormat(
          "waiting for the keys of domain %d from %s (GASP_TIMEOUT=%s)", domain, Describe(r),
          absl::FormatDuration(s.config.timeout)));
    }
    absl::StatusOr<KeyGrant> g = DecodeKeyGrant(m->payload);
    if (!g.ok()) {
      return Annotate(g.status(), absl::StrFormat("keys of domain %d from %s rejected", domain,
                                                  Describe(r)));
    }
    if (g->epoch() != epoch || g->domain() != static_cast<uint32_t>(domain) ||
        g->access() != static_cast<uint32_t>(access)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "collective mismatch: this rank expects key exchange %d (domain %d, access %d), %s "
          "sent %d (domain %d, access %d); every rank must make the same CoNewDomain, CoAlloc "
          "and CoGrant calls in the same order",
          epoch, domain, static_cast<int>(access), Describe(r), g->epoch(), g->domain(),
          g->access()));
    }
    if (static_cast<size_t>(g->entries_size()) != n) {
      return absl::DataLossError(absl::StrFormat(
          "keys of domain %d from %s: %d segments, expected %d", domain, Describe(r),
          g->entries_size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      if (g->entries(i).segment_offset() != d.segments[first_seg + i].offset) {
        return absl::DataLossError(absl::StrFormat(
            "keys of domain %d from %s: entry %d is for offset %#x, expected %#x", domain,
            Describe(r), i, g->entries(i).segment_offset(), d.segments[first_seg + i].offset));
      }
    }
    got[r] = std::move(*g);
  }
  // Everything checked: install.
  for (int r = 0; r < s.size; ++r) {
    if (r == s.rank) continue;
    for (size_t i = 0; i < n; ++i) (*d.segments[first_seg + i].keys)[r] = got[r].entries(i).key();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status InitProtection(State& s) {
  protect::ProtectionOptions o;
  GASP_RETURN_IF_ERROR(protect::ParseBackend(s.config.protect, &o.backend));
  o.apply_prot = ApplyProt;
  o.apply_prot_context = &s;
  absl::StatusOr<std::unique_ptr<protect::Protection>> p = protect::Protection::Create(o);
  if (!p.ok()) {
    return absl::Status(p.status().code(),
                        absl::StrCat(p.status().message(),
                                     "; set GASP_PROTECT=auto or mprotect (works on every CPU)"));
  }
  s.protection = std::move(*p);
  if (s.protection->backend() == protect::BackendKind::kPkeys) {
    // ERIM's check: code that can change PKRU behind the gates.
    GASP_RETURN_IF_ERROR(
        protect::CheckLoadedCode(protect::ScanLoadedCode(), s.config.pkeys_strict));
  }
  DomainInfo def;
  def.name = "default";
  def.local = protect::kDefaultDomain;
  s.domains.push_back(std::move(def));
  GASP_LOG(Info) << "protection domains: " << protect::BackendName(s.protection->backend())
                 << " (" << s.protection->backend_reason() << ")";
  return absl::OkStatus();
}

void ConnectProtection(State& s) { s.coherence->SetProtCap(Cap, s.protection.get()); }

absl::StatusOr<protect::DomainId> LocalDomain(State& s, int domain) {
  GASP_ASSIGN_OR_RETURN(DomainInfo * d, Find(s, domain));
  return d->local;
}

absl::StatusOr<std::vector<uint64_t>*> DomainSegmentKeys(State& s, int domain, uint64_t offset,
                                                         uint64_t first_page, uint64_t end_page) {
  GASP_ASSIGN_OR_RETURN(DomainInfo * d, Find(s, domain));
  DomainInfo::Seg seg;
  seg.offset = offset;
  if (end_page > first_page) {
    const uint64_t off = first_page << gas::kPageShift;
    const uint64_t len = (end_page - first_page) << gas::kPageShift;
    // Two registrations of the same pages: the read-only one is what kRead
    // grantees get, so their NIC cannot write even with a valid key.
    GASP_ASSIGN_OR_RETURN(transport::Region ro, RegisterHome(s, off, len, transport::kRemoteRead));
    GASP_ASSIGN_OR_RETURN(transport::Region rw, RegisterHome(s, off, len, transport::kRemoteAll));
    seg.ro_key = ro.rkey.packed;
    seg.rw_key = rw.rkey.packed;
  }
  s.segment_keys.emplace_back(s.size, 0);
  seg.keys = &s.segment_keys.back();
  (*seg.keys)[s.rank] = seg.rw_key;  // this rank's own atomics on its home pages
  d->segments.push_back(seg);
  for (int g = 0; g < s.size; ++g) {
    if (d->granted[g] == Rights::kNone) continue;
    GASP_RETURN_IF_ERROR(ExchangeKeys(s, domain, g, d->segments.size() - 1));
  }
  return seg.keys;
}

absl::Status AttachDomainSegment(State& s, int domain, uint64_t offset, uint64_t length) {
  GASP_ASSIGN_OR_RETURN(DomainInfo * d, Find(s, domain));
  return s.protection->Attach(d->local, s.range->app(offset), length, PROT_READ | PROT_WRITE);
}

}  // namespace rt

using rt::S;
using rt::State;

namespace {

absl::StatusOr<Domain> NewDomain(const std::string& name) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  s.sync->NoteCollective(absl::StrFormat("CoNewDomain(\"%s\")", name.substr(0, 60)));
  GASP_ASSIGN_OR_RETURN(protect::DomainId local, s.protection->CreateDomain(name));
  rt::DomainInfo d;
  d.name = name;
  d.local = local;
  d.granted.assign(s.size, protect::Rights::kNone);
  s.domains.push_back(std::move(d));
  const int id = static_cast<int>(s.domains.size()) - 1;
  // Domains are created only here, in the same order on every rank, so
  // protect/'s id is the collective id; segments and gates rely on it.
  if (local != id) {
    return absl::InternalError(absl::StrFormat(
        "protection domain %d got local id %d; domains must only be made with CoNewDomain", id,
        local));
  }
  // Every rank must be creating the same domain now.
  GASP_ASSIGN_OR_RETURN(std::vector<uint64_t> ids, s.sync->AllgatherU64(id));
  for (int r = 0; r < s.size; ++r) {
    if (ids[r] != static_cast<uint64_t>(id)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "collective mismatch: CoNewDomain(\"%s\") is domain %d here but %d on %s", name, id,
          ids[r], rt::Describe(r)));
    }
  }
  return Domain(id);
}

absl::Status Grant(Domain domain, int rank, Access access, Trust trust) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  s.sync->NoteCollective(absl::StrFormat("CoGrant(domain %d, rank %d, %s, %s)", domain.id(), rank,
                                         access == Access::kRead ? "read" : "read-write",
                                         trust == Trust::kTrusted ? "trusted" : "untrusted"));
  GASP_ASSIGN_OR_RETURN(rt::DomainInfo * d, rt::Find(s, domain.id()));
  if (rank < 0 || rank >= s.size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CoGrant: rank %d, the job has ranks 0..%d", rank, s.size - 1));
  }
  if (access == Access::kNone) {
    return absl::UnimplementedError(
        "CoGrant: access kNone (revoking) is not supported; grants only grow");
  }
  const protect::Rights want = rt::ToRights(access);
  const protect::Rights had = d->granted[rank];
  d->granted[rank] = rt::Union(had, want);
  if (!d->segments.empty()) GASP_RETURN_IF_ERROR(rt::ExchangeKeys(s, domain.id(), rank, 0));
  if (s.rank == rank && trust == Trust::kTrusted) {
    GASP_RETURN_IF_ERROR(
        s.protection->Grant(d->local, d->granted[rank], protect::Scope::kProcess));
  }
  GASP_LOG(Info) << "domain " << domain.id() << " (" << d->name << "): " << rt::Describe(rank)
                 << " granted " << protect::RightsName(d->granted[rank])
                 << (trust == Trust::kTrusted ? ", trusted" : ", untrusted (gates only)");
  return absl::OkStatus();
}

absl::Status GrantToThread(Domain domain, Access access) {
  State& s = S();
  protect::DomainId local;
  protect::Rights granted;
  {
    std::lock_guard<std::mutex> lock(s.alloc_mu);
    GASP_ASSIGN_OR_RETURN(rt::DomainInfo * d, rt::Find(s, domain.id()));
    local = d->local;
    granted = d->granted[s.rank];
  }
  if (!protect::Covers(granted, rt::ToRights(access))) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "GrantThread: %s was granted %s on domain %d, the thread asks for %s (CoGrant first)",
        rt::Describe(s.rank), protect::RightsName(granted), domain.id(),
        protect::RightsName(rt::ToRights(access))));
  }
  return s.protection->Grant(local, rt::ToRights(access), protect::Scope::kThread);
}

}  // namespace

Access AccessOf(Domain domain) {
  State& s = S();
  if (domain.id() == 0) return Access::kReadWrite;
  absl::StatusOr<protect::DomainId> local = rt::LocalDomain(s, domain.id());
  if (!local.ok()) return Access::kNone;
  return rt::ToAccess(s.protection->RightsOf(*local));
}

Domain DomainOf(const void* p) {
  State& s = S();
  // Local ids are the collective ids (TryCoNewDomain).
  return Domain(s.protection->DomainAt(p));
}

void OnThreadStart() { S().protection->OnThreadStart(); }

const char* ProtectionBackend() { return protect::BackendName(S().protection->backend()); }

namespace {

// The binding id and local domain of a new gate into `domain`.
absl::StatusOr<std::pair<uint64_t, int>> BindGate(Domain domain, Access access) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  GASP_ASSIGN_OR_RETURN(rt::DomainInfo * d, rt::Find(s, domain.id()));
  if (access == Access::kNone) return absl::InvalidArgumentError("OpenGate: access kNone");
  if (!protect::Covers(d->granted[s.rank], rt::ToRights(access))) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "OpenGate: %s was granted %s on domain %d (%s), the gate needs %s (CoGrant first)",
        rt::Describe(s.rank), protect::RightsName(d->granted[s.rank]), domain.id(), d->name,
        protect::RightsName(rt::ToRights(access))));
  }
  GASP_ASSIGN_OR_RETURN(protect::Binding b,
                        s.protection->Bind(d->local, rt::ToRights(access), protect::Scope::kProcess));
  return std::make_pair(b.id, static_cast<int>(d->local));
}

}  // namespace

Result<Domain> TryCoNewDomain(const std::string& name) { return ToPublic(NewDomain(name)); }

Domain CoNewDomain(const std::string& name) {
  absl::StatusOr<Domain> d = NewDomain(name);
  if (!d.ok()) rt::Die(d.status(), "gasp::CoNewDomain");
  return *d;
}

Status TryCoGrant(Domain domain, int rank, Access access, Trust trust) {
  return ToPublic(Grant(domain, rank, access, trust));
}

void CoGrant(Domain domain, int rank, Access access, Trust trust) {
  rt::Check(Grant(domain, rank, access, trust), "gasp::CoGrant");
}

Status GrantThread(Domain domain, Access access) {
  return ToPublic(GrantToThread(domain, access));
}

Result<Gate> OpenGate(Domain domain, Access access, CallerRights caller) {
  absl::StatusOr<std::pair<uint64_t, int>> b = BindGate(domain, access);
  if (!b.ok()) return ToPublic(b.status());
  Gate g;
  g.binding_ = b->first;
  g.domain_ = domain.id();
  g.local_ = b->second;
  g.access_ = access;
  g.caller_ = caller;
  return g;
}

namespace internal {

Status EnterGate(uint64_t binding, int local_domain, Access access, CallerRights caller) {
  if (binding == 0) {
    return Status(StatusCode::kPermissionDenied, "gate: not opened (use gasp::OpenGate)");
  }
  return ToPublic(S().protection->EnterGate(
      protect::Binding{binding}, local_domain, rt::ToRights(access),
      caller == CallerRights::kKeep ? protect::CallerRights::kKeep
                                    : protect::CallerRights::kSuspend));
}

void LeaveGate() { S().protection->LeaveGate(); }

}  // namespace internal
}  // namespace gasp

namespace gasp {
namespace internal {

protect::Rights GrantedTo(int domain, int rank) {
  rt::State& s = rt::S();
  if (domain == 0) return protect::Rights::kReadWrite;
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  if (domain < 0 || domain >= static_cast<int>(s.domains.size()) || rank < 0 || rank >= s.size) {
    return protect::Rights::kNone;
  }
  return s.domains[domain].granted[rank];
}

absl::Status CheckGlobalRef(uint64_t addr, uint64_t length, int rank, bool write) {
  rt::State& s = rt::S();
  if (length == 0) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  if (addr + length < addr || !s.range->Contains(addr) || !s.range->Contains(addr + length - 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GlobalRef [%#x, +%d) is outside the global range [%#x, %#x)", addr, length,
        s.range->base(), s.range->base() + s.range->size()));
  }
  const uint64_t first = (addr - s.range->base()) >> gas::kPageShift;
  const uint64_t last = (addr - s.range->base() + length - 1) >> gas::kPageShift;
  for (uint64_t p = first; p <= last;) {
    const gas::Segment* seg = s.segments->FindPage(p);
    if (seg == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GlobalRef [%#x, +%d) covers %#x, which is not allocated", addr, length,
          s.range->base() + (p << gas::kPageShift)));
    }
    if (seg->domain != protect::kDefaultDomain) {
      const int id = seg->domain;  // local ids are the collective ids
      const protect::Rights need = write ? protect::Rights::kReadWrite : protect::Rights::kRead;
      const protect::Rights have = rank >= 0 && rank < s.size ? s.domains[id].granted[rank]
                                                               : protect::Rights::kNone;
      if (!protect::Covers(have, need)) {
        return absl::PermissionDeniedError(absl::StrFormat(
            "GlobalRef [%#x, +%d) reaches into domain %d (%s), where %s holds %s and needs %s",
            addr, length, id, s.domains[id].name, rt::Describe(rank), protect::RightsName(have),
            protect::RightsName(need)));
      }
    }
    p = seg->end_offset() >> gas::kPageShift;
  }
  return absl::OkStatus();
}

absl::Status InstallBoundKey(int domain, uint64_t address, int rank, uint64_t key) {
  rt::State& s = rt::S();
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  GASP_ASSIGN_OR_RETURN(rt::DomainInfo * d, rt::Find(s, domain));
  if (rank < 0 || rank >= s.size) return absl::InvalidArgumentError("InstallBoundKey: bad rank");
  for (rt::DomainInfo::Seg& seg : d->segments) {
    const gas::Segment* g = s.segments->FindPage(seg.offset >> gas::kPageShift);
    if (g == nullptr) continue;
    const uint64_t lo = s.range->base() + g->offset, hi = s.range->base() + g->end_offset();
    if (address >= lo && address < hi) {
      if (rank != s.rank) (*seg.keys)[rank] = key;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "InstallBoundKey: no segment of domain %d contains %#x", domain, address));
}

absl::Status BindGrant(int domain, protect::Rights rights) {
  rt::State& s = rt::S();
  protect::DomainId local;
  protect::Rights now;
  {
    std::lock_guard<std::mutex> lock(s.alloc_mu);
    GASP_ASSIGN_OR_RETURN(rt::DomainInfo * d, rt::Find(s, domain));
    d->granted[s.rank] = rt::Union(d->granted[s.rank], rights);
    local = d->local;
    now = d->granted[s.rank];
  }
  return s.protection->Grant(local, now, protect::Scope::kProcess);
}

uint64_t OwnDomainKey(int domain, uint64_t address, bool write) {
  rt::State& s = rt::S();
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  if (domain <= 0 || domain >= static_cast<int>(s.domains.size())) return 0;
  for (const rt::DomainInfo::Seg& seg : s.domains[domain].segments) {
    const gas::Segment* g = s.segments->FindPage(seg.offset >> gas::kPageShift);
    if (g == nullptr) continue;
    if (address >= s.range->base() + g->offset && address < s.range->base() + g->end_offset()) {
      return write ? seg.rw_key : seg.ro_key;
    }
  }
  return 0;
}

}  // namespace internal
}  // namespace gasp

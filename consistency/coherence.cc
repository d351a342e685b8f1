#include "consistency/coherence.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/status.h"
#include "base/thread.h"
#include "base/wait.h"
#include "gas/fault_dispatcher.h"
#include "gas/fault_report.h"
#include "protect/cpu_probe.h"


namespace gasp {
namespace consistency {

using gas::kPageShift;
using gas::kPageSize;
using gas::Prot;
using transport::Op;
using transport::OpType;

namespace {

bool Trampoline(void* context, siginfo_t* info, ucontext_t* uc) {
  return static_cast<Coherence*>(context)->HandleFault(info, uc);
}

constexpr size_t kOpBatch = 1024;

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

}  // namespace

Coherence::Coherence(gas::GlobalRange* range, const gas::SegmentTable* segments,
                     transport::Transport* transport, std::vector<HomeInfo> homes,
                     const CoherenceOptions& options, FatalHandler fatal)
    : range_(range),
      segments_(segments),
      transport_(transport),
      homes_(std::move(homes)),
      options_(options),
      fatal_(fatal),
      prefetch_pages_(options.prefetch_pages) {}

absl::StatusOr<std::unique_ptr<Coherence>> Coherence::Create(
    gas::GlobalRange* range, const gas::SegmentTable* segments, transport::Transport* transport,
    std::vector<HomeInfo> homes, const CoherenceOptions& options, FatalHandler fatal) {
  if (options.home_open_pages < 1 || options.home_open_pages > kMaxHomeOpenPages) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_HOME_OPEN_PAGES=%u: must be 1..%u", options.home_open_pages, kMaxHomeOpenPages));
  }
  if (static_cast<int>(homes.size()) != options.nranks) {
    return absl::InvalidArgumentError("home table size differs from the number of ranks");
  }
  std::unique_ptr<Coherence> c(
      new Coherence(range, segments, transport, std::move(homes), options, fatal));
  uint64_t pages = range->num_pages();
  GASP_ASSIGN_OR_RETURN(c->states_mem_, SparseArray::Create(pages * sizeof(uint32_t)));
  c->states_ = static_cast<std::atomic<uint32_t>*>(c->states_mem_.data());
  GASP_ASSIGN_OR_RETURN(c->dirty_, PageBitmap::Create(pages));
  GASP_ASSIGN_OR_RETURN(c->cached_, PageBitmap::Create(pages));
  GASP_ASSIGN_OR_RETURN(c->epoch_written_, PageBitmap::Create(pages));
  GASP_ASSIGN_OR_RETURN(c->pending_, PageBitmap::Create(pages));
  GASP_ASSIGN_OR_RETURN(c->dropped_, PageBitmap::Create(pages));
  c->hot_block_ = HotBlockPages(pages);
  const uint64_t blocks = (pages + c->hot_block_ - 1) / c->hot_block_;
  GASP_ASSIGN_OR_RETURN(c->hot_blocks_, PageBitmap::Create(blocks));
  GASP_ASSIGN_OR_RETURN(c->block_take_mem_, SparseArray::Create(blocks * sizeof(uint32_t)));
  c->block_take_ = static_cast<std::atomic<uint32_t>*>(c->block_take_mem_.data());
  GASP_ASSIGN_OR_RETURN(c->block_hot_mem_, SparseArray::Create(blocks * sizeof(uint64_t)));
  c->block_hot_ = static_cast<std::atomic<uint64_t>*>(c->block_hot_mem_.data());
  const uint32_t twins = static_cast<uint32_t>(options.max_dirty_pages);
  GASP_ASSIGN_OR_RETURN(c->twin_mem_, SparseArray::Create(uint64_t{twins} * kPageSize));
  c->twin_free_.reserve(twins);
  for (uint32_t i = twins; i > 0; --i) c->twin_free_.push_back(i);  // slot + 1
  c->scratch_pages_.resize(twins);
  c->scratch_bridged_.reserve(kMaxBridged);
  c->scratch_dirty_.resize(twins);
  c->scratch_runs_.resize(MaxDiffRuns(kPageSize));
  c->scratch_ops_.resize(kOpBatch);
  c->diff_service_ = std::make_unique<DiffService>(range, transport, options.rank);
  c->scratch_short_.resize(MaxDiffRuns(kPageSize));
  c->packed_.resize(options.nranks);
  c->seq_ = std::vector<SeqState>(options.nranks);
  if (options.cache_reg_chunk > 0 && options.register_local) {
    if (options.cache_reg_chunk % kPageSize != 0) {
      return absl::InvalidArgumentError("GASP_CACHE_REG_CHUNK must be a multiple of 4 KiB");
    }
    const uint64_t chunks = (range->size() + options.cache_reg_chunk - 1) / options.cache_reg_chunk;
    c->chunk_requested_ = std::vector<std::atomic<uint64_t>>((chunks + 63) / 64);
    c->chunk_registered_ = std::vector<std::atomic<uint64_t>>((chunks + 63) / 64);
    Coherence* self = c.get();
    c->registrar_ = std::thread([self] { self->RegistrarLoop(); });
  }
  return c;
}

Coherence::~Coherence() {
  if (diff_service_) diff_service_->Stop();
  if (installed_) gas::UnregisterFaultHandler(Trampoline, this);
  if (registrar_.joinable()) {
    chunk_stop_.store(true);
    chunk_wake_.fetch_add(1);
    WakeAll(&chunk_wake_);
    registrar_.join();
  }
}

bool Coherence::ChunkRegistered(uint64_t offset) const {
  if (chunk_registered_.empty()) return false;
  const uint64_t chunk = offset / options_.cache_reg_chunk;
  return (chunk_registered_[chunk / 64].load(std::memory_order_acquire) >> (chunk % 64)) & 1;
}

void Coherence::RequestChunk(uint64_t offset) {
  const uint64_t chunk = offset / options_.cache_reg_chunk;
  const uint64_t bit = uint64_t{1} << (chunk % 64);
  if (chunk_registered_[chunk / 64].load(std::memory_order_relaxed) & bit) return;
  if (chunk_failed_.load(std::memory_order_relaxed)) return;
  if (chunk_requested_[chunk / 64].fetch_or(bit, std::memory_order_acq_rel) & bit) return;
  chunk_wake_.fetch_add(1, std::memory_order_release);
  WakeAll(&chunk_wake_);  // a futex wake: fine in signal context
}

void Coherence::RegistrarLoop() {
  SetThreadName("gasp-register");
  const uint64_t chunk = options_.cache_reg_chunk;
  for (;;) {
    const uint32_t seen = chunk_wake_.load(std::memory_order_acquire);
    if (chunk_stop_.load()) return;
    for (size_t w = 0; w < chunk_requested_.size(); ++w) {
      uint64_t todo = chunk_requested_[w].load(std::memory_order_acquire) &
                      ~chunk_registered_[w].load(std::memory_order_acquire);
      while (todo != 0 && !chunk_stop_.load()) {
        const int b = __builtin_ctzll(todo);
        todo &= todo - 1;
        const uint64_t c = w * 64 + b;
        const uint64_t len = std::min(chunk, range_->size() - c * chunk);
        absl::Status s = options_.register_local(range_->sys(c * chunk), len);
        if (!s.ok()) {
          // Typically the locked-memory limit: stop asking; fetches keep
          // working through bounce buffers.
          GASP_LOG(Warn) << "cache registration stopped after " << registered_chunks_.load()
                         << " chunks (fetches fall back to bounce buffers): " << s;
          chunk_failed_.store(true);
          return;
        }
        chunk_registered_[w].fetch_or(uint64_t{1} << b, std::memory_order_release);
        registered_chunks_.fetch_add(1);
        StatAdd(Counter::kCacheChunksRegistered);
      }
    }
    WaitWhileEqual(&chunk_wake_, seen, absl::Now() + absl::Seconds(1));
  }
}

absl::Status Coherence::Install() {
  GASP_RETURN_IF_ERROR(gas::RegisterFaultHandler(Trampoline, this));
  installed_ = true;
  // Started whatever this rank's own setting: other ranks may pack.
  diff_service_->Start();
  return absl::OkStatus();
}

absl::Status Coherence::AddSegment(const gas::Segment& segment) {
  // Home pages start closed (read-only): the first write to a block of them
  // in each notice interval faults and is noted (HomeWriteFault), so every
  // write a home makes reaches the next notices of both sets.
  std::lock_guard<std::mutex> lock(sync_mu_);
  absl::Status status;
  segment.ForEachHomeRun(options_.rank, [&](uint64_t first, uint64_t count) {
    for (uint64_t p = first; p < first + count; ++p) state(p).store(MakeWord(kHome));
    if (status.ok()) {
      status = range_->Protect(first << kPageShift, count << kPageShift,
                               Capped(Prot::kRead, segment));
    }
  });
  return status;
}

namespace {

int ProtBits(Prot p) {
  switch (p) {
    case Prot::kNone: return PROT_NONE;
    case Prot::kRead: return PROT_READ;
    case Prot::kReadWrite: return PROT_READ | PROT_WRITE;
  }
  return PROT_NONE;
}

Prot ProtOfBits(int bits) {
  if (bits & PROT_WRITE) return (bits & PROT_READ) ? Prot::kReadWrite : Prot::kNone;
  return (bits & PROT_READ) ? Prot::kRead : Prot::kNone;
}

// The app-view protection of a page whose state word is `word`.
Prot StateProt(uint32_t word) {
  switch (StateOf(word)) {
    case kRead: return Prot::kRead;
    case kWrite: return Prot::kReadWrite;
    case kHome: return (word & kHomeOpen) ? Prot::kReadWrite : Prot::kRead;
    default: return Prot::kNone;
  }
}

}  // namespace

Prot Coherence::Capped(Prot prot, const gas::Segment& seg) const {
  if (seg.domain == 0 || cap_ == nullptr) return prot;
  return ProtOfBits(ProtBits(prot) & cap_(seg.domain, cap_context_));
}

Prot Coherence::CappedAt(Prot prot, uint64_t page) const {
  if (cap_ == nullptr) return prot;
  const gas::Segment* seg = segments_->FindPage(page);
  return seg == nullptr ? prot : Capped(prot, *seg);
}

int Coherence::ApplyProtection(uint64_t offset, uint64_t length, int max_prot, int pkey) {
  const uint64_t first = offset >> kPageShift;
  const uint64_t end = (offset + length + kPageSize - 1) >> kPageShift;
  // Batches of pages: take their busy bits in ascending order (waiting out
  // faults and releases; every path that holds one busy bit while waiting
  // for another also goes upwards, so this cannot deadlock), set the
  // protection run by run, let them go.
  constexpr uint64_t kBatch = 512;
  uint32_t words[kBatch];
  for (uint64_t b = first; b < end; b += kBatch) {
    const uint64_t e = std::min(end, b + kBatch);
    for (uint64_t p = b; p < e; ++p) words[p - b] = TakeBusy(p);
    int result = 0;
    for (uint64_t p = b; p < e && result == 0;) {
      const int prot = ProtBits(StateProt(words[p - b])) & max_prot;
      uint64_t q = p + 1;
      while (q < e && (ProtBits(StateProt(words[q - b])) & max_prot) == prot) ++q;
      char* a = range_->app(p << kPageShift);
      const size_t len = (q - p) << kPageShift;
      const int rc = pkey >= 0 ? protect::SysPkeyMprotect(a, len, prot, pkey)
                               : mprotect(a, len, prot);
      if (rc != 0) result = errno;
      p = q;
    }
    for (uint64_t p = b; p < e; ++p) {
      state(p).store(words[p - b], std::memory_order_release);
      WakePage(&state(p));
    }
    if (result != 0) return result;
  }
  return 0;
}

void Coherence::HomePagesIn(uint64_t addr, uint64_t length,
                            std::vector<uint64_t>* pages) const {
  if (length == 0 || !range_->Contains(addr)) return;
  const uint64_t first = (addr - range_->base()) >> kPageShift;
  const uint64_t last =
      (std::min(addr - range_->base() + length, range_->size()) - 1) >> kPageShift;
  for (uint64_t p = first; p <= last; ++p) {
    if (StateOf(state(p).load(std::memory_order_acquire)) == kHome) pages->push_back(p);
  }
}

uint64_t Coherence::MissingPages(uint64_t addr, uint64_t length) const {
  if (length == 0 || !range_->Contains(addr)) return 0;
  const uint64_t first = (addr - range_->base()) >> kPageShift;
  const uint64_t last =
      (std::min(addr - range_->base() + length, range_->size()) - 1) >> kPageShift;
  uint64_t missing = 0;
  for (uint64_t p = first; p <= last; ++p) {
    if (StateOf(state(p).load(std::memory_order_acquire)) == kInvalid &&
        segments_->FindPage(p) != nullptr) {
      ++missing;
    }
  }
  return missing;
}

absl::StatusOr<uint64_t> Coherence::InstallFromHome(uint64_t first,
                                                    absl::Span<const uint8_t* const> data,
                                                    int from_rank) {
  const uint64_t n = data.size();
  if (n == 0) return 0;
  const gas::Segment* seg = first < range_->num_pages() ? segments_->FindPage(first) : nullptr;
  for (uint64_t p = first; p < first + n; ++p) {
    if (seg == nullptr || p >= seg->end_offset() >> kPageShift) {
      seg = p < range_->num_pages() ? segments_->FindPage(p) : nullptr;
    }
    if (seg == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bundled page %#x: not an allocated page of the global range",
          range_->base() + (p << kPageShift)));
    }
    if (seg->policy == gas::HomePolicy::kFirstTouch && seg->HomeOfPage(p) < 0) {
      LearnTouchHomes(p, *seg);  // first touch: ask the directory, do not trust the sender
    }
    if (seg->HomeOfPage(p) != from_rank) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bundled page %#x: sent by rank %d, but its home is rank %d",
          range_->base() + (p << kPageShift), from_rank, seg->HomeOfPage(p)));
    }
  }
  // Busy bits in ascending order (as every multi-page path takes them),
  // contents, then one protection change per run of installed pages.
  std::vector<uint32_t> words(n);
  for (uint64_t i = 0; i < n; ++i) words[i] = TakeBusy(first + i);
  absl::Status status;
  uint64_t installed = 0;
  for (uint64_t i = 0; i < n;) {
    const uint32_t s0 = StateOf(words[i]);
    if (s0 != kInvalid && s0 != kRead) {
      ++i;
      continue;
    }
    const Prot prot = CappedAt(Prot::kRead, first + i);
    uint64_t j = i;
    while (j < n && (StateOf(words[j]) == kInvalid || StateOf(words[j]) == kRead) &&
           CappedAt(Prot::kRead, first + j) == prot) {
      const uint64_t offset = (first + j) << kPageShift;
      if (data[j] != nullptr) {
        std::memcpy(range_->sys(offset), data[j], kPageSize);
      } else {
        std::memset(range_->sys(offset), 0, kPageSize);
      }
      ++j;
    }
    if (status.ok()) status = range_->Protect((first + i) << kPageShift, (j - i) << kPageShift, prot);
    if (status.ok()) {
      for (uint64_t k = i; k < j; ++k) {
        if (cached_.Set(first + k)) cached_count_.fetch_add(1, std::memory_order_relaxed);
        words[k] = MakeWord(kRead);
      }
      installed += j - i;
    }
    i = j;
  }
  for (uint64_t i = 0; i < n; ++i) {
    state(first + i).store(words[i], std::memory_order_release);
    WakePage(&state(first + i));
  }
  StatAdd(Counter::kPagesInstalled, installed);
  if (!status.ok()) return status;
  return installed;
}

bool Coherence::PatchCleanCopy(uint64_t page,
                               absl::FunctionRef<bool(const uint8_t*, uint8_t*)> patch) {
  if (page >= range_->num_pages() || !HasCleanCopy(page)) return false;
  const uint32_t before = TakeBusy(page);
  bool patched = false;
  if (before == MakeWord(kRead)) {
    alignas(64) uint8_t next[kPageSize];
    uint8_t* copy = reinterpret_cast<uint8_t*>(range_->sys(page << kPageShift));
    if (patch(copy, next)) {
      std::memcpy(copy, next, kPageSize);
      patched = true;
    }
  }
  state(page).store(before, std::memory_order_release);
  WakePage(&state(page));
  if (patched) StatAdd(Counter::kPagesInstalled);
  return patched;
}

transport::RemoteKey Coherence::HomeKey(uint64_t addr, int home) const {
  transport::RemoteKey key;
  if (!range_->Contains(addr) || home < 0 || home >= options_.nranks) return key;
  const gas::Segment* seg = segments_->FindPage((addr - range_->base()) >> kPageShift);
  if (seg != nullptr && seg->rkeys != nullptr) key.packed = seg->rkeys[home];
  return key;
}

void Coherence::Fatal(const char* fmt, ...) const {
  char buf[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  fatal_(buf, false);
  _exit(1);  // fatal_ must not return; be sure
}

void Coherence::FatalPeer(bool peer_failed, const char* fmt, ...) const {
  char buf[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  fatal_(buf, peer_failed);
  _exit(1);
}

void Coherence::WakePage(std::atomic<uint32_t>* st) {
  // Pairs with the seq_cst increment in WaitNotBusy (Dekker): either the
  // waiter sees the new state before it sleeps, or it is counted here.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (page_waiters_.load(std::memory_order_relaxed) != 0) WakeAll(st);
}

void Coherence::WaitNotBusy(uint64_t page, uint32_t seen) {
  page_waiters_.fetch_add(1, std::memory_order_seq_cst);
  const bool ok = WaitWhileEqual(&state(page), seen, absl::Now() + options_.timeout);
  page_waiters_.fetch_sub(1, std::memory_order_seq_cst);
  if (!ok) {
    Fatal("global page %#lx stayed busy longer than GASP_TIMEOUT (%lds); a fetch or release "
          "is stuck",
          static_cast<unsigned long>(range_->base() + (page << kPageShift)),
          static_cast<long>(absl::ToInt64Seconds(options_.timeout)));
  }
}

uint32_t Coherence::TakeBusy(uint64_t page) {
  std::atomic<uint32_t>& st = state(page);
  for (;;) {
    uint32_t w = st.load(std::memory_order_acquire);
    if (IsBusy(w)) {
      WaitNotBusy(page, w);
      continue;
    }
    if (st.compare_exchange_weak(w, w | kBusy, std::memory_order_acq_rel)) return w;
  }
}

bool Coherence::HandleFault(siginfo_t* info, ucontext_t* uc) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (!range_->Contains(addr)) return false;
#ifdef SEGV_PKUERR
  if (info->si_code == SEGV_PKUERR) return false;  // a protection violation, not a miss
#endif
  uint64_t page = (addr - range_->base()) >> kPageShift;
  const gas::Segment* seg = segments_->FindPage(page);
  const bool write = gas::FaultIsWrite(uc);
  if (seg == nullptr) OutsideAllocation(info, uc, write);
  if (StateOf(state(page).load(std::memory_order_acquire)) == kHome) {
    if (!write) return false;  // home pages are always readable: not a coherence miss
    HomeWriteFault(page, *seg);
    return true;
  }
  if (seg->policy == gas::HomePolicy::kFirstTouch && seg->HomeOfPage(page) < 0) {
    const int home = ResolveTouch(page, *seg, write);
    if (home < 0 || home == options_.rank) return true;  // a zero copy or a home page now: retry
  }
  if (write) {
    WriteFault(page, *seg);
  } else {
    ReadFault(page, *seg);
  }
  return true;
}

void Coherence::OutsideAllocation(const siginfo_t* info, const ucontext_t* uc,
                                  bool write) const {
  // Where the program went wrong first (pc, backtrace; a debugger's
  // breakpoint), then what it hit.
  gas::ReportForeignFault(
      write ? "store outside any allocation" : "load outside any allocation", info, uc);
  const uint64_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  // Name the allocations on either side (signal context: a scan of the
  // append-only table, no allocation), so that an overflow into a guard
  // page (GASP_GUARD_PAGES) says whose end it ran off.
  const uint64_t offset = addr - range_->base();
  const gas::Segment* below = nullptr;
  const gas::Segment* above = nullptr;
  for (size_t i = 0; i < segments_->count(); ++i) {
    const gas::Segment& s = segments_->at(i);
    if (s.end_offset() <= offset && (below == nullptr || s.end_offset() > below->end_offset())) {
      below = &s;
    }
    if (s.offset > offset && (above == nullptr || s.offset < above->offset)) above = &s;
  }
  char near[320] = "";
  if (below != nullptr && below->collective_seq != 0) {
    snprintf(near, sizeof(near),
             "; %lu bytes past the end of the collective allocation of %lu bytes at %#lx "
             "(collective call #%lu)",
             static_cast<unsigned long>(offset - (below->offset + below->requested_bytes)),
             static_cast<unsigned long>(below->requested_bytes),
             static_cast<unsigned long>(range_->base() + below->offset),
             static_cast<unsigned long>(below->collective_seq));
  } else if (above != nullptr && above->collective_seq != 0) {
    snprintf(near, sizeof(near),
             "; %lu bytes before the collective allocation at %#lx (collective call #%lu)",
             static_cast<unsigned long>(above->offset - offset),
             static_cast<unsigned long>(range_->base() + above->offset),
             static_cast<unsigned long>(above->collective_seq));
  }
  Fatal("%s of address %#lx: inside the global range [%#lx, %#lx) but outside any allocation "
        "(never allocated, or out of bounds of an array)%s",
        write ? "store" : "load", static_cast<unsigned long>(addr),
        static_cast<unsigned long>(range_->base()),
        static_cast<unsigned long>(range_->base() + range_->size()), near);
}

namespace {
// Signal-safe monotonic clock (clock_gettime is async-signal-safe).
uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

void Coherence::ReadFault(uint64_t page, const gas::Segment& seg) {
  std::atomic<uint32_t>& st = state(page);
  uint32_t w = st.load(std::memory_order_acquire);
  for (;;) {
    if (IsBusy(w)) {
      WaitNotBusy(page, w);
      return;  // retry the access; it faults again if still needed
    }
    if (StateOf(w) != kInvalid) return;
    if (st.compare_exchange_weak(w, w | kBusy, std::memory_order_acq_rel)) break;
  }
  StatAdd(Counter::kReadFaults);
  const uint64_t t_start = MonotonicNs();
  const int home = seg.HomeOfPage(page);
  // Prefetch: following pages with the same home are contiguous at the home
  // too (the backing store is indexed by range offset), so one READ does.
  // Sequential faults widen the window (like the kernel's readahead): a
  // fault on the page right after the last run fetched from this home
  // doubles it, up to GASP_PREFETCH_MAX_PAGES; any other fault resets it.
  const int base = prefetch_pages_.load(std::memory_order_relaxed);
  uint64_t window = static_cast<uint64_t>(base);
  if (base > 0) {
    SeqState& sq = seq_[static_cast<size_t>(home)];
    const uint32_t last = sq.window.load(std::memory_order_relaxed);
    if (sq.next.load(std::memory_order_relaxed) == page) {
      window = std::min<uint64_t>(std::max<uint64_t>(2 * (last + 1), base) - 1,
                                  static_cast<uint64_t>(options_.prefetch_max_pages));
    }
  }
  // Beyond the window, pages this rank had cached until an acquire dropped
  // them are fetched too, up to kRefetchSpanPages ahead: iterative codes read
  // again what they read before the barrier (a halo, a shared vector).
  // Pages already valid (and, past the window, pages not read before) are
  // skipped rather than ending the window: the rest go as several READs in
  // one batch (one round trip, up to 64 READs), so a strided reader (a
  // column of a row-major matrix) is served in few faults.
  const uint64_t same_home = seg.SameHomeRun(page);
  const uint64_t limit = std::min<uint64_t>(1 + window, same_home);
  const uint64_t refetch_limit = std::min<uint64_t>(1 + kRefetchSpanPages, same_home);
  struct Run {
    uint64_t first, count;
    bool fresh;  // holds a page never cached here (its backing may be unallocated)
  };
  constexpr size_t kMaxRuns = 64;
  Run runs[kMaxRuns] = {{page, 1, !dropped_.Test(page)}};
  size_t n_runs = 1;
  uint64_t total = 1, again = 0, end = 1;
  for (uint64_t i = 1; i < refetch_limit; ++i) {
    if (i >= limit && !dropped_.Test(page + i)) continue;  // not read before: skip it
    uint32_t expected = MakeWord(kInvalid);
    if (!state(page + i).compare_exchange_strong(expected, kInvalid | kBusy,
                                                 std::memory_order_acq_rel)) {
      continue;  // valid (or being fetched): skip it
    }
    const bool fresh = !dropped_.Test(page + i);
    if (runs[n_runs - 1].first + runs[n_runs - 1].count == page + i) {
      ++runs[n_runs - 1].count;
      runs[n_runs - 1].fresh |= fresh;
    } else if (n_runs < kMaxRuns) {
      runs[n_runs++] = {page + i, 1, fresh};
    } else {
      state(page + i).store(MakeWord(kInvalid), std::memory_order_release);  // give it back
      WakePage(&state(page + i));
      break;
    }
    ++total;
    if (i >= limit) ++again;
    end = i + 1;
  }
  StatAdd(Counter::kPagesRefetchedAhead, again);
  if (base > 0) {
    seq_[static_cast<size_t>(home)].next.store(page + end, std::memory_order_relaxed);
    seq_[static_cast<size_t>(home)].window.store(static_cast<uint32_t>(window),
                                                 std::memory_order_relaxed);
  }
  // Mark the pages cached before the READ is posted: an acquire by another
  // thread that has already taken its lock either sees the mark (and waits
  // for this fetch, then drops the copy) or ran its walk before the mark,
  // and then this READ is posted after that lock was taken and returns
  // fresh data. Marking after the fetch would let an acquire miss a copy
  // fetched before its lock and keep it.
  Op ops[kMaxRuns];
  for (size_t r = 0; r < n_runs; ++r) {
    for (uint64_t p = runs[r].first; p < runs[r].first + runs[r].count; ++p) {
      if (cached_.Set(p)) cached_count_.fetch_add(1, std::memory_order_seq_cst);
      dropped_.Clear(p);
    }
    const uint64_t offset = runs[r].first << kPageShift;
    Op& op = ops[r];
    op.type = OpType::kRead;
    op.peer = home;
    op.local = range_->sys(offset);
    op.length = runs[r].count << kPageShift;
    op.remote_addr = homes_[home].sys_base + offset;
    op.rkey.packed = seg.rkeys[home];
    op.wr_id = runs[r].first;
    if (registrar_.joinable()) {
      RequestChunk(offset);
      RequestChunk(offset + ((runs[r].count - 1) << kPageShift));
    }
  }
  transport::CompletionCounter counter;
  absl::Status s = transport_->Post(absl::MakeConstSpan(ops, n_runs), &counter);
  if (s.ok()) {
    // While the requests are on the wire, have the kernel allocate the
    // destination pages (first touch of a cached page costs a shmem
    // allocation). Populating never changes contents, so it is harmless if
    // a reply lands first. Kernels before 5.14 reject it: ignored.
    // Pages an acquire dropped are allocated already (dropping only closes
    // the application view): only runs with a fresh page are populated.
    for (size_t r = 0; r < n_runs; ++r) {
      const uint64_t offset = runs[r].first << kPageShift;
      if (!runs[r].fresh) continue;
      if (!ChunkRegistered(offset) ||
          !ChunkRegistered(offset + ((runs[r].count - 1) << kPageShift))) {
        madvise(range_->sys(offset), runs[r].count << kPageShift, MADV_POPULATE_WRITE);
      }  // a registered chunk is pinned, hence populated already
    }
    const uint64_t t_wait = MonotonicNs();
    s = transport_->Wait(&counter, absl::Now() + options_.timeout);
    StatAdd(Counter::kFetchWaitNs, MonotonicNs() - t_wait);
  }
  if (!s.ok()) {
    std::string msg(s.message());
    FatalPeer(absl::IsUnavailable(s), "fetching global page %#lx from its home rank %d failed: %s",
              static_cast<unsigned long>(range_->base() + (page << kPageShift)), home,
              msg.c_str());
  }
  for (size_t r = 0; r < n_runs; ++r) {
    const uint64_t offset = runs[r].first << kPageShift;
    const int e = range_->ProtectRaw(offset, runs[r].count << kPageShift, Capped(Prot::kRead, seg));
    if (e != 0) {
      Fatal("mprotect(READ) of global page %#lx failed: %s%s",
            static_cast<unsigned long>(range_->base() + offset), strerror(e),
            e == ENOMEM ? "; raise vm.max_map_count (sysctl -w vm.max_map_count=1048576)" : "");
    }
    for (uint64_t p = runs[r].first; p < runs[r].first + runs[r].count; ++p) {
      state(p).store(MakeWord(kRead), std::memory_order_release);
      WakePage(&state(p));
    }
  }
  StatAdd(Counter::kPagesFetched, total);
  StatAdd(Counter::kPagesPrefetched, total - 1);
  StatAdd(Counter::kBytesFetched, total << kPageShift);
  StatAdd(Counter::kReadFaultNs, MonotonicNs() - t_start);
}

void Coherence::HomeWriteFault(uint64_t page, const gas::Segment& seg) {
  std::atomic<uint32_t>& st = state(page);
  uint32_t w = st.load(std::memory_order_acquire);
  for (;;) {
    if (IsBusy(w)) {
      WaitNotBusy(page, w);
      return;  // retry the store
    }
    if (StateOf(w) != kHome || (w & kHomeOpen)) return;  // opened meanwhile
    if (st.compare_exchange_weak(w, w | kBusy, std::memory_order_acq_rel)) break;
  }
  // Open the whole aligned block of home pages around the faulting one
  // (GASP_HOME_OPEN_PAGES), noting every page of it as written: a fault and
  // an mprotect per page cost more than the occasional page another rank
  // refetches because its neighbour was written. The other pages are taken
  // only if free (never waiting while holding a busy bit).
  const uint64_t block = options_.home_open_pages;
  const uint64_t seg_first = seg.offset >> kPageShift;
  uint64_t lo = std::max(seg_first, page - page % block);
  uint64_t hi = std::min(page - page % block + block, seg.end_offset() >> kPageShift);
  uint64_t taken[kMaxHomeOpenPages];
  size_t n = 0;
  for (uint64_t p = lo; p < hi; ++p) {
    if (p == page) {
      taken[n++] = p;
      continue;
    }
    uint32_t expected = MakeWord(kHome);
    if (seg.HomeOfPage(p) == options_.rank &&
        state(p).compare_exchange_strong(expected, MakeWord(kHome) | kBusy,
                                         std::memory_order_acq_rel)) {
      taken[n++] = p;
    }
  }
  // Noticed before writable, for the reason given in WriteFault.
  for (size_t i = 0; i < n; ++i) NoteWritten(taken[i]);
  NoteHomeWriteInterval(page);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && taken[j] == taken[j - 1] + 1) ++j;
    const uint64_t offset = taken[i] << kPageShift;
    const int e = range_->ProtectRaw(offset, (j - i) << kPageShift, Capped(Prot::kReadWrite, seg));
    if (e != 0) {
      Fatal("mprotect(READ|WRITE) of home page %#lx failed: %s%s",
            static_cast<unsigned long>(range_->base() + offset), strerror(e),
            e == ENOMEM ? "; raise vm.max_map_count (sysctl -w vm.max_map_count=1048576)" : "");
    }
    i = j;
  }
  StatAdd(Counter::kHomeWriteFaults);
  for (size_t i = 0; i < n; ++i) {
    state(taken[i]).store(MakeWord(kHome) | kHomeOpen, std::memory_order_release);
    WakePage(&state(taken[i]));
  }
}

void Coherence::NoteWritten(uint64_t page) {
  epoch_written_.Set(page);
  if (pending_.Set(page)) pending_count_.fetch_add(1, std::memory_order_seq_cst);
}

uint32_t Coherence::AllocTwin() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(twin_mu_);
      if (!twin_free_.empty()) {
        uint32_t t = twin_free_.back();
        twin_free_.pop_back();
        return t;
      }
    }
    // Every twin is in use: write all dirty pages home early (allowed under
    // release consistency) to free them. No page is held busy here.
    absl::Status s;
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      s = ReleaseLocked(0, range_->num_pages(), /*may_pack=*/false);
    }
    if (!s.ok()) {
      std::string msg(s.message());
      Fatal("early release (GASP_MAX_DIRTY_PAGES reached) failed: %s", msg.c_str());
    }
  }
  Fatal("no twin page available after releasing; raise GASP_MAX_DIRTY_PAGES");
}

void Coherence::FreeTwin(uint32_t slot_plus_one) {
  std::lock_guard<std::mutex> lock(twin_mu_);
  twin_free_.push_back(slot_plus_one);
}

void Coherence::WriteFault(uint64_t page, const gas::Segment& seg) {
  std::atomic<uint32_t>& st = state(page);
  for (;;) {
    uint32_t w = st.load(std::memory_order_acquire);
    if (IsBusy(w)) {
      WaitNotBusy(page, w);
      continue;
    }
    if (StateOf(w) == kInvalid) {
      ReadFault(page, seg);
      continue;
    }
    if (StateOf(w) != kRead) return;  // already writable
    uint32_t twin = AllocTwin();
    uint32_t expected = MakeWord(kRead);
    if (!st.compare_exchange_strong(expected, kRead | kBusy, std::memory_order_acq_rel)) {
      FreeTwin(twin);
      continue;
    }
    const uint64_t offset = page << kPageShift;
    std::memcpy(static_cast<char*>(twin_mem_.data()) + uint64_t{twin - 1} * kPageSize,
                range_->sys(offset), kPageSize);
    // Dirty before writable: once the page opens, other threads store to it
    // without faulting, and a release by one of them must find the page
    // (it then waits for this busy bit and diffs the page). Marking it
    // after the mprotect let such a release skip the page and free a lock
    // whose data had not gone home.
    dirty_.Set(page);
    dirty_count_.fetch_add(1, std::memory_order_seq_cst);
    int e = range_->ProtectRaw(offset, kPageSize, Capped(Prot::kReadWrite, seg));
    if (e != 0) {
      Fatal("mprotect(READ|WRITE) of global page %#lx failed: %s",
            static_cast<unsigned long>(range_->base() + offset), strerror(e));
    }
    StatAdd(Counter::kWriteFaults);
    st.store(MakeWord(kWrite, twin), std::memory_order_release);
    WakePage(&st);
    return;
  }
}

}  // namespace consistency
}  // namespace gasp

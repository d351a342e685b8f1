// Coherence: first-touch placement (docs/protocol.md, "First-touch
// placement"). A page of a first-touch segment gets its home when a rank
// first writes it: one COMPARE_SWAP on the page's word in a directory
// (gas::kTouch*), after which the home never changes. A rank learns homes
// other ranks claimed with one READ of the directory words around a fault.
//
// A load of a page nobody has written yet sees zeros without claiming it:
// the reader keeps a zero copy (state READ). The rank that claims the page
// later starts it closed, like every home page, so its writes are noticed
// and the zero copies invalidated by the ordinary notices of barriers and
// lock hand-offs.
#include <sys/mman.h>

#include <cstring>
#include <string>

#include "base/stats.h"
#include "consistency/coherence.h"

namespace gasp {
namespace consistency {

using gas::kPageShift;
using gas::Prot;
using transport::Op;
using transport::OpType;

namespace {

constexpr uint64_t kWordsPerDirPage = gas::kPageSize / 8;
constexpr uint64_t kLearnWords = 64;  // directory words read around a fault

}  // namespace

uint64_t Coherence::TouchWordAddr(const gas::Segment& seg, uint64_t page) const {
  return seg.touch_dir + 8 * (page - (seg.offset >> kPageShift));
}

void Coherence::TouchOp(Op* op, uint64_t word_addr, uint64_t page) {
  const uint64_t dir_page = (word_addr - range_->base()) >> kPageShift;
  const gas::Segment* dir = segments_->FindPage(dir_page);
  if (dir == nullptr || dir->policy == gas::HomePolicy::kFirstTouch) {
    Fatal("the first-touch directory of global page %#lx is missing (allocation bug)",
          static_cast<unsigned long>(range_->base() + (page << kPageShift)));
  }
  const int home = dir->HomeOfPage(dir_page);
  op->peer = home;
  op->remote_addr = HomeAddress(home, word_addr);
  op->rkey = HomeKey(word_addr, home);
  op->wr_id = word_addr;
}

void Coherence::RunTouchOp(const Op& op, uint64_t page) {
  transport::CompletionCounter counter;
  absl::Status s = transport_->Post(absl::MakeConstSpan(&op, 1), &counter);
  if (s.ok()) s = transport_->Wait(&counter, absl::Now() + options_.timeout);
  if (!s.ok()) {
    std::string msg(s.message());
    FatalPeer(absl::IsUnavailable(s),
              "first-touch directory of global page %#lx at rank %d: %s",
              static_cast<unsigned long>(range_->base() + (page << kPageShift)), op.peer,
              msg.c_str());
  }
  StatAdd(Counter::kTouchDirectoryOps);
}

int Coherence::TouchHomeOfWord(uint64_t word, uint64_t page) const {
  const uint64_t h = word & gas::kTouchHomeMask;
  if (h == 0 && word == 0) return -1;
  if (h == 0 || h > static_cast<uint64_t>(options_.nranks) || (word & ~gas::kTouchHomeMask) != 0) {
    Fatal("first-touch directory word %#lx of global page %#lx is not a rank of %d (the "
          "directory was overwritten)",
          static_cast<unsigned long>(word),
          static_cast<unsigned long>(range_->base() + (page << kPageShift)), options_.nranks);
  }
  return static_cast<int>(h - 1);
}

uint64_t Coherence::LearnTouchHomes(uint64_t page, const gas::Segment& seg) {
  // The words of `page` and of the pages after it in the same directory page
  // (one home, one READ): prefetch then sees runs of known homes.
  const uint64_t first = seg.offset >> kPageShift;
  const uint64_t i = page - first;
  const uint64_t n = std::min({kLearnWords, seg.num_pages - i,
                               kWordsPerDirPage - ((TouchWordAddr(seg, page) >> 3) % kWordsPerDirPage)});
  uint64_t words[kLearnWords];
  Op op;
  op.type = OpType::kRead;
  op.local = words;
  op.length = n * 8;
  TouchOp(&op, TouchWordAddr(seg, page), page);
  RunTouchOp(op, page);
  for (uint64_t k = 0; k < n; ++k) {
    const int h = TouchHomeOfWord(words[k], page + k);
    // Only other ranks' claims: this rank's own are recorded by the thread
    // that made them, together with the page's home state.
    if (h < 0 || h == options_.rank) continue;
    int32_t unknown = -1;
    seg.touch[i + k].compare_exchange_strong(unknown, h, std::memory_order_acq_rel);
  }
  return words[0];
}

uint64_t Coherence::CompareSwapTouch(uint64_t page, const gas::Segment& seg, uint64_t expected,
                                     uint64_t desired) {
  uint64_t old = 0;
  Op op;
  op.type = OpType::kCompareSwap;
  op.local = &old;
  op.compare = expected;
  op.operand = desired;
  TouchOp(&op, TouchWordAddr(seg, page), page);
  RunTouchOp(op, page);
  return old;
}

int Coherence::ResolveTouch(uint64_t page, const gas::Segment& seg, bool claim) {
  std::atomic<uint32_t>& st = state(page);
  std::atomic<int32_t>& known = seg.touch[page - (seg.offset >> kPageShift)];
  uint32_t w = st.load(std::memory_order_acquire);
  for (;;) {
    if (IsBusy(w)) {
      WaitNotBusy(page, w);
      w = st.load(std::memory_order_acquire);
      continue;
    }
    const int h = known.load(std::memory_order_acquire);
    if (h >= 0) return h;
    if (!claim && StateOf(w) == kRead) return -1;  // a zero copy is here already
    if (st.compare_exchange_weak(w, w | kBusy, std::memory_order_acq_rel)) break;
  }
  uint64_t word = claim ? 0 : LearnTouchHomes(page, seg);
  int home = TouchHomeOfWord(word, page);
  while (claim && home < 0) {
    const uint64_t old = CompareSwapTouch(page, seg, 0, static_cast<uint64_t>(options_.rank + 1));
    home = old == 0 ? options_.rank : TouchHomeOfWord(old, page);
  }
  if (home == options_.rank) {
    BecomeTouchHome(page, seg, w);
    StatAdd(Counter::kPagesClaimed);
  } else if (home >= 0) {
    if (claim) LearnTouchHomes(page, seg);  // the neighbours too, for prefetch
    int32_t unknown = -1;
    known.compare_exchange_strong(unknown, home, std::memory_order_acq_rel);
    st.store(w, std::memory_order_release);
    WakePage(&st);
  } else {
    InstallZeroCopy(page, seg);
  }
  return home;
}

void Coherence::BecomeTouchHome(uint64_t page, const gas::Segment& seg, uint32_t before) {
  // A zero copy of this rank becomes its home copy: the same bytes of the
  // backing store, never written by anyone (the claim is the first write).
  if (StateOf(before) == kRead && cached_.Clear(page)) {
    cached_count_.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Closed like every home page (AddSegment): the write that claimed it
  // faults once more and is noted, so other ranks' zero copies are dropped.
  seg.touch[page - (seg.offset >> kPageShift)].store(options_.rank, std::memory_order_release);
  const uint64_t offset = page << kPageShift;
  const int e = range_->ProtectRaw(offset, gas::kPageSize, Capped(Prot::kRead, seg));
  if (e != 0) {
    Fatal("mprotect of first-touch home page %#lx failed: %s%s",
          static_cast<unsigned long>(range_->base() + offset), strerror(e),
          e == ENOMEM ? "; raise vm.max_map_count (sysctl -w vm.max_map_count=1048576)" : "");
  }
  state(page).store(MakeWord(kHome), std::memory_order_release);
  WakePage(&state(page));
}

void Coherence::InstallZeroCopy(uint64_t page, const gas::Segment& seg) {
  // Nobody has written the page, so its content is zeros, and so is this
  // rank's backing page: it has never held a copy from a home (no home
  // existed) and is never written by other ranks (not home here).
  if (cached_.Set(page)) cached_count_.fetch_add(1, std::memory_order_seq_cst);
  const uint64_t offset = page << kPageShift;
  const int e = range_->ProtectRaw(offset, gas::kPageSize, Capped(Prot::kRead, seg));
  if (e != 0) {
    Fatal("mprotect(READ) of global page %#lx failed: %s",
          static_cast<unsigned long>(range_->base() + offset), strerror(e));
  }
  state(page).store(MakeWord(kRead), std::memory_order_release);
  WakePage(&state(page));
  StatAdd(Counter::kZeroCopies);
}

int Coherence::HomeOfAddress(uint64_t addr, bool claim) {
  if (!range_->Contains(addr)) return -1;
  const uint64_t page = (addr - range_->base()) >> kPageShift;
  const gas::Segment* seg = segments_->FindPage(page);
  if (seg == nullptr) return -1;
  const int h = seg->HomeOfPage(page);
  if (h >= 0 || seg->policy != gas::HomePolicy::kFirstTouch) return h;
  if (claim) return ResolveTouch(page, *seg, /*claim=*/true);
  return TouchHomeOfWord(LearnTouchHomes(page, *seg), page);
}

int Coherence::HomeForAtomic(uint64_t addr) { return HomeOfAddress(addr, /*claim=*/true); }

int Coherence::HomeOf(uint64_t addr) { return HomeOfAddress(addr, /*claim=*/false); }

}  // namespace consistency
}  // namespace gasp

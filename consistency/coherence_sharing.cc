// Coherence: write notices of home pages and hot blocks (docs/protocol.md,
// "Write notices" and "Home pages: closed until written").
#include "consistency/coherence.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "base/stats.h"
#include "base/status.h"
#include "base/wait.h"

namespace gasp {
namespace consistency {

using gas::kPageShift;
using gas::kPageSize;
using gas::Prot;
using transport::Op;
using transport::OpType;

absl::Status Coherence::CloseHomePagesLocked(const uint64_t* pages, size_t n) {
  // A home page may be in the middle of its write fault (busy, noted, not
  // yet open): waiting for the busy bit before looking makes sure such a
  // page is closed too, so that the faulting store, retried, faults again
  // and is noted again.
  size_t n_open = 0;
  for (size_t i = 0; i < n; ++i) {
    if (TakeBusy(pages[i]) & kHomeOpen) {
      scratch_dirty_[n_open++] = pages[i];
    } else {
      state(pages[i]).store(MakeWord(kHome), std::memory_order_release);
      WakePage(&state(pages[i]));
    }
  }
  const absl::Status status = ProtectRuns(scratch_dirty_.data(), n_open, Prot::kRead);
  for (size_t i = 0; i < n_open; ++i) {  // on failure they stay open (and noted)
    std::atomic<uint32_t>& st = state(scratch_dirty_[i]);
    st.store(status.ok() ? MakeWord(kHome) : (st.load() & ~kBusy), std::memory_order_release);
    WakePage(&st);
  }
  return status;
}

void Coherence::NoteHomeWriteInterval(uint64_t page) {
  const uint64_t b = page / hot_block_;
  const uint32_t now = take_interval_.load(std::memory_order_acquire);
  const uint32_t last = block_take_[b].exchange(now, std::memory_order_acq_rel);
  // Also every other interval: codes that alternate two arrays (a
  // transpose from a into b, then from b into a) write each one so.
  if (last == 0 || now - last > 2 || !hot_blocks_.Set(b)) return;
  StatAdd(Counter::kHotBlocks);
  const uint64_t h = block_hot_[b].load(std::memory_order_relaxed);
  const uint32_t demoted_at = static_cast<uint32_t>(h);
  uint32_t level = static_cast<uint32_t>(h >> 32);
  level = demoted_at != 0 && now - demoted_at <= 4 ? std::min(level + 1, kMaxHotLevel) : 0;
  block_hot_[b].store((uint64_t{level} << 32) | demoted_at, std::memory_order_relaxed);
}

void Coherence::NoteHotBlocksLocked(PageBitmap& bits, uint32_t interval) {
  const uint64_t blocks = (range_->num_pages() + hot_block_ - 1) / hot_block_;
  hot_blocks_.ForEach(0, blocks, [&](uint64_t b) {
    // Demoted: noted in both sets (the other set's next take must cover
    // writes made while the block was open), then closed by this take's
    // walk like any noted home page; its next write faults again.
    const uint32_t level = static_cast<uint32_t>(block_hot_[b].load(std::memory_order_relaxed) >> 32);
    const bool demote =
        interval - block_take_[b].load(std::memory_order_acquire) >= (kHotIntervals << level);
    if (demote) {
      hot_blocks_.Clear(b);
      block_take_[b].store(0, std::memory_order_release);
      block_hot_[b].store((uint64_t{level} << 32) | interval, std::memory_order_relaxed);
    }
    const uint64_t end = std::min((b + 1) * hot_block_, range_->num_pages());
    for (uint64_t p = b * hot_block_; p < end; ++p) {
      // Closed pages are left out: their next write faults and is noted.
      // Open ones count even while busy (a protection change holds the
      // busy bit of an open page that may have been written).
      const uint32_t w = state(p).load(std::memory_order_acquire) & ~kBusy;
      if (w != (MakeWord(kHome) | kHomeOpen)) continue;
      if (demote) {
        NoteWritten(p);
      } else if (bits.Set(p) && &bits == &pending_) {
        pending_count_.fetch_add(1, std::memory_order_seq_cst);
      }
    }
  });
}

absl::Status Coherence::TakeNotices(NoticeSet set, std::vector<PageRun>* runs) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  PageBitmap& bits = set == NoticeSet::kSinceBarrier ? epoch_written_ : pending_;
  NoteHotBlocksLocked(bits, take_interval_.load(std::memory_order_acquire));
  if (set == NoticeSet::kSincePublished &&
      pending_count_.load(std::memory_order_seq_cst) <= 0) {
    return absl::OkStatus();
  }
  // A new interval: home write faults from now on count towards it.
  take_interval_.fetch_add(1, std::memory_order_acq_rel);
  // Walk and clear; home pages among them are closed again (read-only), so
  // that their next write is noticed. A write that lands on such a page
  // between the clear and the close is covered by the notice taken here:
  // every later publication of this rank completes after this one.
  size_t n_home = 0;
  const size_t cap = scratch_pages_.size();
  absl::Status status;
  auto close = [&]() {
    status.Update(CloseHomePagesLocked(scratch_pages_.data(), n_home));
    n_home = 0;
  };
  uint64_t taken = 0;
  bits.ForEach(0, range_->num_pages(), [&](uint64_t p) {
    bits.Clear(p);
    ++taken;
    AppendPage(p, runs);
    if (StateOf(state(p).load(std::memory_order_acquire)) == kHome &&
        !hot_blocks_.Test(p / hot_block_)) {  // hot pages stay open
      scratch_pages_[n_home++] = p;
      if (n_home == cap) close();
    }
  });
  close();
  if (set == NoticeSet::kSincePublished) {
    // May go below zero for a moment (a page's Set counted after this walk
    // took it); every set bit's increment is done before its page opens.
    pending_count_.fetch_sub(static_cast<int64_t>(taken), std::memory_order_seq_cst);
  }
  return status;
}

absl::Status Coherence::AcquireRuns(absl::Span<const PageRun> runs, bool may_refresh) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  uint64_t budget = may_refresh ? NextRefreshBudgetLocked() : 0;
  for (const PageRun& r : runs) {
    const uint64_t end = std::min(r.first + r.count, range_->num_pages());
    if (r.first < end) GASP_RETURN_IF_ERROR(InvalidateLocked(r.first, end, &budget));
  }
  return absl::OkStatus();
}

absl::Status Coherence::InvalidateAll() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  return InvalidateLocked(0, range_->num_pages());
}

}  // namespace consistency
}  // namespace gasp

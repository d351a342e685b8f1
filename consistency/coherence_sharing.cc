// Coherence: write notices and the sharing classification (docs/protocol.md,
// "Write notices" and "Sharing classification").
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

void Coherence::SetShareMarks(uint64_t addr, uint64_t bytes_per_rank) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  marks_addr_ = addr;
  marks_bytes_per_rank_ = bytes_per_rank;
}

void Coherence::MarkShared(uint64_t page, uint64_t n, int home) {
  // Once per block and home: FETCH_ADD on the block's counter at the home,
  // completed before the READ is posted, so that any write the home makes
  // after this READ is noticed at its next release (the home's scan then
  // sees the mark). Signal context: fixed-size ops, no allocation.
  if (marks_addr_ == 0) return;
  for (uint64_t b = page / share_block_; b <= (page + n - 1) / share_block_; ++b) {
    std::atomic<uint32_t>& at = marked_home_[b];
    if (at.load(std::memory_order_relaxed) == static_cast<uint32_t>(home) + 1) continue;
    const uint64_t addr = marks_addr_ + static_cast<uint64_t>(home) * marks_bytes_per_rank_ + b * 8;
    Op op;
    op.type = OpType::kFetchAdd;
    op.peer = home;
    op.remote_addr = HomeAddress(home, addr);
    op.rkey = HomeKey(addr, home);
    op.operand = 1;
    op.wr_id = addr;
    transport::CompletionCounter counter;
    absl::Status s = transport_->Post(absl::MakeConstSpan(&op, 1), &counter);
    if (s.ok()) s = transport_->Wait(&counter, absl::Now() + options_.timeout);
    if (!s.ok()) {
      std::string msg(s.message());
      FatalPeer(absl::IsUnavailable(s), "marking global page %#lx shared at its home rank %d: %s",
                static_cast<unsigned long>(range_->base() + (page << kPageShift)), home,
                msg.c_str());
    }
    at.store(static_cast<uint32_t>(home) + 1, std::memory_order_relaxed);
    StatAdd(Counter::kShareMarks);
    // Remember it until the next barrier (see DropNewlyMarked).
    while (epoch_marks_lock_.exchange(true, std::memory_order_acquire)) CpuRelax();
    if (epoch_marks_n_ < kMaxEpochMarks) {
      epoch_marks_[epoch_marks_n_++] = b;
    } else {
      epoch_marks_overflow_ = true;
    }
    epoch_marks_lock_.store(false, std::memory_order_release);
  }
}

void Coherence::ShareHomePages(const std::vector<uint64_t>& pages) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  for (uint64_t page : pages) ShareBlockLocked(page / share_block_);
}

void Coherence::ShareBlockLocked(uint64_t b) {
  if (!known_shared_.Set(b)) return;
  StatAdd(Counter::kBlocksShared);
  // Its home pages were written untracked, so another rank's copy may miss
  // a write made after the copy was taken. Across a lock or atomic
  // hand-off, the conservative notice given here (to the notice log only)
  // covers it: the home's next release publishes it. Across a barrier, the
  // fetcher covers itself: it drops the copies of every block it marked
  // during the epoch right after the barrier's rounds (DropNewlyMarked),
  // and every home scans at that same point, when every mark made before
  // the barrier has landed, so the block is closed (its writes noticed)
  // before the home writes again. The block is closed now.
  const uint64_t end = std::min((b + 1) * share_block_, range_->num_pages());
  size_t n = 0;
  auto close = [&]() {
    const absl::Status st = CloseHomePagesLocked(scratch_pages_.data(), n);
    if (!st.ok()) {  // left open, its writes would go unnoticed: not survivable
      std::string msg(st.message());
      Fatal("closing a shared home block: %s", msg.c_str());
    }
    n = 0;
  };
  for (uint64_t p = b * share_block_; p < end; ++p) {
    if (StateOf(state(p).load(std::memory_order_acquire)) != kHome) continue;
    if (pending_.Set(p)) pending_count_.fetch_add(1, std::memory_order_seq_cst);
    scratch_pages_[n++] = p;
    if (n == scratch_pages_.size()) close();
  }
  close();
}

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

absl::Status Coherence::DropNewlyMarked() {
  uint64_t blocks[kMaxEpochMarks];
  size_t n;
  bool overflow;
  while (epoch_marks_lock_.exchange(true, std::memory_order_acquire)) CpuRelax();
  n = epoch_marks_n_;
  overflow = epoch_marks_overflow_;
  std::copy(epoch_marks_, epoch_marks_ + n, blocks);
  epoch_marks_n_ = 0;
  epoch_marks_overflow_ = false;
  epoch_marks_lock_.store(false, std::memory_order_release);
  std::lock_guard<std::mutex> lock(sync_mu_);
  if (overflow) return InvalidateLocked(0, range_->num_pages());
  for (size_t i = 0; i < n; ++i) {
    const uint64_t first = blocks[i] * share_block_;
    GASP_RETURN_IF_ERROR(
        InvalidateLocked(first, std::min(first + share_block_, range_->num_pages())));
  }
  return absl::OkStatus();
}

void Coherence::ScanShared() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  ScanSharedLocked();
}

void Coherence::ScanSharedLocked() {
  if (marks_addr_ == 0) return;
  const uint64_t mine = marks_addr_ - range_->base() +
                        static_cast<uint64_t>(options_.rank) * marks_bytes_per_rank_;
  const volatile uint64_t* marks = reinterpret_cast<const volatile uint64_t*>(range_->sys(mine));
  home_blocks_.ForEach(0, (range_->num_pages() + share_block_ - 1) / share_block_, [&](uint64_t b) {
    if (marks[b] != 0 && !known_shared_.Test(b)) ShareBlockLocked(b);
  });
}

void Coherence::NoteHomeWriteInterval(uint64_t page) {
  const uint64_t b = page / share_block_;
  const uint32_t now = take_interval_.load(std::memory_order_acquire);
  const uint32_t last = block_take_[b].exchange(now, std::memory_order_acq_rel);
  // Also every other interval: codes that alternate two arrays (a
  // transpose from a into b, then from b into a) write each one so.
  if (last != 0 && now - last <= 2 && hot_blocks_.Set(b)) StatAdd(Counter::kHotBlocks);
}

void Coherence::NoteHotBlocksLocked(PageBitmap& bits, uint32_t interval) {
  const uint64_t blocks = (range_->num_pages() + share_block_ - 1) / share_block_;
  hot_blocks_.ForEach(0, blocks, [&](uint64_t b) {
    // Demoted: noted in both sets (the other set's next take must cover
    // writes made while the block was open), then closed by this take's
    // walk like any noted home page; its next write faults again.
    const bool demote = interval - block_take_[b].load(std::memory_order_acquire) >= kHotIntervals;
    if (demote) {
      hot_blocks_.Clear(b);
      block_take_[b].store(0, std::memory_order_release);
    }
    const uint64_t end = std::min((b + 1) * share_block_, range_->num_pages());
    for (uint64_t p = b * share_block_; p < end; ++p) {
      // Closed pages are left out: their next write faults and is noted.
      if (state(p).load(std::memory_order_acquire) != (MakeWord(kHome) | kHomeOpen)) continue;
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
  ScanSharedLocked();
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
        !hot_blocks_.Test(p / share_block_)) {  // hot pages stay open
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

absl::Status Coherence::AcquireRuns(absl::Span<const PageRun> runs) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  for (const PageRun& r : runs) {
    const uint64_t end = std::min(r.first + r.count, range_->num_pages());
    if (r.first < end) GASP_RETURN_IF_ERROR(InvalidateLocked(r.first, end));
  }
  return absl::OkStatus();
}

absl::Status Coherence::InvalidateAll() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  return InvalidateLocked(0, range_->num_pages());
}

}  // namespace consistency
}  // namespace gasp

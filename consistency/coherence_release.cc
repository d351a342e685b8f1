// Coherence: releases (diffs written home as WRITEs or packed messages) and
// invalidation (docs/protocol.md, "Transitions" and "Packed diffs").
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

absl::Status Coherence::FlushOps(size_t n_ops) {
  if (n_ops == 0) return absl::OkStatus();
  transport::CompletionCounter counter;
  GASP_RETURN_IF_ERROR(transport_->Post(absl::MakeConstSpan(scratch_ops_.data(), n_ops), &counter));
  return transport_->Wait(&counter, absl::Now() + options_.timeout);
}

absl::Status Coherence::WriteBackLocked(const uint64_t* pages, size_t n, bool may_pack) {
  const bool pack = may_pack && options_.packed_diffs && options_.nranks > 1;
  // Diff each page against its twin and write the runs home; runs that
  // continue across a page boundary (same home) merge into one WRITE.
  // REQUIRES: the pages are busy (held by this thread) and write-protected,
  // so no thread of this process stores while they are diffed.
  size_t n_ops = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t page = pages[i];
    const uint32_t w = state(page).load(std::memory_order_acquire);
    const gas::Segment* seg = segments_->FindPage(page);
    if (StateOf(w) != kWrite || TwinOf(w) == 0 || seg == nullptr) {
      return absl::InternalError(absl::StrFormat("dirty page %d in state %#x", page, w));
    }
    const int home = seg->HomeOfPage(page);
    const uint64_t offset = page << kPageShift;
    const uint8_t* twin =
        static_cast<uint8_t*>(twin_mem_.data()) + uint64_t{TwinOf(w) - 1} * kPageSize;
    const uint8_t* cur = reinterpret_cast<uint8_t*>(range_->sys(offset));
    size_t runs;
    if (pack && seg->domain == 0) {
      // Packable page: one pass of word masks; unless it has a run long
      // enough for a WRITE of its own, it goes into the message as is.
      const WordMaskSummary sum = ComputeWordMasks(cur, twin, kPageSize, scratch_masks_);
      if (sum.longest_full < options_.diff_direct_bytes) {
        StatAdd(Counter::kDiffPages);
        StatAdd(Counter::kDiffRuns, sum.runs);
        StatAdd(Counter::kDiffBytes, sum.changed_bytes);
        if (sum.changed_bytes == 0) continue;
        NoteWritten(page);
        GASP_ASSIGN_OR_RETURN(DiffWriter * w, PackedWriter(home, seg->rkeys[home]));
        w->AddPageMasks(offset, cur, scratch_masks_, sum);
        continue;
      }
      runs = RunsFromWordMasks(scratch_masks_, kPageSize / 8, scratch_runs_.data(),
                               scratch_runs_.size());
    } else {
      runs = ComputeDiff(cur, twin, kPageSize, scratch_runs_.data(), scratch_runs_.size());
    }
    // Counted once per page: a dense diff has hundreds of runs.
    StatAdd(Counter::kDiffPages);
    StatAdd(Counter::kDiffRuns, runs);
    if (runs > 0) NoteWritten(page);
    size_t n_short = 0;
    uint64_t changed = 0;
    for (size_t r = 0; r < runs; ++r) {
      const DiffRun& run = scratch_runs_[r];
      changed += run.length;
      if (pack && seg->domain == 0 && run.length < options_.diff_direct_bytes) {
        scratch_short_[n_short++] = run;
        continue;
      }
      char* local = range_->sys(offset + run.offset);
      uint64_t remote = homes_[home].sys_base + offset + run.offset;
      if (n_ops > 0) {
        Op& last = scratch_ops_[n_ops - 1];
        if (last.peer == home && static_cast<char*>(last.local) + last.length == local &&
            last.remote_addr + last.length == remote) {
          last.length += run.length;
          continue;
        }
      }
      if (n_ops == scratch_ops_.size()) {
        GASP_RETURN_IF_ERROR(FlushOps(n_ops));
        n_ops = 0;
      }
      Op& op = scratch_ops_[n_ops++];
      op = Op{};
      op.type = OpType::kWrite;
      op.peer = home;
      op.local = local;
      op.length = run.length;
      op.remote_addr = remote;
      op.rkey.packed = seg->rkeys[home];
      op.wr_id = page;
    }
    StatAdd(Counter::kDiffBytes, changed);
    if (n_short > 0) {
      GASP_ASSIGN_OR_RETURN(DiffWriter * w, PackedWriter(home, seg->rkeys[home]));
      w->AddPage(offset, cur, absl::MakeConstSpan(scratch_short_.data(), n_short));
    }
  }
  GASP_RETURN_IF_ERROR(FlushOps(n_ops));
  return pack ? FinishPacked() : absl::OkStatus();
}

namespace {
// A packed message is sent once it holds this much: buffers at both ends
// stay bounded. Measured on tcp (consistency_bench): 256 KiB beats 64 KiB
// (1.7x against 2.0x a full-page release), fewer wake-ups of the home's
// diff thread outweigh the overlap of encoding and applying.
constexpr size_t kMaxPackedBytes = 256 * 1024;
}  // namespace

absl::StatusOr<DiffWriter*> Coherence::PackedWriter(int home, uint64_t rkey) {
  PackedOut& out = packed_[static_cast<size_t>(home)];
  if (out.open && (out.rkey != rkey || out.writer.size() >= kMaxPackedBytes)) {
    GASP_RETURN_IF_ERROR(SendPacked(home));
  }
  if (!out.open) {
    out.writer.Start(++packed_sequence_, rkey);
    out.rkey = rkey;
    out.open = true;
  }
  return &out.writer;
}

absl::Status Coherence::SendPacked(int home) {
  PackedOut& out = packed_[static_cast<size_t>(home)];
  out.open = false;
  const absl::Span<const uint8_t> msg = out.writer.Finish();
  uint64_t sequence;
  std::memcpy(&sequence, msg.data() + 8, 8);
  StatAdd(Counter::kDiffMessages);
  StatAdd(Counter::kDiffMessageBytes, msg.size());
  absl::Status s = transport_->Send(home, kDiffTag, msg);
  if (!s.ok()) return Annotate(s, absl::StrFormat("sending a diff to rank %d", home));
  out.awaiting.push_back(sequence);
  return absl::OkStatus();
}

absl::Status Coherence::FinishPacked() {
  const absl::Time deadline = absl::Now() + options_.timeout;
  for (int home = 0; home < options_.nranks; ++home) {
    if (packed_[static_cast<size_t>(home)].open) GASP_RETURN_IF_ERROR(SendPacked(home));
  }
  // Replies come in order per home (one tag, one pair of ranks).
  absl::Status status;
  for (int home = 0; home < options_.nranks; ++home) {
    PackedOut& out = packed_[static_cast<size_t>(home)];
    for (uint64_t sequence : out.awaiting) {
      absl::StatusOr<transport::Message> m = transport_->Recv(kDiffAckTag, home, deadline);
      if (!m.ok()) {
        status.Update(Annotate(m.status(),
                               absl::StrFormat("waiting for rank %d to apply a diff", home)));
        break;
      }
      absl::StatusOr<DiffAck> ack = DecodeDiffAck(m->payload);
      if (!ack.ok() || ack->sequence != sequence) {
        status.Update(absl::DataLossError(absl::StrFormat(
            "rank %d answered a diff with a malformed or unexpected reply", home)));
        break;
      }
      if (ack->status != 0) {
        status.Update(absl::PermissionDeniedError(
            absl::StrFormat("rank %d refused a diff: %s", home, ack->reason)));
      }
    }
    out.awaiting.clear();
  }
  return status;
}

void Coherence::DropTwin(uint64_t page) {
  FreeTwin(TwinOf(state(page).load(std::memory_order_acquire)));
  dirty_.Clear(page);
  dirty_count_.fetch_sub(1, std::memory_order_relaxed);
}

absl::Status Coherence::ProtectRuns(const uint64_t* pages, size_t n, Prot want) {
  for (size_t i = 0; i < n;) {
    // Runs of consecutive pages with one cap (a segment boundary may
    // change the domain).
    const Prot prot = CappedAt(want, pages[i]);
    size_t j = i + 1;
    while (j < n && pages[j] == pages[j - 1] + 1 && CappedAt(want, pages[j]) == prot) ++j;
    GASP_RETURN_IF_ERROR(range_->Protect(pages[i] << kPageShift, (j - i) << kPageShift, prot));
    i = j;
  }
  return absl::OkStatus();
}

absl::Status Coherence::ReleaseLocked(uint64_t first_page, uint64_t end_page, bool may_pack) {
  if (dirty_count_.load(std::memory_order_acquire) == 0) return absl::OkStatus();
  size_t n = 0;
  const size_t cap = scratch_pages_.size();
  dirty_.ForEach(first_page, end_page, [&](uint64_t p) {
    if (n < cap) scratch_pages_[n++] = p;
  });
  if (n == 0) return absl::OkStatus();
  // Mark busy and write-protect, so that no thread of this process writes
  // while the diff is taken (a writer faults and waits), write home.
  for (size_t i = 0; i < n; ++i) TakeBusy(scratch_pages_[i]);
  GASP_RETURN_IF_ERROR(ProtectRuns(scratch_pages_.data(), n, Prot::kRead));
  GASP_RETURN_IF_ERROR(WriteBackLocked(scratch_pages_.data(), n, may_pack));
  // The pages are clean copies of what the home now holds.
  for (size_t i = 0; i < n; ++i) {
    const uint64_t page = scratch_pages_[i];
    DropTwin(page);
    state(page).store(MakeWord(kRead), std::memory_order_release);
    WakePage(&state(page));
  }
  return absl::OkStatus();
}

absl::Status Coherence::InvalidateLocked(uint64_t first_page, uint64_t end_page,
                                         uint64_t* refresh_budget) {
  if (cached_count_.load(std::memory_order_acquire) == 0) return absl::OkStatus();
  const size_t cap = scratch_pages_.size();
  size_t n = 0, n_dirty = 0, n_refresh = 0;
  absl::Status status;
  // Clean pages: PROT_NONE in coalesced runs. Dirty pages (another thread
  // of this process wrote them after this acquire's release step): closed
  // first so that their writers fault and wait, their diffs written home
  // (an early release, allowed under RC), then dropped like clean ones, so
  // that no stale byte of another rank's release stays readable and no
  // unreleased write of this process is lost.
  auto drop = [&](uint64_t p) {
    dropped_.Set(p);
    if (cached_.Clear(p)) cached_count_.fetch_sub(1, std::memory_order_relaxed);
    state(p).store(MakeWord(kInvalid), std::memory_order_release);
    WakePage(&state(p));
  };
  auto flush = [&]() {
    // Clean pages read again since an earlier drop: fetched anew where they
    // are, still readable (docs/protocol.md, "Refresh in place").
    if (status.ok()) status = RefreshLocked(scratch_refresh_.data(), n_refresh);
    for (size_t i = 0; i < n_refresh; ++i) {
      const uint64_t p = scratch_refresh_[i];
      if (!status.ok()) {  // it may hold part of a READ: closed and dropped (the error ends the job)
        (void)range_->Protect(p << kPageShift, kPageSize, Prot::kNone);
        reread_.Clear(p);
        drop(p);
        continue;
      }
      state(p).store(MakeWord(kRead), std::memory_order_release);
      WakePage(&state(p));
    }
    n_refresh = 0;
    if (status.ok()) status = ProtectRuns(scratch_dirty_.data(), n_dirty, Prot::kNone);
    if (status.ok()) status = WriteBackLocked(scratch_dirty_.data(), n_dirty);
    for (size_t i = 0; i < n_dirty; ++i) {
      const uint64_t p = scratch_dirty_[i];
      if (status.ok()) {
        DropTwin(p);
        drop(p);
      } else {  // keeps its twin and stays dirty: nothing is lost; the error ends the job
        state(p).store(state(p).load(std::memory_order_relaxed) & ~kBusy,
                       std::memory_order_release);
        WakePage(&state(p));
      }
    }
    StatAdd(Counter::kDirtyInvalidations, n_dirty);
    StatAdd(Counter::kInvalidations, n + n_dirty);
    n_dirty = 0;
    // One mprotect per run, runs joined across short gaps of pages that are
    // invalid already (PROT_NONE): lowering a protection costs a TLB
    // shootdown of every core running this process, far more than the call.
    for (size_t i = 0; i < n && status.ok();) {
      size_t j = i + 1;
      while (j < n && (scratch_pages_[j] == scratch_pages_[j - 1] + 1 ||
                       BridgeGapLocked(scratch_pages_[j - 1] + 1, scratch_pages_[j]))) {
        ++j;
      }
      status = range_->Protect(scratch_pages_[i] << kPageShift,
                               (scratch_pages_[j - 1] + 1 - scratch_pages_[i]) << kPageShift,
                               Prot::kNone);
      i = j;
    }
    ReleaseBridgedLocked();
    for (size_t i = 0; i < n; ++i) drop(scratch_pages_[i]);
    n = 0;
  };
  cached_.ForEach(first_page, end_page, [&](uint64_t p) {
    std::atomic<uint32_t>& st = state(p);
    for (;;) {
      uint32_t w = st.load(std::memory_order_acquire);
      if (IsBusy(w)) {
        WaitNotBusy(p, w);
        continue;
      }
      if (StateOf(w) == kInvalid) {  // already dropped
        if (cached_.Clear(p)) cached_count_.fetch_sub(1, std::memory_order_relaxed);
        return;
      }
      if (StateOf(w) == kHome) return;
      if (!st.compare_exchange_weak(w, w | kBusy, std::memory_order_acq_rel)) continue;
      if (StateOf(w) == kWrite) {
        scratch_dirty_[n_dirty++] = p;
      } else if (refresh_budget != nullptr && *refresh_budget > 0 && reread_.Test(p)) {
        --*refresh_budget;
        scratch_refresh_[n_refresh++] = p;  // stays kRead, busy
      } else {
        reread_.Clear(p);
        st.store(kInvalid | kBusy, std::memory_order_relaxed);
        scratch_pages_[n++] = p;
      }
      break;
    }
    if (n + n_dirty + n_refresh >= cap) flush();
  });
  flush();
  return status;
}

bool Coherence::BridgeGapLocked(uint64_t first, uint64_t end) {
  if (end - first > kMaxBridgePages || scratch_bridged_.size() + (end - first) > kMaxBridged) {
    return false;
  }
  const size_t mark = scratch_bridged_.size();
  for (uint64_t p = first; p < end; ++p) {
    // Only pages that are invalid, and stay so (busy) while the run's
    // protection changes: a concurrent fetch would otherwise open a page
    // that this mprotect closes again.
    uint32_t expected = MakeWord(kInvalid);
    if (!state(p).compare_exchange_strong(expected, MakeWord(kInvalid) | kBusy,
                                          std::memory_order_acq_rel)) {
      while (scratch_bridged_.size() > mark) {
        const uint64_t q = scratch_bridged_.back();
        scratch_bridged_.pop_back();
        state(q).store(MakeWord(kInvalid), std::memory_order_release);
        WakePage(&state(q));
      }
      return false;
    }
    scratch_bridged_.push_back(p);
  }
  return true;
}

void Coherence::ReleaseBridgedLocked() {
  for (uint64_t p : scratch_bridged_) {
    state(p).store(MakeWord(kInvalid), std::memory_order_release);
    WakePage(&state(p));
  }
  scratch_bridged_.clear();
}

absl::Status Coherence::Release() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  return ReleaseLocked(0, range_->num_pages());
}

absl::Status Coherence::Acquire() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  GASP_RETURN_IF_ERROR(ReleaseLocked(0, range_->num_pages()));
  return InvalidateLocked(0, range_->num_pages());
}

namespace {
void PageSpan(const gas::GlobalRange& r, uint64_t addr, uint64_t length, uint64_t* first,
              uint64_t* end) {
  uint64_t lo = std::max(addr, r.base()), hi = std::min(addr + length, r.base() + r.size());
  if (hi <= lo) {
    *first = *end = 0;
    return;
  }
  *first = (lo - r.base()) >> kPageShift;
  *end = (hi - r.base() + kPageSize - 1) >> kPageShift;
}
}  // namespace

absl::Status Coherence::ReleaseRange(uint64_t addr, uint64_t length) {
  uint64_t first, end;
  PageSpan(*range_, addr, length, &first, &end);
  std::lock_guard<std::mutex> lock(sync_mu_);
  return ReleaseLocked(first, end);
}

absl::Status Coherence::AcquireRange(uint64_t addr, uint64_t length) {
  uint64_t first, end;
  PageSpan(*range_, addr, length, &first, &end);
  std::lock_guard<std::mutex> lock(sync_mu_);
  GASP_RETURN_IF_ERROR(ReleaseLocked(first, end));
  return InvalidateLocked(first, end);
}

}  // namespace consistency
}  // namespace gasp

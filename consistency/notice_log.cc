#include "consistency/notice_log.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/stats.h"
#include "base/status.h"

namespace gasp {
namespace consistency {

using transport::Op;
using transport::OpType;

namespace {
// An acquire further behind than this drops its cache rather than read the
// whole gap (one READ of up to 192 KiB is the most it issues).
constexpr uint64_t kMaxCollectEntries = 8192;
}  // namespace

NoticeLog::NoticeLog(Coherence* coherence, transport::Transport* transport, int rank, int nranks,
                     uint64_t addr, uint64_t entries, absl::Duration timeout,
                     std::function<std::string(int)> describe_rank)
    : coherence_(coherence),
      transport_(transport),
      rank_(rank),
      nranks_(nranks),
      addr_(addr),
      entries_(entries),
      timeout_(timeout),
      describe_rank_(std::move(describe_rank)) {
  home_ = coherence_->HomeOf(addr_);
}

absl::StatusOr<uint64_t> NoticeLog::Tail(uint64_t add) {
  uint64_t old = 0;
  Op op = coherence_->HomeOp(OpType::kFetchAdd, home_, addr_);
  op.local = &old;
  op.operand = add;
  absl::Status s = transport_->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + timeout_);
  if (!s.ok()) return Annotate(s, absl::StrFormat("write-notice log at %s", describe_rank_(home_)));
  return old;
}

absl::Status NoticeLog::Transfer(OpType type, uint64_t first_slot, uint64_t n, LogEntry* buf) {
  // Slots [first_slot, first_slot + n) of the ring: one op, or two where
  // the range wraps.
  Op ops[2];
  int n_ops = 0;
  for (uint64_t done = 0; done < n;) {
    const uint64_t index = (first_slot + done) % entries_;
    const uint64_t count = std::min(n - done, entries_ - index);
    const uint64_t slot_addr = addr_ + kHeaderBytes + index * sizeof(LogEntry);
    Op& op = ops[n_ops++];
    op.type = type;
    op.peer = home_;
    op.local = buf + done;
    op.length = count * sizeof(LogEntry);
    op.remote_addr = coherence_->HomeAddress(home_, slot_addr);
    op.rkey = coherence_->HomeKey(slot_addr, home_);
    op.wr_id = first_slot + done;
    done += count;
  }
  absl::Status s = transport_->Execute(absl::MakeConstSpan(ops, n_ops), absl::Now() + timeout_);
  if (s.ok()) return s;
  return Annotate(s, absl::StrFormat("write-notice log at %s", describe_rank_(home_)));
}

absl::Status NoticeLog::Publish(absl::Span<const Contribution> by_origin) {
  buf_.clear();
  uint64_t pages = 0;
  for (const Contribution& c : by_origin) {
    AppendLogEntries(c.origin, c.runs, &buf_);
    for (const PageRun& r : c.runs) pages += r.count;
  }
  if (buf_.empty()) return absl::OkStatus();
  StatAdd(Counter::kNoticesSent, pages);
  GASP_ASSIGN_OR_RETURN(const uint64_t first, Tail(buf_.size()));
  known_tail_ = std::max(known_tail_, first + buf_.size());
  if (buf_.size() > entries_) return absl::OkStatus();  // readers see the lap and drop all
  for (uint64_t i = 0; i < buf_.size(); ++i) SealLogEntry((first + i) / entries_, &buf_[i]);
  return Transfer(OpType::kWrite, first, buf_.size(), buf_.data());
}

absl::Status NoticeLog::Collect() {
  GASP_ASSIGN_OR_RETURN(const uint64_t tail, Tail(0));
  return CollectTo(tail);
}

absl::Status NoticeLog::CollectTo(uint64_t tail) {
  known_tail_ = std::max(known_tail_, tail);
  if (tail <= position_) return absl::OkStatus();
  const uint64_t behind = tail - position_;
  if (behind > entries_ || behind > kMaxCollectEntries) {
    StatAdd(Counter::kNoticeLogOverflows);
    position_ = tail;
    return coherence_->InvalidateAll();
  }
  buf_.resize(behind);
  GASP_RETURN_IF_ERROR(Transfer(OpType::kRead, position_, behind, buf_.data()));
  runs_.clear();
  uint64_t next = tail, pages = 0;
  for (uint64_t i = 0; i < behind; ++i) {
    const uint64_t slot = position_ + i;
    int origin = -1;
    PageRun run;
    switch (DecodeLogEntry(buf_[i], slot / entries_, nranks_, coherence_->num_pages(), &origin,
                           &run)) {
      case EntryState::kNotYet:
        next = std::min(next, slot);  // a concurrent release: read it again next time
        break;
      case EntryState::kCorrupt:
        return absl::DataLossError(absl::StrFormat(
            "write-notice log at %s: entry %u names rank %d or pages outside the range (memory "
            "of the log was overwritten)",
            describe_rank_(home_), slot, origin));
      case EntryState::kValid:
        if (origin != rank_) {
          runs_.push_back(run);
          pages += run.count;
        }
        break;
    }
  }
  StatAdd(Counter::kNoticesReceived, pages);
  GASP_RETURN_IF_ERROR(coherence_->AcquireRuns(runs_));
  position_ = next;
  return absl::OkStatus();
}

}  // namespace consistency
}  // namespace gasp

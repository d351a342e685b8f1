// Sync: finding the rank a barrier waits for (docs/running.md,
// "Troubleshooting"). Every rank keeps the number of the barrier it is in
// in a word of its own home page (SetArrivalWords); a rank that has waited
// long reads every other rank's word with one READ each. A rank that does
// not answer within a short time is stopped or gone (its progress thread
// serves READs whatever its application does); one that answers with a
// lower number has not arrived. The dissemination partner alone would name
// an innocent rank that is itself waiting.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "consistency/sync.h"

namespace gasp {
namespace consistency {

using transport::Op;
using transport::OpType;

namespace {
// How long a probed rank may take to answer one READ.
constexpr absl::Duration kProbeAnswer = absl::Seconds(2);
}  // namespace

void Sync::SetArrivalWords(uint64_t addr, uint64_t stride) {
  arrival_addr_ = addr;
  arrival_stride_ = stride;
}

void Sync::NoteArrival(uint64_t epoch) {
  if (arrival_addr_ == 0) return;
  const uint64_t mine = arrival_addr_ + static_cast<uint64_t>(rank_) * arrival_stride_;
  // Written in the home copy itself (the system view), where READs land.
  reinterpret_cast<std::atomic<uint64_t>*>(coherence_->SysWord(mine))
      ->store(epoch, std::memory_order_release);
}

bool Sync::ProbeRank(int r, uint64_t* seen) {
  const uint64_t addr = arrival_addr_ + static_cast<uint64_t>(r) * arrival_stride_;
  Op op;
  op.type = OpType::kRead;
  op.peer = r;
  op.local = seen;
  op.length = 8;
  op.remote_addr = coherence_->HomeAddress(r, addr);
  op.rkey = coherence_->HomeKey(addr, r);
  op.wr_id = addr;
  return transport_->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + kProbeAnswer).ok();
}

std::string Sync::MissingRanks(uint64_t epoch) {
  if (arrival_addr_ == 0) return "";
  std::vector<std::string> silent, behind;
  for (int r = 0; r < nranks_; ++r) {
    if (r == rank_) continue;
    uint64_t seen = 0;
    if (!ProbeRank(r, &seen)) {
      silent.push_back(describe_rank_(r));
    } else if (seen < epoch) {
      behind.push_back(absl::StrFormat("%s (at barrier #%d)", describe_rank_(r), seen));
    }
  }
  std::string out;
  if (!silent.empty()) {
    out = absl::StrCat(absl::StrJoin(silent, ", "),
                       silent.size() == 1 ? " does" : " do",
                       " not answer (stopped, hung in the kernel, or its host is down)");
  }
  if (!behind.empty()) {
    if (!out.empty()) out += "; ";
    out += absl::StrCat(absl::StrJoin(behind, ", "),
                        behind.size() == 1 ? " has" : " have", " not reached it");
  }
  return out;
}

std::string Sync::DescribeHolder(int holder) {
  if (holder < 0 || holder >= nranks_) return absl::StrFormat("an unknown rank (%d)", holder);
  if (holder == rank_) return "another thread of this rank";
  // Without the barrier arrival words there is nothing to probe with: say
  // nothing about whether the holder answers.
  if (arrival_addr_ == 0) return describe_rank_(holder);
  uint64_t seen = 0;
  if (!ProbeRank(holder, &seen)) {
    return absl::StrCat(describe_rank_(holder),
                        ", which does not answer (stopped, hung in the kernel, or its host is "
                        "down)");
  }
  return absl::StrCat(describe_rank_(holder), ", which answers: it has held the lock that long");
}

absl::StatusOr<transport::Message> Sync::RecvRound(int from, uint64_t epoch, absl::Time start,
                                                   absl::Time deadline) {
  // One warning per wait, after GASP_TIMEOUT/6 (at least 10 s), naming the
  // ranks that are missing.
  const absl::Time warn_at = start + std::max(timeout_ / 6, absl::Seconds(10));
  if (warn_at < deadline) {
    absl::StatusOr<transport::Message> m = transport_->Recv(kBarrierTag, from, warn_at);
    if (m.ok() || !absl::IsDeadlineExceeded(m.status())) return m;
    const std::string missing = MissingRanks(epoch);
    GASP_LOG(Warn) << absl::StrFormat(
        "still waiting at barrier #%d for %s: %s", epoch,
        absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Seconds(1))),
        missing.empty() ? absl::StrCat("waiting for ", describe_rank_(from),
                                       "; every rank answers and has reached it")
                        : missing);
    last_missing_ = missing;
  }
  return transport_->Recv(kBarrierTag, from, deadline);
}

}  // namespace consistency
}  // namespace gasp

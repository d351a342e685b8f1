// Refresh in place (docs/protocol.md, "Refresh in place"): at an acquire
// whose notices name a clean cached page that this rank read again after
// an earlier acquire dropped it, the page is fetched anew where it is,
// keeping its protection, instead of being dropped and faulted in again.
// Iterative codes re-read the same remote data after every barrier (a
// halo, the other ranks' part of a vector, a transposed matrix); each drop
// and refetch costs a protection change to close the page, a fault, a
// fetch and a protection change to open it, and protection changes are
// what the kernel (and, in VMs with shadowed page tables, the hypervisor)
// charges most for. Refreshing moves only the data, in one batch of READs.
//
// Why it is safe: the page is held busy during the READ, so no thread of
// this process can make it writable (a store faults and waits); it stays
// readable, and a thread that reads it meanwhile without having acquired
// is racing with the remote write the notice reports, which a data-race-free
// program does not do. A thread that synchronizes with the acquiring thread
// afterwards does so after the refresh completed.
#include <algorithm>

#include "absl/strings/str_format.h"

#include "base/stats.h"
#include "base/status.h"
#include "consistency/coherence.h"

namespace gasp {
namespace consistency {

using transport::Op;
using transport::OpType;
using gas::kPageShift;

uint64_t Coherence::NextRefreshBudgetLocked() {
  if (options_.refresh_pages == 0) return 0;
  // A probe round refreshes nothing: pages still read are faulted in again
  // (and marked reread_ again); pages nobody reads any more stay dropped.
  if (++refresh_round_ % kRefreshProbeInterval == 0) return 0;
  return options_.refresh_pages;
}

absl::Status Coherence::RefreshLocked(const uint64_t* pages, size_t n) {
  size_t n_ops = 0;
  for (size_t i = 0; i < n;) {
    const uint64_t first = pages[i];
    const gas::Segment* seg = segments_->FindPage(first);
    const int home = seg != nullptr ? seg->HomeOfPage(first) : -1;
    if (home < 0) {  // a cached page has a segment and a known home
      return absl::InternalError(absl::StrFormat(
          "refresh: cached global page %#lx has no known home",
          static_cast<unsigned long>(range_->base() + (first << kPageShift))));
    }
    // One READ per run of consecutive pages with this home (the backing
    // store is indexed by range offset at every rank).
    const uint64_t same_home = std::min(seg->SameHomeRun(first), kRefreshRunPages);
    size_t j = i + 1;
    while (j < n && pages[j] == pages[j - 1] + 1 && pages[j] - first < same_home) ++j;
    if (n_ops == scratch_ops_.size()) {
      GASP_RETURN_IF_ERROR(FlushOps(n_ops));  // posts and waits for any ops
      n_ops = 0;
    }
    const uint64_t offset = first << kPageShift;
    Op& op = scratch_ops_[n_ops++];
    op = Op{};
    op.type = OpType::kRead;
    op.peer = home;
    op.local = range_->sys(offset);
    op.length = (j - i) << kPageShift;
    op.remote_addr = homes_[home].sys_base + offset;
    op.rkey.packed = seg->rkeys[home];
    op.wr_id = first;
    i = j;
  }
  GASP_RETURN_IF_ERROR(FlushOps(n_ops));
  StatAdd(Counter::kPagesRefreshed, n);
  StatAdd(Counter::kPagesFetched, n);
  StatAdd(Counter::kBytesFetched, n << kPageShift);
  return absl::OkStatus();
}

}  // namespace consistency
}  // namespace gasp

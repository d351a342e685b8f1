#include "rpcgen/pages.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/stats.h"
#include "base/status.h"
#include "consistency/bundle.h"
#include "gas/range.h"
#include "rpcgen/sent_pages.h"
#include "runtime/runtime_internal.h"

namespace gasp {
namespace rpc {
namespace {

bool InRuns(uint64_t page, const std::vector<consistency::PageRun>& runs) {
  auto it = std::upper_bound(
      runs.begin(), runs.end(), page,
      [](uint64_t p, const consistency::PageRun& r) { return p < r.first; });
  return it != runs.begin() && page < std::prev(it)->first + std::prev(it)->count;
}

}  // namespace

std::vector<consistency::PageRun> RefPageRuns(const gas::GlobalRange& range,
                                              const std::vector<Ref>& refs) {
  std::vector<consistency::PageRun> runs;
  const uint64_t base = range.base(), limit = range.base() + range.size();
  for (const Ref& r : refs) {
    const uint64_t lo = std::max(r.address, base), hi = std::min(r.address + r.length, limit);
    if (hi <= lo) continue;
    const uint64_t first = (lo - base) >> gas::kPageShift;
    const uint64_t end = (hi - base + gas::kPageSize - 1) >> gas::kPageShift;
    runs.push_back({first, end - first});
  }
  consistency::MergeRuns(&runs);
  return runs;
}

namespace {

// What this rank last sent each other rank (bounded; sent_pages.h).
SentPages& Sent() {
  static SentPages* s = new SentPages(
      SentPages::kDefaultCapacity, static_cast<size_t>(internal::GetConfig().ship_copy_pages));
  return *s;
}

}  // namespace

std::string BundleHomePages(const std::vector<Ref>& refs, int to_rank, BundleCounts* counts) {
  consistency::Coherence* coh = internal::GetCoherence();
  std::vector<uint64_t> pages;
  for (const Ref& r : refs) coh->HomePagesIn(r.address, r.length, &pages);
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  consistency::BundleWriter w(pages.size());
  *counts = BundleCounts{};
  for (uint64_t p : pages) {
    switch (Sent().Add(to_rank, p, coh->PageBytes(p), &w)) {
      case SentPages::Sent::kFull:
        ++counts->full;
        break;
      case SentPages::Sent::kUnchanged:
        ++counts->unchanged;
        break;
      case SentPages::Sent::kDiff:
        ++counts->diffs;
        break;
    }
  }
  StatAdd(Counter::kPagesBundled, counts->full);
  StatAdd(Counter::kPagesBundledAsDiffs, counts->diffs);
  return w.Finish();
}

absl::StatusOr<uint64_t> AcquireAndInstall(const std::string& bytes, const std::vector<Ref>& refs,
                                           int from_rank) {
  GASP_ASSIGN_OR_RETURN(
      std::vector<consistency::BundledPage> pages,
      consistency::DecodeBundle(absl::MakeConstSpan(
          reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
  consistency::Coherence* coh = internal::GetCoherence();
  gas::GlobalRange* range = internal::GetRange();
  const std::vector<consistency::PageRun> covered = RefPageRuns(*range, refs);
  for (const consistency::BundledPage& p : pages) {
    const uint64_t addr = range->base() + (p.page << gas::kPageShift);
    if (p.page >= range->num_pages() || !InRuns(p.page, covered)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bundled page %#x is not covered by any GlobalRef of the call", addr));
    }
    const int home = coh->HomeOf(addr);
    if (home != from_rank) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bundled page %#x comes from rank %d but its home is rank %d", addr, from_rank, home));
    }
  }
  // Pages sent as unchanged whose clean copy here still matches stay, and
  // so do those whose diff applies to the copy here; every other page of
  // the references is acquired (released if dirty, dropped).
  std::vector<consistency::PageRun> keep;
  uint64_t refused = 0;
  for (const consistency::BundledPage& p : pages) {
    if (p.kind == consistency::BundleKind::kUnchanged && coh->HasCleanCopy(p.page) &&
        consistency::PageHash(coh->PageBytes(p.page)) == p.hash) {
      consistency::AppendPage(p.page, &keep);
    } else if (p.kind == consistency::BundleKind::kDiff) {
      if (coh->PatchCleanCopy(p.page, [&p](const uint8_t* copy, uint8_t* out) {
            return consistency::PatchedPage(p, copy, out);
          })) {
        consistency::AppendPage(p.page, &keep);
      } else {
        ++refused;
      }
    }
  }
  StatAdd(Counter::kShippedDiffsDropped, refused);
  consistency::MergeRuns(&keep);
  std::vector<consistency::PageRun> stale;
  consistency::SubtractRuns(covered, keep, &stale);
  for (const consistency::PageRun& r : stale) {
    GASP_RETURN_IF_ERROR(coh->AcquireRange(range->base() + (r.first << gas::kPageShift),
                                           r.count << gas::kPageShift));
  }
  // Runs of consecutive full pages go in together (one protection change
  // each).
  uint64_t installed = 0;
  for (const consistency::PageRun& r : keep) installed += r.count;
  std::vector<const uint8_t*> run;
  auto whole = [](const consistency::BundledPage& p) {
    return p.kind == consistency::BundleKind::kFull || p.kind == consistency::BundleKind::kZeros;
  };
  for (size_t i = 0; i < pages.size();) {
    if (!whole(pages[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    run.clear();
    while (j < pages.size() && whole(pages[j]) && pages[j].page == pages[i].page + (j - i)) {
      run.push_back(pages[j++].data);
    }
    GASP_ASSIGN_OR_RETURN(uint64_t n, coh->InstallFromHome(pages[i].page, run, from_rank));
    installed += n;
    i = j;
  }
  return installed;
}

}  // namespace rpc
}  // namespace gasp

#include "rpcgen/pages.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/stats.h"
#include "base/status.h"
#include "consistency/bundle.h"
#include "gas/range.h"
#include "runtime/runtime_internal.h"

namespace gasp {
namespace rpc {
namespace {

bool InsideRefs(uint64_t addr, const std::vector<Ref>& refs) {
  for (const Ref& r : refs) {
    // A page is covered when any byte of it is inside the reference.
    const uint64_t page_end = addr + gas::kPageSize;
    if (addr < r.address + r.length && r.address < page_end) return true;
  }
  return false;
}

}  // namespace

std::string BundleHomePages(const std::vector<Ref>& refs, uint64_t* count) {
  consistency::Coherence* coh = internal::GetCoherence();
  std::vector<uint64_t> pages;
  for (const Ref& r : refs) coh->HomePagesIn(r.address, r.length, &pages);
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  consistency::BundleWriter w;
  for (uint64_t p : pages) w.Add(p, coh->PageBytes(p));
  *count = pages.size();
  StatAdd(Counter::kPagesBundled, pages.size());
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
  for (const consistency::BundledPage& p : pages) {
    const uint64_t addr = range->base() + (p.page << gas::kPageShift);
    if (p.page >= range->num_pages() || !InsideRefs(addr, refs)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bundled page %#x is not covered by any GlobalRef of the call", addr));
    }
    const int home = coh->HomeOf(addr);
    if (home != from_rank) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bundled page %#x comes from rank %d but its home is rank %d", addr, from_rank, home));
    }
  }
  for (const Ref& r : refs) GASP_RETURN_IF_ERROR(coh->AcquireRange(r.address, r.length));
  uint64_t installed = 0;
  for (const consistency::BundledPage& p : pages) {
    GASP_ASSIGN_OR_RETURN(bool done, coh->InstallFromHome(p.page, p.data, from_rank));
    installed += done ? 1 : 0;
  }
  return installed;
}

}  // namespace rpc
}  // namespace gasp

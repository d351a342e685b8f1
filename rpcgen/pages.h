// Moving the pages of by-reference arguments with a function-shipped call
// (consistency/bundle.h has the format and why only home pages travel).
// Internal to rpcgen/.
#ifndef GASP_RPCGEN_PAGES_H_
#define GASP_RPCGEN_PAGES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/notices.h"
#include "gas/range.h"
#include "rpcgen/global_refs.h"

namespace gasp {
namespace rpc {

// The pages of `range` that `refs` cover (a page counts when any byte of
// it is inside a reference), as sorted, merged runs. Parts of a reference
// outside the range are left out: callers check references first.
std::vector<consistency::PageRun> RefPageRuns(const gas::GlobalRange& range,
                                              const std::vector<Ref>& refs);

struct BundleCounts {
  uint64_t full = 0;       // pages sent whole (or as zeros)
  uint64_t unchanged = 0;  // as their hash
  uint64_t diffs = 0;      // as the bytes that changed since last sent
};

// Encodes the pages covering `refs` that this rank is the home of (each
// once) for rank `to_rank`, each as little as that rank needs
// (sent_pages.h): its hash when unchanged since last sent there, the bytes
// that changed when a copy of what was last sent is kept, else in full.
std::string BundleHomePages(const std::vector<Ref>& refs, int to_rank, BundleCounts* counts);

// The receiving side: decodes `bytes` (DataLoss if malformed), checks that
// every page lies inside `refs` and that `from_rank` is its home
// (InvalidArgument otherwise). Only then: pages sent as unchanged whose
// clean cached copy here has the same hash are kept; pages sent as diffs
// are applied to the clean cached copy they were made against (its hash
// is the base hash, the result's the new hash) and kept; every other page
// of `refs` is acquired (released if dirty, dropped), and the full pages
// are installed. A diff that does not apply leaves its page dropped: it is
// fetched from its home when touched. Nothing is installed on any error.
// Returns the number of pages installed or kept.
absl::StatusOr<uint64_t> AcquireAndInstall(const std::string& bytes, const std::vector<Ref>& refs,
                                           int from_rank);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_PAGES_H_

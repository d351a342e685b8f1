// Moving the pages of by-reference arguments with a function-shipped call
// (consistency/bundle.h has the format and why only home pages travel).
// Internal to rpcgen/.
#ifndef GASP_RPCGEN_PAGES_H_
#define GASP_RPCGEN_PAGES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rpcgen/global_refs.h"

namespace gasp {
namespace rpc {

// Encodes the pages covering `refs` that this rank is the home of (each
// once) for rank `to_rank`: in full, or as "unchanged" (hash only) when
// their contents hash the same as when last sent to that rank. `*full` and
// `*unchanged` get the counts.
std::string BundleHomePages(const std::vector<Ref>& refs, int to_rank, uint64_t* full,
                            uint64_t* unchanged);

// The receiving side: decodes `bytes` (DataLoss if malformed), checks that
// every page lies inside `refs` and that `from_rank` is its home
// (InvalidArgument otherwise), and only then acquires the ranges of `refs`
// (so stale cached copies go), except pages sent as unchanged whose clean
// cached copy here has the same hash, and installs the full pages.
// Nothing is installed on any error. Returns the number of pages installed
// or kept.
absl::StatusOr<uint64_t> AcquireAndInstall(const std::string& bytes, const std::vector<Ref>& refs,
                                           int from_rank);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_PAGES_H_

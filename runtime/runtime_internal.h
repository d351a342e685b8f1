// Access to the runtime's layers for gasp's own tests and benchmarks.
// Not part of the public API.
#ifndef GASP_RUNTIME_RUNTIME_INTERNAL_H_
#define GASP_RUNTIME_RUNTIME_INTERNAL_H_

#include <string>

#include "base/settings.h"
#include "consistency/coherence.h"
#include "consistency/sync.h"
#include "gas/range.h"
#include "protect/protection.h"
#include "transport/transport.h"

namespace gasp {
namespace internal {

// REQUIRES: Init succeeded and Finalize not yet called.
transport::Transport* GetTransport();
gas::GlobalRange* GetRange();
consistency::Coherence* GetCoherence();
consistency::Sync* GetSync();
const Config& GetConfig();
protect::Protection* GetProtection();
// "rank 3 (host:pid)".
std::string DescribeRank(int rank);

}  // namespace internal
}  // namespace gasp

#endif  // GASP_RUNTIME_RUNTIME_INTERNAL_H_

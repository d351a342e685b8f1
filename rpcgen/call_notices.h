// Write notices carried by function-shipped calls (docs/protocol.md,
// "Notices carried by calls"): a call's release publishes nothing to the
// notice log; the request carries the caller's notices and the reply the
// callee's, and each side relays what it received at its next publication.
// Internal to rpcgen/.
#ifndef GASP_RPCGEN_CALL_NOTICES_H_
#define GASP_RPCGEN_CALL_NOTICES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/notices.h"
#include "rpcgen/global_refs.h"

namespace gasp {
namespace rpc {

// The release before a call to (or the reply of a call from) `to_rank`:
// dirty pages home, and the notices to carry, encoded (empty when there
// are none or when they went to the log; consistency::Sync::ReleaseForCall).
struct CarriedNotices {
  std::string bytes;
  uint64_t upto = 0;  // for Delivered
};
absl::StatusOr<CarriedNotices> ReleaseForCall(int to_rank);
// The call or reply that carried `carried` reached `to_rank`: those
// notices are not carried to it again.
void Delivered(int to_rank, const CarriedNotices& carried);

// Decodes notices another rank sent with a call or a reply (InvalidArgument,
// naming the defect, when malformed). Decode before acting on a call, so
// that a bad message changes nothing.
absl::StatusOr<std::vector<consistency::Contribution>> DecodeNotices(const std::string& bytes);

// Applies notices received from `from_rank`: cached copies of the pages they name go stale,
// except the pages `refs` cover (the call acquired those), and they are
// relayed by this rank's next publication (consistency::Sync::ReceiveCarried).
absl::Status ApplyNotices(int from_rank, const std::vector<consistency::Contribution>& notices,
                          const std::vector<Ref>& refs);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_CALL_NOTICES_H_

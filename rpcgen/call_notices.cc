#include "rpcgen/call_notices.h"

#include "base/status.h"
#include "consistency/sync.h"
#include "gas/range.h"
#include "gasp/gasp.h"
#include "rpcgen/pages.h"
#include "runtime/runtime_internal.h"

namespace gasp {
namespace rpc {

using consistency::Contribution;
using consistency::PageRun;

absl::StatusOr<CarriedNotices> ReleaseForCall(int to_rank) {
  std::vector<Contribution> carry;
  CarriedNotices out;
  GASP_RETURN_IF_ERROR(internal::GetSync()->ReleaseForCall(to_rank, &carry, &out.upto));
  const std::vector<uint8_t> bytes = consistency::EncodeCarriedNotices(carry);
  out.bytes.assign(bytes.begin(), bytes.end());
  return out;
}

void Delivered(int to_rank, const CarriedNotices& carried) {
  internal::GetSync()->Delivered(to_rank, carried.upto);
}

absl::StatusOr<std::vector<Contribution>> DecodeNotices(const std::string& bytes) {
  return consistency::DecodeCarriedNotices(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), Size(),
      internal::GetRange()->num_pages());
}

absl::Status ApplyNotices(int from_rank, const std::vector<Contribution>& notices,
                          const std::vector<Ref>& refs) {
  if (notices.empty()) return absl::OkStatus();
  const std::vector<PageRun> current = RefPageRuns(*internal::GetRange(), refs);
  return internal::GetSync()->ReceiveCarried(from_rank, notices, current);
}

}  // namespace rpc
}  // namespace gasp

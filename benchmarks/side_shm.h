// rtt_bench's second transport: an shm transport between the job's ranks
// beside the one the runtime uses, so that shm round trips are measured in
// the same run as tcp's (same processes, same moment, same load).
#ifndef GASP_BENCHMARKS_SIDE_SHM_H_
#define GASP_BENCHMARKS_SIDE_SHM_H_

#include <cstring>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"
#include "transport/shm_transport.h"
#include "transport/transport.h"

namespace gasp {
namespace bench {

// The side transport, and rank 1's registration of the target for it.
struct SideShm {
  std::unique_ptr<transport::Transport> transport;
  uint64_t target_addr = 0;   // rank 1's address of the target
  transport::RemoteKey rkey;  // its key on the side transport
};

// Collective: every rank creates an shm transport keyed by the job secret,
// the blobs and rank 1's key for `home_target` (its home copy of the
// target) go through global memory, and every rank connects. An error
// (ranks on several hosts, ...) comes back on every rank alike, as the
// Connect of each sees the same blobs.
inline absl::StatusOr<SideShm> OpenSideShm(void* home_target, size_t bytes) {
  struct Board {
    transport::EndpointBlob blobs[2];
    uint64_t addr;
    transport::RemoteKey rkey;
  };
  auto* board = static_cast<Board*>(CoAlloc(sizeof(Board), Placement::OnRank(0)));
  const int me = internal::GetTransport()->rank();
  transport::TransportOptions o;
  o.rank = me;
  o.size = 2;
  o.timeout = absl::Seconds(30);
  const auto& secret = internal::JobSecret().bytes;
  o.job_secret.assign(reinterpret_cast<const char*>(secret.data()), secret.size());
  SideShm side;
  absl::StatusOr<std::unique_ptr<transport::Transport>> t =
      me < 2 ? transport::CreateShmTransport(o)
             : absl::StatusOr<std::unique_ptr<transport::Transport>>(nullptr);
  if (t.ok() && *t != nullptr) {
    board->blobs[me] = (*t)->LocalEndpoint();
    if (me == 1) {
      absl::StatusOr<transport::Region> r =
          (*t)->Register(home_target, bytes, transport::kRemoteAll);
      if (r.ok()) {
        board->addr = reinterpret_cast<uint64_t>(home_target);
        board->rkey = r->rkey;
      }
    }
  }
  Barrier();
  if (!t.ok()) return t.status();
  if (*t == nullptr) return side;
  absl::Status s = (*t)->Connect(absl::MakeConstSpan(board->blobs, 2));
  if (!s.ok()) return s;
  side.transport = std::move(*t);
  side.target_addr = board->addr;
  side.rkey = board->rkey;
  return side;
}

}  // namespace bench
}  // namespace gasp

#endif  // GASP_BENCHMARKS_SIDE_SHM_H_

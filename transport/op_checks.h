// Checks and self-execution of one-sided ops, shared by the backends that
// serve requests in software (tcp, shm): the argument checks Post makes
// before posting anything, and an op to this very rank executed with
// exactly the checks a peer's request gets.
#ifndef GASP_TRANSPORT_OP_CHECKS_H_
#define GASP_TRANSPORT_OP_CHECKS_H_

#include <cstddef>
#include <cstdint>

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/tcp_region_table.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

// "READ", "WRITE", "CAS", "FETCH_ADD".
const char* OpName(OpType type);

// OK when `op` (the index-th of a batch) can be posted in a job of `size`
// ranks with READ/WRITE of at most `max_op_bytes`; otherwise
// InvalidArgument naming the op's index, type, wr_id and peer and what is
// wrong (peer out of range, too long, null local buffer, wrapping range,
// misaligned atomic).
absl::Status ValidateOp(const Op& op, size_t index, int size, uint64_t max_op_bytes);

// Checks a batch for Post: a non-null counter and ValidateOp for each op.
// Returns whether any op goes to another rank than `rank`.
absl::StatusOr<bool> ValidateBatch(absl::Span<const Op> ops, const CompletionCounter* counter,
                                   int rank, int size, uint64_t max_op_bytes);

// Names a peer in an error message; called only when a check fails, so
// that a message's path formats nothing.
using PeerNameFn = absl::FunctionRef<std::string()>;

// Checks Send's arguments: `peer` in [0, size) (InvalidArgument naming the
// range) and a payload within kMaxMessageBytes (naming the peer).
absl::Status ValidateSend(int peer, int size, size_t bytes, PeerNameFn peer_name);

// The rest of Send's preamble, for a message to another rank, once
// ValidateSend passed and the transport runs: Unavailable naming `tag` and
// the peer when it failed or left (`peer_code`, its PeerFailCode,
// is not kSuccess); FailedPrecondition naming `backend` ("tcp", "shm")
// when Connect has not run yet (not `connected`).
absl::Status CheckSendPeer(const char* backend, uint32_t tag, CompletionCode peer_code,
                           bool connected, PeerNameFn peer_name);

// Checks Recv's `from`: kAnyPeer or a rank in [0, size).
absl::Status ValidateRecvFrom(int from, int size);

// Posts a validated batch: expects ops.size() completions on `counter`;
// when not `running` completes them all with kFlushed; else executes the
// ops to `rank` at once (ExecuteOnSelf on `regions`) and hands each run of
// consecutive ops to one other peer to `post_to_peer`.
void DispatchBatch(absl::Span<const Op> ops, CompletionCounter* counter, int rank, bool running,
                   tcp::RegionTable& regions,
                   absl::FunctionRef<void(int peer, absl::Span<const Op> run)> post_to_peer);

// Executes `op` against this rank's own `regions` with the checks a
// peer's request gets (rkey, bounds, rights): the completion code.
// READ/WRITE use memmove (the local buffer may lie in the region itself).
CompletionCode ExecuteOnSelf(tcp::RegionTable& regions, const Op& op);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_OP_CHECKS_H_

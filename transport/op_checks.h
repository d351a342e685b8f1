// Checks and self-execution of one-sided ops, shared by the backends that
// serve requests in software (tcp, shm): the argument checks Post makes
// before posting anything, and an op to this very rank executed with
// exactly the checks a peer's request gets.
#ifndef GASP_TRANSPORT_OP_CHECKS_H_
#define GASP_TRANSPORT_OP_CHECKS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
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

// Executes `op` against this rank's own `regions` with the checks a
// peer's request gets (rkey, bounds, rights): the completion code.
// READ/WRITE use memmove (the local buffer may lie in the region itself).
CompletionCode ExecuteOnSelf(tcp::RegionTable& regions, const Op& op);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_OP_CHECKS_H_

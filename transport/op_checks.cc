#include "transport/op_checks.h"

#include <cstring>
#include <string>

#include "absl/strings/str_format.h"

namespace gasp {
namespace transport {

const char* OpName(OpType type) {
  switch (type) {
    case OpType::kRead: return "READ";
    case OpType::kWrite: return "WRITE";
    case OpType::kCompareSwap: return "CAS";
    case OpType::kFetchAdd: return "FETCH_ADD";
  }
  return "?";
}

absl::Status ValidateOp(const Op& op, size_t index, int size, uint64_t max_op_bytes) {
  const auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat("op %d (%s, wr_id %d) to rank %d: %s", index,
                                                      OpName(op.type), op.wr_id, op.peer, what));
  };
  if (op.peer < 0 || op.peer >= size) {
    return bad(absl::StrFormat("peer out of range [0, %d)", size));
  }
  switch (op.type) {
    case OpType::kRead:
    case OpType::kWrite:
      if (op.length > max_op_bytes) {
        return bad(absl::StrFormat("%d bytes exceed max_op_bytes (%d); split the transfer",
                                   op.length, max_op_bytes));
      }
      if (op.length > 0 && op.local == nullptr) return bad("null local buffer");
      if (op.remote_addr + op.length < op.remote_addr) return bad("remote range wraps around");
      return absl::OkStatus();
    case OpType::kCompareSwap:
    case OpType::kFetchAdd:
      if (op.remote_addr % 8 != 0) {
        return bad(absl::StrFormat("remote address 0x%x is not 8-byte aligned", op.remote_addr));
      }
      return absl::OkStatus();
  }
  return bad("unknown op type");
}

CompletionCode ExecuteOnSelf(tcp::RegionTable& regions, const Op& op) {
  uint8_t* p = nullptr;
  uint32_t pin = 0;
  switch (op.type) {
    case OpType::kRead:
    case OpType::kWrite: {
      const bool read = op.type == OpType::kRead;
      const CompletionCode code = regions.Pin(op.rkey.packed, op.remote_addr, op.length,
                                              read ? kRemoteRead : kRemoteWrite, &p, &pin);
      if (code != CompletionCode::kSuccess) return code;
      if (op.length > 0) {
        if (read) {
          std::memmove(op.local, p, op.length);
        } else {
          std::memmove(p, op.local, op.length);
        }
      }
      regions.Unpin(pin);
      return CompletionCode::kSuccess;
    }
    case OpType::kCompareSwap:
    case OpType::kFetchAdd: {
      uint64_t old = 0;
      const CompletionCode code =
          regions.Atomic(op.type, op.rkey.packed, op.remote_addr, op.compare, op.operand, &old);
      if (code == CompletionCode::kSuccess && op.local != nullptr) {
        std::memcpy(op.local, &old, sizeof(old));
      }
      return code;
    }
  }
  return CompletionCode::kLocalError;
}

}  // namespace transport
}  // namespace gasp

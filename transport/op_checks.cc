#include "transport/op_checks.h"

#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "base/stats.h"

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

absl::StatusOr<bool> ValidateBatch(absl::Span<const Op> ops, const CompletionCounter* counter,
                                   int rank, int size, uint64_t max_op_bytes) {
  if (counter == nullptr) return absl::InvalidArgumentError("Post: null completion counter");
  bool remote = false;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (absl::Status s = ValidateOp(ops[i], i, size, max_op_bytes); !s.ok()) return s;
    remote |= ops[i].peer != rank;
  }
  return remote;
}

absl::Status ValidateSend(int peer, int size, size_t bytes, PeerNameFn peer_name) {
  if (peer < 0 || peer >= size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Send to rank %d: out of range [0, %d)", peer, size));
  }
  if (bytes > kMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Send to %s: %d bytes exceed the message limit of %d", peer_name(), bytes,
        kMaxMessageBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckSendPeer(const char* backend, uint32_t tag, CompletionCode peer_code,
                           bool connected, PeerNameFn peer_name) {
  if (peer_code != CompletionCode::kSuccess) {
    return absl::UnavailableError(absl::StrFormat(
        "Send (tag %d) to %s: the rank is unreachable (it failed or shut down)", tag,
        peer_name()));
  }
  if (!connected) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s transport: Send before Connect(): exchange the endpoint blobs first", backend));
  }
  return absl::OkStatus();
}

absl::Status ValidateRecvFrom(int from, int size) {
  if (from != kAnyPeer && (from < 0 || from >= size)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Recv from rank %d: out of range [0, %d)", from, size));
  }
  return absl::OkStatus();
}

void DispatchBatch(absl::Span<const Op> ops, CompletionCounter* counter, int rank, bool running,
                   tcp::RegionTable& regions,
                   absl::FunctionRef<void(int peer, absl::Span<const Op> run)> post_to_peer) {
  counter->Expect(static_cast<uint32_t>(ops.size()));
  StatAdd(Counter::kRemoteOps, ops.size());
  if (!running) {
    for (const Op& op : ops) counter->Complete(op.peer, op.wr_id, CompletionCode::kFlushed);
    return;
  }
  size_t i = 0;
  while (i < ops.size()) {
    const int peer = ops[i].peer;
    if (peer == rank) {
      counter->Complete(peer, ops[i].wr_id, ExecuteOnSelf(regions, ops[i]));
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < ops.size() && ops[j].peer == peer) ++j;
    post_to_peer(peer, ops.subspan(i, j - i));
    i = j;
  }
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

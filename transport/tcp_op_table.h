// Internal to the tcp backend: the table of this rank's outstanding remote
// one-sided operations.
//
// Fixed capacity, allocated once, so posting and completing never allocate
// (the DSM posts from its page-fault path). A request carries
// req_id = generation << 32 | slot index; a slot's generation changes every
// time it is freed, so a late reply for an abandoned or failed op can never
// be mistaken for the op that reuses the slot.
//
// Each slot has its own mutex. Whoever completes an op (or writes into its
// local buffer) holds it, and Abandon takes it too; so once Abandon returns
// nobody is inside the op's buffer or about to touch its counter.
#ifndef GASP_TRANSPORT_TCP_OP_TABLE_H_
#define GASP_TRANSPORT_TCP_OP_TABLE_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace tcp {

// One outstanding op. Fields other than `index` are guarded by `mu`.
struct OpSlot {
  std::mutex mu;
  uint32_t index = 0;       // position in the table (constant)
  uint32_t generation = 0;  // bumped whenever the slot is freed
  bool live = false;        // armed and not yet completed/abandoned
  CompletionCounter* counter = nullptr;
  OpType type = OpType::kRead;
  int peer = -1;
  uint64_t wr_id = 0;
  uint8_t* local = nullptr;  // READ destination / atomic old value (may be null)
  uint64_t length = 0;       // READ/WRITE bytes
};

class OpTable {
 public:
  // `peers`: the job size (ops are counted per peer).
  OpTable(size_t capacity, int peers);
  OpTable(const OpTable&) = delete;
  OpTable& operator=(const OpTable&) = delete;

  size_t capacity() const { return capacity_; }

  // Takes a free slot without waiting; false when every slot is in use.
  bool TryAcquire(uint32_t* index);
  // Takes a free slot, waiting for one until `deadline`; false on timeout.
  bool Acquire(absl::Time deadline, uint32_t* index);

  // Fills the acquired slot `index` with `op` and makes it live. Returns
  // the req_id to put on the wire.
  uint64_t Arm(uint32_t index, const Op& op, CompletionCounter* counter);

  // Locks and returns the live slot `req_id` names, or nullptr when there
  // is none (abandoned, already completed, or never issued). Release it with
  // Unlock or CompleteAndUnlock.
  OpSlot* Lock(uint64_t req_id);
  void Unlock(OpSlot* slot);
  // Completes the locked slot's op with `code` (on its counter, while still
  // holding the slot so Abandon cannot race), frees and unlocks it.
  void CompleteAndUnlock(OpSlot* slot, CompletionCode code);

  // Completes `req_id` with `code` if it is still live; false otherwise.
  bool Complete(uint64_t req_id, CompletionCode code);

  // Completes every live op to `peer` (peer == -1: every op) with `code`.
  // Returns how many were completed.
  int FailPeer(int peer, CompletionCode code);

  // Frees every live op of `counter` without completing it.
  int Abandon(const CompletionCounter* counter);

  // Distinct peers that still owe `counter` a completion (for timeouts).
  std::vector<int> PendingPeers(const CompletionCounter* counter);

  // Live slots right now (tests, diagnostics).
  size_t live() const;
  // Live ops to `peer` right now: armed, not yet completed or abandoned.
  uint32_t LiveTo(int peer) const { return live_to_[peer].load(std::memory_order_seq_cst); }

 private:
  // Marks the locked slot free, bumps its generation and unlocks it, then
  // returns it to the free list.
  void FreeAndUnlock(OpSlot* slot);

  const size_t capacity_;
  std::unique_ptr<OpSlot[]> slots_;
  std::unique_ptr<std::atomic<uint32_t>[]> live_to_;  // per peer
  mutable std::mutex free_mu_;
  std::condition_variable free_cv_;
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(free_mu_);  // reserved to capacity_
  int waiters_ ABSL_GUARDED_BY(free_mu_) = 0;
};

// Waits until `counter` is done, sleeping on it (GASP_WAIT_MODE) while
// another thread completes its ops from `ops`. At `deadline` abandons them
// and returns DeadlineExceeded naming the peers that owe a reply
// (`peer_name`) and GASP_TIMEOUT (`timeout`) of the `backend` ("tcp").
// Otherwise OK, or the first failed op's CompletionError.
absl::Status WaitForCompletions(CompletionCounter* counter, absl::Time deadline, OpTable& ops,
                                absl::string_view backend, absl::Duration timeout,
                                absl::FunctionRef<std::string(int)> peer_name);

// Parts of a req_id.
inline uint32_t ReqIdIndex(uint64_t req_id) { return static_cast<uint32_t>(req_id); }
inline uint32_t ReqIdGeneration(uint64_t req_id) { return static_cast<uint32_t>(req_id >> 32); }

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TCP_OP_TABLE_H_

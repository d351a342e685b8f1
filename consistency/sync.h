// Synchronization on top of the coherence protocol: global locks (queue
// locks, consistency/queue_lock.h), barriers (dissemination over transport
// messages) and
// atomics on global words, each with the release/acquire actions that make
// release consistency hold for data-race-free programs.
#ifndef GASP_CONSISTENCY_SYNC_H_
#define GASP_CONSISTENCY_SYNC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/coherence.h"
#include "consistency/collective.h"
#include "consistency/notice_log.h"
#include "consistency/notices.h"
#include "consistency/queue_lock.h"
#include "consistency/tags.h"
#include "transport/transport.h"

namespace gasp {
namespace consistency {

// Memory-order effects of an atomic: release before it, acquire after it.
struct Ordering {
  bool release = true;
  bool acquire = true;
};

class Sync {
 public:
  // `describe_rank(r)` returns e.g. "rank 3 (node7:1234)" for messages.
  Sync(Coherence* coherence, transport::Transport* transport, int rank, int nranks,
       absl::Duration timeout, std::function<std::string(int)> describe_rank);

  // Global locks: the word is the tail of a FIFO queue of nodes, 0 when free
  // (QueueLocks). Lock queues the calling thread, waits for the hand-off
  // (bounded by GASP_TIMEOUT: the error names whom it waited behind), then
  // acquires (invalidates the pages the notice log names); Unlock checks
  // that the calling thread holds the lock, releases (dirty pages home,
  // notices published), then hands the lock to the next waiter with one
  // WRITE or frees the word. Uncontended: one COMPARE_SWAP each.
  // REQUIRES: SetLockNodes.
  absl::Status Lock(uint64_t word_addr);
  absl::StatusOr<bool> TryLock(uint64_t word_addr);
  absl::Status Unlock(uint64_t word_addr);
  // The pool of queue nodes (QueueLocks): `nodes_per_rank` 64-byte nodes
  // per rank, rank r's at `addr` + r * `stride`, homed at r, zero-filled.
  // Call once at Init, before the first lock.
  void SetLockNodes(uint64_t addr, uint64_t stride, uint32_t nodes_per_rank);
  QueueLocks* queue_locks() { return queue_.get(); }

  // The test-and-set lock of earlier releases, kept for comparison only
  // (benchmarks/lock_bench): CAS(0 -> (tid << 32) | (rank + 1)) at the
  // home with randomized exponential backoff, no queue, no fairness. Never
  // mix the two on one word.
  absl::Status LockTestAndSet(uint64_t word_addr);
  absl::Status UnlockTestAndSet(uint64_t word_addr);

  // Release, dissemination barrier (ceil(log2 n) message rounds that also
  // gather every rank's write notices since the previous barrier), then an
  // acquire that invalidates only the pages other ranks named. A rank that
  // does not arrive within GASP_TIMEOUT is named in the error.
  absl::Status Barrier();
  // A barrier that also combines every rank's `values` (the same count on
  // every rank, at most kMaxReduceValues) into `out`, in rank order.
  enum class ReduceOp { kSum, kMin, kMax };
  absl::Status BarrierReduce(absl::Span<const double> values, ReduceOp op, double* out);
  // The barrier of Finalize: every rank may leave as soon as it completes,
  // so its acquire makes no remote operation (stale copies are dropped,
  // never refreshed in place).
  absl::Status FinalBarrier();
  // The message rounds alone, without release/acquire.
  absl::Status BarrierOnly();

  // Release: write dirty pages home and publish this rank's write notices
  // to the notice log. Acquire: invalidate the pages other ranks' releases
  // named since this rank's last acquire (the whole cache without a log).
  absl::Status Release();
  absl::Status Acquire();
  // Release that also returns the notice-log tail it knows of (0 without a
  // log), for the hand-off of a lock; Acquire up to such a tail.
  absl::StatusOr<uint64_t> ReleaseForHandOff();
  absl::Status AcquireTo(uint64_t known_tail);

  // Shipped calls carry write notices instead of publishing them before
  // the call (docs/protocol.md, "Function-shipped calls: notices carried").
  // Notices a call carries wait in an outbox until this rank's next
  // publication to the log; each goes to each other rank at most once.
  //
  // ReleaseForCall writes dirty pages home, moves this rank's notices since
  // its last publication or call into the outbox, and fills `carry` with
  // what of the outbox `to_rank` has not been given yet (nothing that came
  // from it or names its own writes), one contribution per origin.
  // `*upto` marks what was given: pass it to Delivered once the call (or
  // reply) went through, so that a call that failed is carried again.
  // Notices too many for a call (kMaxCarriedRuns) are published to the log
  // here instead, and `carry` is left empty; without a log it is always
  // empty.
  absl::Status ReleaseForCall(int to_rank, std::vector<Contribution>* carry, uint64_t* upto);
  void Delivered(int to_rank, uint64_t upto);
  // The receiving side, for notices `from_rank` carried: invalidates the
  // cached copies of the pages they name (other ranks' writes), except the
  // pages of `current` (the call's references, which the call itself
  // acquired), and puts them in the outbox, to be published by this rank's
  // next publication (any lock or atomic release) and carried by its calls
  // to ranks other than `from_rank` and the origin.
  absl::Status ReceiveCarried(int from_rank, absl::Span<const Contribution> carried,
                              absl::Span<const PageRun> current);

  // Uses the notice log at global address `addr` (NoticeLog::BytesFor
  // `entries` bytes, zero-filled, allocated on every rank) for lock and
  // atomic hand-offs. Without it, every acquire drops the whole cache.
  void SetNoticeLog(uint64_t addr, uint64_t entries);
  // Where each rank keeps the number of the barrier it is in (one 8-byte
  // word per rank, rank r's at addr + r * stride, homed at r), so that a
  // long barrier wait names the ranks that have not arrived
  // (sync_probe.cc). Call once at Init, before the first barrier to probe.
  void SetArrivalWords(uint64_t addr, uint64_t stride);

  // Atomics on an 8-byte aligned global word, executed at its home.
  absl::StatusOr<uint64_t> FetchAdd(uint64_t addr, uint64_t value, Ordering order);
  // Returns the previous value; the swap happened iff it equals `expected`.
  absl::StatusOr<uint64_t> CompareSwap(uint64_t addr, uint64_t expected, uint64_t desired,
                                       Ordering order);
  absl::StatusOr<uint64_t> Load(uint64_t addr, Ordering order);
  absl::Status Store(uint64_t addr, uint64_t value, Ordering order);

  // Every rank contributes one word; returns all, indexed by rank. Used by
  // collective allocation to exchange remote keys. Bounded by GASP_TIMEOUT.
  absl::StatusOr<std::vector<uint64_t>> AllgatherU64(uint64_t mine);

  uint64_t barrier_epoch() const { return epoch_; }

  // Records a collective call of this rank (its description names the call
  // and its arguments, e.g. "CoAlloc(4096 bytes, block)"); the next
  // barrier or allgather compares every rank's calls so far and fails with
  // both calls named if they differ. Called by the thread that makes
  // collective calls.
  void NoteCollective(const std::string& description) { stamp_.Note(description); }
  // Collective calls made so far by this rank.
  uint64_t collective_seq() const { return stamp_.seq; }

 private:
  // A barrier whose acquire may refresh stale copies in place or not.
  absl::Status BarrierAcquire(absl::Span<const double> values, ReduceOp op, double* out,
                              bool may_refresh);
  absl::StatusOr<uint64_t> Atomic(transport::OpType type, uint64_t addr, uint64_t compare,
                                  uint64_t operand);
  // The dissemination rounds; `known` holds this rank's contribution on
  // entry and every rank's on return.
  absl::Status Exchange(std::vector<Contribution>* known);
  absl::Status CheckWord(uint64_t addr, int* home) const;
  // Publishes this rank's pending notices (unless `take_own` is false) and
  // the outbox, and empties it. REQUIRES: notice_mu_ held, log_ set.
  absl::Status PublishLocked(bool take_own = true);
  // Runs in the outbox. REQUIRES: notice_mu_ held.
  size_t OutboxRunsLocked() const;
  // The home of a lock word (CheckWord), once the queue nodes are set.
  absl::StatusOr<int> LockHome(uint64_t word_addr) const;
  // Arrival words (sync_probe.cc): this rank's barrier number; the ranks
  // missing at barrier `epoch` ("" when all answer and have arrived);
  // Recv of a barrier round that warns once, naming them, after
  // GASP_TIMEOUT/6 (at least 10 s).
  void NoteArrival(uint64_t epoch);
  std::string MissingRanks(uint64_t epoch);
  // READs rank r's arrival word into *seen; false when r does not answer
  // within a short time (stopped, or gone).
  bool ProbeRank(int r, uint64_t* seen);
  // "rank 2 (host:pid), which does not answer (...)" for a lock's holder.
  std::string DescribeHolder(int holder);
  absl::StatusOr<transport::Message> RecvRound(int from, uint64_t epoch, absl::Time start,
                                               absl::Time deadline);

  Coherence* const coherence_;
  transport::Transport* const transport_;
  const int rank_;
  const int nranks_;
  const absl::Duration timeout_;
  const std::function<std::string(int)> describe_rank_;
  uint64_t epoch_ = 0;  // barriers completed by this rank (barriers are collective)
  // Serializes this process's release+publish and collect+invalidate
  // sequences, so a publication never overtakes an earlier one and an
  // acquire never skips entries another thread is still applying. Never
  // held across a barrier's message rounds.
  std::mutex notice_mu_;
  std::unique_ptr<NoticeLog> log_;  // guarded by notice_mu_ (set before use)
  // Notices carried or to be carried by shipped calls that no publication
  // of this rank has passed on yet: this rank's own (from == rank_) and
  // those calls brought here, numbered in arrival order. delivered_[r]:
  // the entries up to this number were carried to rank r. Guarded by
  // notice_mu_.
  struct Outgoing {
    uint64_t seq = 0;
    int from = 0;
    Contribution notices;
  };
  std::vector<Outgoing> outbox_;
  uint64_t next_seq_ = 1;
  std::vector<uint64_t> delivered_;
  std::unique_ptr<QueueLocks> queue_;  // set once at Init
  uint64_t allgather_epoch_ = 0;
  uint64_t arrival_addr_ = 0;
  uint64_t arrival_stride_ = 0;
  std::string last_missing_;  // what the last warning named (for the timeout error)
  CollectiveStamp stamp_;
};


}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_SYNC_H_

// Queue locks (MCS) over one-sided operations. A global lock is one 8-byte
// word at its home: the tail of a queue of nodes, 0 when the lock is free.
// Every thread that holds or awaits a lock owns one node for it, in a pool
// of registered memory at its own rank (threads of one rank queue like
// remote ranks). To lock, a thread swaps its node's name into the tail (a
// COMPARE_SWAP loop, the transports have no SWAP; a FETCH_ADD announcement
// keeps a thread from failing at it forever); if the tail named a
// node, it links itself behind it (one WRITE into the predecessor's `next`)
// and waits on its own node's `grant` word, which only memory traffic
// changes. To unlock, a holder without a successor swaps the tail back to
// 0; otherwise (or when that swap finds a new tail) it WRITEs the grant
// into the successor's `grant`. Each waiter is granted the lock by the
// node it queued behind, so the lock is taken in the order of the swaps
// (FIFO). docs/protocol.md, "Locks".
//
// This layer only queues: Sync releases before Unlock and acquires after
// Lock, so release consistency rides on the hand-off. The grant carries a
// value from the releaser to the next holder (Sync passes its notice-log
// tail, which saves the next holder a FETCH_ADD).
#ifndef GASP_CONSISTENCY_QUEUE_LOCK_H_
#define GASP_CONSISTENCY_QUEUE_LOCK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consistency/coherence.h"
#include "transport/transport.h"

namespace gasp {
namespace consistency {

// A node's name, as the tail word, the links and `pred` carry it: (index
// << 24) | (rank + 1), 44 bits (ranks < 2^24 - 1, indices < 2^20). 0 names
// no node (a free lock, no link yet). The low half of a name is never 0.
inline constexpr uint64_t kNoNode = 0;
inline constexpr int kNameBits = 44;
inline constexpr uint64_t kNameMask = (uint64_t{1} << kNameBits) - 1;
struct NodeId {
  int rank = -1;
  uint32_t index = 0;
};
uint64_t NodeName(NodeId id);
// Decodes a name read from memory that other ranks write. False when it
// names no node of the job: 0, bits above the name, a rank outside [0,
// nranks), an index at or beyond `nodes_per_rank`.
bool DecodeNodeName(uint64_t name, int nranks, uint32_t nodes_per_rank, NodeId* out);

// The lock word: the tail's name in the low 44 bits; the top 20 bits count
// the threads that announced that their swap keeps failing (a FETCH_ADD,
// which cannot fail). While any is announced, no other thread swaps: they
// go first, so no thread starves at the door (docs/protocol.md, "Locks").
// 0: free, nobody announced.
inline constexpr uint64_t kAnnounceOne = uint64_t{1} << kNameBits;
inline uint64_t TailName(uint64_t tail) { return tail & kNameMask; }
inline uint64_t Announced(uint64_t tail) { return tail >> kNameBits; }

// The grant word that passes `value` (< 2^63) with the lock: never 0, nor
// 0 in its low half (a waiter may futex-wait on that half).
inline uint64_t GrantWord(uint64_t value) { return (value << 1) | 1; }
inline uint64_t GrantValue(uint64_t word) { return word >> 1; }

// What a node is doing (QueueNode::state), written only by its owner.
enum NodeState : uint64_t {
  kNodeFree = 0,
  kNodeWaiting = 1,
  kNodeHolding = 2,
  kNodeAbandoned = 3,  // its owner gave up waiting (GASP_TIMEOUT); never reused
};

// One queue node: a cache line in the pool of its owner's rank. `grant` and
// `next` are written by other threads and ranks (WRITEs land in them), the
// rest by the owner; other ranks READ the whole node only to describe a
// queue (who waits behind whom) in warnings and errors.
struct QueueNode {
  uint64_t grant;  // 0 while waiting; the predecessor writes GrantWord(value) here to hand over
  uint64_t next;   // 0 until the successor writes its name here
  uint64_t pred;   // the node this one queued behind (0: it found the lock free)
  uint64_t lock;   // global address of the lock word (0: the node is free)
  uint64_t state;  // NodeState
  uint64_t tid;    // the owning thread (Linux thread id), for messages
  uint64_t reserved[2];
};
static_assert(sizeof(QueueNode) == 64, "one node per cache line");

class QueueLocks {
 public:
  // `pool`: global address of rank 0's nodes; rank r's are at pool + r *
  // `stride`, homed at r, registered, zero-filled, `nodes_per_rank` each.
  // `describe_rank(r)` returns e.g. "rank 3 (node7:1234)".
  QueueLocks(Coherence* coherence, transport::Transport* transport, int rank, int nranks,
             uint64_t pool, uint64_t stride, uint32_t nodes_per_rank, absl::Duration timeout,
             std::function<std::string(int)> describe_rank);
  // Waits (briefly) for hand-offs still in flight.
  ~QueueLocks();

  // Queues the calling thread on the lock word at `lock` (homed at `home`)
  // and returns once it holds it. Errors: the thread holds it already (locks
  // are not recursive); no free node (GASP_LOCK_NODES); DeadlineExceeded
  // after GASP_TIMEOUT naming the predecessor and, when it can be told, the
  // holder (a warning names them after GASP_TIMEOUT/6, at least 10 s); the
  // failure of a transport operation. A thread that gave up waiting leaves
  // its node in the queue (the lock cannot be handed past it): the runtime
  // ends the job on any of these errors.
  // `*handed_over`: the lock was handed over by a predecessor, with
  // `*passed` (the value its Unlock passed); false when it was free.
  absl::Status Lock(uint64_t lock, int home, bool* handed_over, uint64_t* passed);
  // Takes the lock if it is free: one COMPARE_SWAP. False if anyone holds
  // or awaits it (the calling thread included).
  absl::StatusOr<bool> TryLock(uint64_t lock, int home);
  // OK if the calling thread holds the lock; else FailedPrecondition saying
  // who does (not held, another thread of this rank, another rank).
  absl::Status CheckHolder(uint64_t lock, int home);
  // Hands the lock to the successor, passing `pass` (< 2^63), or frees it.
  // Returns once the hand-off is posted: the WRITE completes in the
  // background (its failure is reported by the next Lock or TryLock that
  // takes the node; a lost peer ends the job anyway). REQUIRES: CheckHolder
  // OK.
  absl::Status Unlock(uint64_t lock, int home, uint64_t pass);

  // For tests: how the calling thread got `lock`. False if it does not
  // hold it.
  struct Hold {
    uint64_t node = kNoNode;    // the name of its queue node
    uint64_t pred = kNoNode;    // the node it queued behind (kNoNode: it found the lock free)
    uint64_t failed_swaps = 0;  // COMPARE_SWAPs of its swap that found another word
  };
  bool HeldBy(uint64_t lock, Hold* hold) const;

  // Who a waiter of `lock` whose predecessor is `pred` waits for: "queued
  // behind rank 1 (h:7) thread 9, which holds it and answers", or "...,
  // which waits too; rank 2 (h:8) thread 4 (2 ahead) holds it and
  // answers", or "... does not answer (...)". READs the nodes ahead (one
  // each), up to the holder or a rank that does not answer.
  std::string DescribeWait(uint64_t lock, uint64_t pred);

 private:
  // A node as a queue walk saw it.
  struct Hop {
    NodeId id;
    bool answered = false;  // its rank answered the READ (always, at this rank)
    QueueNode node{};       // its contents, if it answered
  };

  // A hand-off WRITE posted by the holder of a node, in flight until the
  // node is taken again.
  struct Grant {
    uint64_t value = 0;  // the WRITE's source
    std::optional<transport::CompletionCounter> counter;
    NodeId to;
  };

  QueueNode* Local(uint32_t index) const;
  uint64_t NodeAddress(NodeId id) const;
  // Swaps `mine` into the lock word's tail, first expecting `guess`;
  // returns the name it replaced (kNoNode: the lock was free) and counts
  // the COMPARE_SWAPs that failed in `*failed`. A thread whose COMPARE_SWAP
  // fails announces itself (FETCH_ADD on the word's top bits) and retries;
  // one that finds others announced first waits until none is. Bounded by
  // `deadline`.
  absl::StatusOr<uint64_t> Swap(uint64_t lock, int home, uint64_t mine, uint64_t guess,
                                absl::Time deadline, uint64_t* failed);
  // Waits for node `index`'s last hand-off to complete; its error, if any.
  absl::Status FinishGrant(uint32_t index, absl::Time deadline);
  absl::StatusOr<uint32_t> TakeNode(uint64_t lock);
  void ReturnNode(uint32_t index);
  // COMPARE_SWAP (FETCH_ADD of 0 reads it) on the lock word; returns the
  // old value.
  absl::StatusOr<uint64_t> Atomic(transport::OpType type, uint64_t lock, int home,
                                  uint64_t compare, uint64_t operand);
  // Writes `value` into `word_offset` of node `to`: a store and a wake-up
  // at this rank, else a WRITE posted with `counter` (`*buf` holds the
  // value until it completes).
  absl::Status WriteNodeWord(NodeId to, size_t word_offset, uint64_t value, uint64_t* buf,
                             transport::CompletionCounter* counter);
  // Waits until `word` (of one of this rank's nodes) is non-zero, warning
  // after GASP_TIMEOUT/6 (at least 10 s) and failing after GASP_TIMEOUT
  // ("<what>: gave up after GASP_TIMEOUT: <why()>"); the warning is "still
  // <what> for <duration>: <why()>". Fails at once if an op posted
  // with `pending` (may be null) fails.
  absl::Status AwaitWord(const std::atomic<uint64_t>* word, transport::CompletionCounter* pending,
                         const std::string& what, const std::function<std::string()>& why,
                         absl::Time start);
  // One node as a walk sees it (READ within a short deadline when remote).
  Hop Read(NodeId id);
  // Follows `pred` links from `name` towards the holder of `lock` (at most
  // one READ per hop, stopping at a rank that does not answer).
  std::vector<Hop> Walk(uint64_t lock, uint64_t name);
  std::string Who(const Hop& hop) const;

  Coherence* const coherence_;
  transport::Transport* const transport_;
  const int rank_;
  const int nranks_;
  const uint64_t pool_;
  const uint64_t stride_;
  const uint32_t nodes_per_rank_;
  const absl::Duration timeout_;
  const std::function<std::string(int)> describe_rank_;
  const uint64_t instance_;  // tells this object's held locks from an earlier runtime's
  std::mutex mu_;
  std::vector<uint32_t> free_;  // guarded by mu_
  // Indexed by node; touched only by the thread that owns the node.
  std::unique_ptr<Grant[]> grants_;
};

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_QUEUE_LOCK_H_

#include "consistency/queue_lock.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/status.h"
#include "base/wait.h"

namespace gasp {
namespace consistency {

using transport::CompletionCode;
using transport::CompletionCounter;
using transport::Op;
using transport::OpType;

namespace {
constexpr int kRankBits = 24;
}  // namespace

uint64_t NodeName(NodeId id) {
  return (static_cast<uint64_t>(id.index) << kRankBits) | (static_cast<uint64_t>(id.rank) + 1);
}

bool DecodeNodeName(uint64_t name, int nranks, uint32_t nodes_per_rank, NodeId* out) {
  const uint64_t rank_plus_1 = name & ((uint64_t{1} << kRankBits) - 1);
  const uint64_t index = name >> kRankBits;
  if (name > kNameMask || rank_plus_1 == 0 || rank_plus_1 > static_cast<uint64_t>(nranks) ||
      index >= nodes_per_rank) {
    return false;
  }
  out->rank = static_cast<int>(rank_plus_1 - 1);
  out->index = static_cast<uint32_t>(index);
  return true;
}

namespace {

// How long a rank named in a queue walk may take to answer one READ.
constexpr absl::Duration kProbeAnswer = absl::Seconds(2);
// A walk stops after this many nodes (each is one READ).
constexpr int kMaxHops = 1024;

// Waiting for a word of one's own node. What lands there is usually a
// remote WRITE, which wakes nobody, so the thread looks at the word itself,
// as the wait policy (base/wait.h) says:
//   poll      spins (dedicated cores);
//   adaptive  yields the CPU between looks for GASP_SPIN_US + kYieldFor (a
//             spin that kept its core would hold off the progress thread
//             that delivers the hand-off when ranks share cores; a yield
//             costs one system call when they do not), then naps;
//   block     naps from the start.
// Naps grow from kFirstNap to kMaxNap; a thread of this rank that writes
// the word wakes a napping waiter at once (futex).
constexpr absl::Duration kYieldFor = absl::Milliseconds(2);
constexpr absl::Duration kFirstNap = absl::Microseconds(50);
constexpr absl::Duration kMaxNap = absl::Milliseconds(1);

class Pauser {
 public:
  Pauser() : mode_(GetWaitMode()) {
    yield_until_ = mode_ == WaitMode::kAdaptive
                       ? absl::Now() + absl::Microseconds(GetSpinMicros()) + kYieldFor
                       : absl::InfinitePast();
  }

  // Returns once `*word` is non-zero, or after a short spin, a yield or a
  // nap that ends by `until`. `word` may be null: a pause between looks at
  // something remote.
  void Pause(const std::atomic<uint64_t>* word, absl::Time until) {
    if (mode_ == WaitMode::kPoll) {
      for (int i = 0; i < 64 && (word == nullptr || word->load(std::memory_order_acquire) == 0);
           ++i) {
        CpuRelax();
      }
      return;
    }
    const absl::Time now = absl::Now();
    if (now < yield_until_) {
      sched_yield();
      return;
    }
    nap_ = nap_ == absl::ZeroDuration() ? kFirstNap : std::min(nap_ * 2, kMaxNap);
    const absl::Time end = std::min(until, now + nap_);
    if (word == nullptr) {
      absl::SleepFor(end - now);
      return;
    }
    // The low half of a node name or grant word is never zero: a 32-bit
    // futex on it sees every value arrive.
    BlockWhileEqual(reinterpret_cast<const std::atomic<uint32_t>*>(word), 0, end);
  }

 private:
  const WaitMode mode_;
  absl::Time yield_until_;
  absl::Duration nap_ = absl::ZeroDuration();
};

uint64_t ThreadId() {
  static thread_local const uint64_t tid = static_cast<uint64_t>(syscall(SYS_gettid));
  return tid;
}

std::atomic<uint64_t>* Word(uint64_t* p) { return reinterpret_cast<std::atomic<uint64_t>*>(p); }

// The locks the calling thread holds, with the node of each.
struct HeldLock {
  uint64_t instance;
  uint64_t lock;
  uint32_t index;
  uint64_t failed_swaps;  // COMPARE_SWAPs of its swap that failed
};
thread_local std::vector<HeldLock> t_held;

std::vector<HeldLock>::iterator FindHeld(uint64_t instance, uint64_t lock) {
  return std::find_if(t_held.begin(), t_held.end(), [&](const HeldLock& h) {
    return h.instance == instance && h.lock == lock;
  });
}

std::atomic<uint64_t> g_instances{0};

// The tail each lock had when the calling thread last queued on it: its
// predecessor then, often its predecessor again (ranks that take turns
// queue in the same order), else 0. The first guess of the swap: a right
// guess saves a COMPARE_SWAP. A small direct-mapped cache per thread.
struct TailGuess {
  uint64_t instance = 0;
  uint64_t lock = 0;
  uint64_t tail = kNoNode;
};
constexpr size_t kGuesses = 16;
thread_local TailGuess t_guess[kGuesses];

TailGuess& GuessFor(uint64_t lock) { return t_guess[(lock >> 3) % kGuesses]; }

}  // namespace

QueueLocks::QueueLocks(Coherence* coherence, transport::Transport* transport, int rank,
                       int nranks, uint64_t pool, uint64_t stride, uint32_t nodes_per_rank,
                       absl::Duration timeout, std::function<std::string(int)> describe_rank)
    : coherence_(coherence),
      transport_(transport),
      rank_(rank),
      nranks_(nranks),
      pool_(pool),
      stride_(stride),
      nodes_per_rank_(nodes_per_rank),
      timeout_(timeout),
      describe_rank_(std::move(describe_rank)),
      instance_(g_instances.fetch_add(1) + 1),
      grants_(new Grant[nodes_per_rank]) {
  free_.reserve(nodes_per_rank);
  for (uint32_t i = nodes_per_rank; i > 0; --i) free_.push_back(i - 1);  // node 0 first
}

QueueLocks::~QueueLocks() {
  for (uint32_t i = 0; i < nodes_per_rank_; ++i) {
    FinishGrant(i, absl::Now() + absl::Seconds(1)).IgnoreError();
  }
}

absl::Status QueueLocks::FinishGrant(uint32_t index, absl::Time deadline) {
  Grant& g = grants_[index];
  if (!g.counter.has_value()) return absl::OkStatus();
  absl::Status s = transport_->Wait(&*g.counter, deadline);  // abandons it on timeout
  g.counter.reset();
  if (s.ok()) return s;
  return Annotate(s, absl::StrFormat("handing a global lock to %s", describe_rank_(g.to.rank)));
}

uint64_t QueueLocks::NodeAddress(NodeId id) const {
  return pool_ + static_cast<uint64_t>(id.rank) * stride_ +
         static_cast<uint64_t>(id.index) * sizeof(QueueNode);
}

QueueNode* QueueLocks::Local(uint32_t index) const {
  return reinterpret_cast<QueueNode*>(coherence_->SysWord(NodeAddress({rank_, index})));
}

absl::StatusOr<uint32_t> QueueLocks::TakeNode(uint64_t lock) {
  uint32_t index;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (free_.empty()) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "global lock %#x: all GASP_LOCK_NODES=%d queue nodes of this rank are in use (one per "
          "thread and lock held or awaited); raise GASP_LOCK_NODES",
          lock, nodes_per_rank_));
    }
    index = free_.back();
    free_.pop_back();
  }
  absl::Status s = FinishGrant(index, absl::Now() + timeout_);
  if (!s.ok()) {
    ReturnNode(index);
    return s;
  }
  // Reset before the node's name is swapped into a tail: only then can
  // other ranks write into it.
  QueueNode* n = Local(index);
  Word(&n->grant)->store(0, std::memory_order_relaxed);
  Word(&n->next)->store(0, std::memory_order_relaxed);
  Word(&n->pred)->store(kNoNode, std::memory_order_relaxed);
  Word(&n->tid)->store(ThreadId(), std::memory_order_relaxed);
  Word(&n->state)->store(kNodeWaiting, std::memory_order_relaxed);
  Word(&n->lock)->store(lock, std::memory_order_release);
  return index;
}

void QueueLocks::ReturnNode(uint32_t index) {
  QueueNode* n = Local(index);
  Word(&n->state)->store(kNodeFree, std::memory_order_relaxed);
  Word(&n->lock)->store(0, std::memory_order_release);
  std::lock_guard<std::mutex> l(mu_);
  free_.push_back(index);
}

absl::StatusOr<uint64_t> QueueLocks::Atomic(OpType type, uint64_t lock, int home,
                                            uint64_t compare, uint64_t operand) {
  uint64_t old = 0;
  Op op = coherence_->HomeOp(type, home, lock);
  op.local = &old;
  op.compare = compare;
  op.operand = operand;
  absl::Status s = transport_->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + timeout_);
  if (!s.ok()) {
    return Annotate(s, absl::StrFormat("global lock %#x at %s", lock, describe_rank_(home)));
  }
  return old;
}

absl::Status QueueLocks::WriteNodeWord(NodeId to, size_t word_offset, uint64_t value,
                                       uint64_t* buf, CompletionCounter* counter) {
  if (to.rank == rank_) {
    std::atomic<uint64_t>* w =
        Word(reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(Local(to.index)) + word_offset));
    w->store(value, std::memory_order_release);
    WakeAll(reinterpret_cast<const std::atomic<uint32_t>*>(w));
    return absl::OkStatus();
  }
  *buf = value;
  Op op = coherence_->HomeOp(OpType::kWrite, to.rank, NodeAddress(to) + word_offset);
  op.local = buf;
  op.length = sizeof(uint64_t);
  return transport_->Post(absl::MakeConstSpan(&op, 1), counter);
}

absl::Status QueueLocks::AwaitWord(const std::atomic<uint64_t>* word,
                                   CompletionCounter* pending, const std::string& what,
                                   const std::function<std::string()>& why, absl::Time start) {
  const absl::Time deadline = start + timeout_;
  // One warning per wait, after GASP_TIMEOUT/6 (at least 10 s).
  absl::Time warn_at = start + std::max(timeout_ / 6, absl::Seconds(10));
  Pauser pauser;
  while (word->load(std::memory_order_acquire) == 0) {
    if (pending != nullptr && pending->done()) {
      if (pending->first_error() != CompletionCode::kSuccess) {
        return Annotate(transport::CompletionError(pending->first_error(), pending->error_peer(),
                                                   pending->error_wr_id()),
                        what);
      }
      pending = nullptr;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "%s: gave up after GASP_TIMEOUT=%s: %s", what, absl::FormatDuration(timeout_), why()));
    }
    if (now >= warn_at) {
      warn_at = absl::InfiniteFuture();
      GASP_LOG(Warn) << absl::StrFormat(
          "still %s for %s: %s", what,
          absl::FormatDuration(absl::Trunc(now - start, absl::Seconds(1))), why());
    }
    pauser.Pause(word, std::min(deadline, warn_at));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> QueueLocks::Swap(uint64_t lock, int home, uint64_t mine,
                                          uint64_t guess, absl::Time deadline,
                                          uint64_t* failed) {
  // COMPARE_SWAPs until one finds the word it expects (each failure returns
  // the word it found). An uncontended lock costs one. Alone, that loop can
  // starve a thread whose round trip is longer than the time between other
  // threads' swaps (the lock's home swaps locally), so a thread announces
  // itself when it fails (after waiting once for earlier announced threads
  // to get in, if it found any), and while any thread is announced, only
  // announced threads can swap: every swap that succeeds expects the count,
  // and a thread that has not announced never expects a non-zero count.
  // While one is announced, every other thread swaps at most once and
  // announces at most once, so it fails at most about 3x the number of
  // threads contending (docs/protocol.md, "Locks").
  uint64_t expected = guess;
  bool announced = false, waited = false;
  *failed = 0;
  Pauser pauser;
  auto give_up = [&](uint64_t seen) -> absl::Status {
    if (announced) {  // withdraw the announcement (a FETCH_ADD of -1 in its field)
      Atomic(OpType::kFetchAdd, lock, home, 0, uint64_t{0} - kAnnounceOne).IgnoreError();
    }
    return absl::DeadlineExceededError(absl::StrFormat(
        "waiting for global lock %#x: could not queue within GASP_TIMEOUT=%s (%d COMPARE_SWAPs "
        "failed; %d threads announced at the last look)",
        lock, absl::FormatDuration(timeout_), *failed, Announced(seen)));
  };
  for (;;) {
    // Keep the announcements; the swap that succeeds withdraws this
    // thread's own.
    const uint64_t desired =
        ((expected & ~kNameMask) - (announced ? kAnnounceOne : 0)) | mine;
    GASP_ASSIGN_OR_RETURN(uint64_t old,
                          Atomic(OpType::kCompareSwap, lock, home, expected, desired));
    if (old == expected) return TailName(old);
    StatAdd(Counter::kLockRetries);
    ++*failed;
    if (absl::Now() >= deadline) return give_up(old);
    if (announced) {
      expected = old;
      continue;
    }
    if (Announced(old) == 0 || waited) {
      GASP_ASSIGN_OR_RETURN(old, Atomic(OpType::kFetchAdd, lock, home, 0, kAnnounceOne));
      announced = true;
      expected = old + kAnnounceOne;
      continue;
    }
    // Threads that announced before this one failed go first.
    while (Announced(old) != 0) {
      if (absl::Now() >= deadline) return give_up(old);
      pauser.Pause(nullptr, deadline);
      GASP_ASSIGN_OR_RETURN(old, Atomic(OpType::kFetchAdd, lock, home, 0, 0));
    }
    waited = true;
    expected = old;
  }
}

absl::Status QueueLocks::Lock(uint64_t lock, int home, bool* handed_over, uint64_t* passed) {
  const absl::Time start = absl::Now();
  *handed_over = false;
  if (FindHeld(instance_, lock) != t_held.end()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "global lock %#x is already held by this thread (locks are not recursive)", lock));
  }
  GASP_ASSIGN_OR_RETURN(const uint32_t index, TakeNode(lock));
  const uint64_t mine = NodeName({rank_, index});
  QueueNode* n = Local(index);
  TailGuess& guess = GuessFor(lock);
  uint64_t failed = 0;
  absl::StatusOr<uint64_t> swapped =
      Swap(lock, home, mine,
           guess.instance == instance_ && guess.lock == lock ? guess.tail : kNoNode,
           start + timeout_, &failed);
  if (!swapped.ok()) {
    // A swap whose reply was lost may have queued the node: never reuse it.
    Word(&n->state)->store(kNodeAbandoned, std::memory_order_release);
    return swapped.status();
  }
  const uint64_t pred = *swapped;
  guess = {instance_, lock, pred};
  if (pred != kNoNode) {
    // From here on the node is in the queue: if this thread gives up, it
    // stays there, marked abandoned.
    auto abandon = [&](absl::Status s) {
      Word(&n->state)->store(kNodeAbandoned, std::memory_order_release);
      return s;
    };
    Word(&n->pred)->store(pred, std::memory_order_release);
    NodeId ahead;
    if (!DecodeNodeName(pred, nranks_, nodes_per_rank_, &ahead)) {
      return abandon(absl::DataLossError(absl::StrFormat(
          "global lock %#x held %#x, which names no queue node (not a lock word, or its memory "
          "was overwritten)",
          lock, pred)));
    }
    // Link behind the predecessor; wait for its hand-off meanwhile (the
    // WRITE may wait for a stopped rank: the wait below warns about it).
    uint64_t link_buf = 0;
    CompletionCounter link;
    absl::Status s =
        WriteNodeWord(ahead, offsetof(QueueNode, next), mine, &link_buf, &link);
    if (!s.ok()) {
      return abandon(Annotate(s, absl::StrFormat("global lock %#x: queueing behind %s", lock,
                                                 describe_rank_(ahead.rank))));
    }
    s = AwaitWord(Word(&n->grant), &link,
                  absl::StrFormat("waiting for global lock %#x", lock),
                  [&] { return DescribeWait(lock, pred); }, start);
    if (s.ok() && !link.done()) {
      // The predecessor saw the link (it handed over); its ACK may lag.
      s = transport_->Wait(&link, absl::Now() + timeout_);
    }
    if (!s.ok()) {
      if (!link.done()) transport_->Abandon(&link);
      return abandon(s);
    }
    StatAdd(Counter::kLockHandoffs);
    *handed_over = true;
    *passed = GrantValue(Word(&n->grant)->load(std::memory_order_acquire));
  }
  Word(&n->state)->store(kNodeHolding, std::memory_order_release);
  t_held.push_back({instance_, lock, index, failed});
  return absl::OkStatus();
}

absl::StatusOr<bool> QueueLocks::TryLock(uint64_t lock, int home) {
  if (FindHeld(instance_, lock) != t_held.end()) return false;
  GASP_ASSIGN_OR_RETURN(const uint32_t index, TakeNode(lock));
  absl::StatusOr<uint64_t> old =
      Atomic(OpType::kCompareSwap, lock, home, kNoNode, NodeName({rank_, index}));
  if (!old.ok() || *old != kNoNode) {
    ReturnNode(index);  // never in a queue
    if (!old.ok()) return old.status();
    return false;
  }
  Word(&Local(index)->state)->store(kNodeHolding, std::memory_order_release);
  t_held.push_back({instance_, lock, index, 0});
  return true;
}

absl::Status QueueLocks::CheckHolder(uint64_t lock, int home) {
  if (FindHeld(instance_, lock) != t_held.end()) return absl::OkStatus();
  const std::string what = absl::StrFormat(
      "unlock of global lock %#x by thread %d of rank %d, which does not hold it", lock,
      ThreadId(), rank_);
  GASP_ASSIGN_OR_RETURN(const uint64_t word, Atomic(OpType::kFetchAdd, lock, home, 0, 0));
  const uint64_t tail = TailName(word);
  if (tail == kNoNode) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": it is not held"));
  }
  const std::vector<Hop> hops = Walk(lock, tail);
  if (!hops.empty() && hops.back().answered && hops.back().node.lock == lock &&
      hops.back().node.state == kNodeHolding) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": it is held by ", Who(hops.back())));
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "%s: it is held by another thread (the holder could not be read; the queue's tail is %s)",
      what, hops.empty() ? absl::StrFormat("%#x", tail) : Who(hops.front())));
}

absl::Status QueueLocks::Unlock(uint64_t lock, int home, uint64_t pass) {
  auto held = FindHeld(instance_, lock);
  if (held == t_held.end()) return CheckHolder(lock, home);
  const uint32_t index = held->index;
  t_held.erase(held);
  QueueNode* n = Local(index);
  const uint64_t mine = NodeName({rank_, index});
  uint64_t next = Word(&n->next)->load(std::memory_order_acquire);
  if (next == kNoNode) {
    // Free the word's tail unless a thread swapped itself in behind this
    // one; announcements stay.
    uint64_t expected = mine, tail = kNoNode;
    for (;;) {
      GASP_ASSIGN_OR_RETURN(const uint64_t old, Atomic(OpType::kCompareSwap, lock, home, expected,
                                                       expected & ~kNameMask));
      if (old == expected) {  // nobody behind: the lock is free
        ReturnNode(index);
        return absl::OkStatus();
      }
      if (TailName(old) != mine) {
        tail = TailName(old);
        break;
      }
      expected = old;  // only the announcements changed
    }
    // A thread has swapped itself in behind this one: wait for its link.
    GASP_RETURN_IF_ERROR(AwaitWord(
        Word(&n->next), nullptr,
        absl::StrFormat("waiting in the unlock of global lock %#x for the next waiter to link "
                        "itself",
                        lock),
        [&] {
          NodeId t;
          return absl::StrCat("the queue's tail is ",
                              DecodeNodeName(tail, nranks_, nodes_per_rank_, &t)
                                  ? Who(Hop{t, false, {}})
                                  : absl::StrFormat("%#x", tail));
        },
        absl::Now()));
    next = Word(&n->next)->load(std::memory_order_acquire);
  }
  NodeId successor;
  if (!DecodeNodeName(next, nranks_, nodes_per_rank_, &successor)) {
    return absl::DataLossError(absl::StrFormat(
        "global lock %#x: the next waiter's link %#x names no queue node (memory of the node "
        "pool was overwritten)",
        lock, next));
  }
  Grant& g = grants_[index];
  g.to = successor;
  g.counter.emplace();
  absl::Status s =
      WriteNodeWord(successor, offsetof(QueueNode, grant), GrantWord(pass), &g.value, &*g.counter);
  if (!s.ok()) {
    g.counter.reset();  // nothing was posted
    return Annotate(s, absl::StrFormat("global lock %#x: handing over to %s", lock,
                                       describe_rank_(successor.rank)));
  }
  ReturnNode(index);
  return absl::OkStatus();
}

bool QueueLocks::HeldBy(uint64_t lock, Hold* hold) const {
  auto held = FindHeld(instance_, lock);
  if (held == t_held.end()) return false;
  hold->node = NodeName({rank_, held->index});
  hold->pred = Word(&Local(held->index)->pred)->load(std::memory_order_acquire);
  hold->failed_swaps = held->failed_swaps;
  return true;
}

QueueLocks::Hop QueueLocks::Read(NodeId id) {
  Hop hop;
  hop.id = id;
  if (id.rank == rank_) {
    uint64_t* from = reinterpret_cast<uint64_t*>(Local(id.index));
    uint64_t* to = reinterpret_cast<uint64_t*>(&hop.node);
    for (size_t i = 0; i < sizeof(QueueNode) / 8; ++i) {
      to[i] = Word(from + i)->load(std::memory_order_acquire);
    }
    hop.answered = true;
    return hop;
  }
  Op op = coherence_->HomeOp(OpType::kRead, id.rank, NodeAddress(id));
  op.local = &hop.node;
  op.length = sizeof(QueueNode);
  hop.answered = transport_->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + kProbeAnswer).ok();
  return hop;
}

std::vector<QueueLocks::Hop> QueueLocks::Walk(uint64_t lock, uint64_t name) {
  std::vector<Hop> hops;
  NodeId id;
  while (hops.size() < kMaxHops && DecodeNodeName(name, nranks_, nodes_per_rank_, &id)) {
    hops.push_back(Read(id));
    const Hop& h = hops.back();
    if (!h.answered || h.node.lock != lock || h.node.state != kNodeWaiting) break;
    name = h.node.pred;
  }
  return hops;
}

std::string QueueLocks::Who(const Hop& hop) const {
  if (hop.id.rank == rank_) {
    return hop.answered ? absl::StrFormat("thread %d of this rank", hop.node.tid)
                        : std::string("a thread of this rank");
  }
  std::string who = describe_rank_(hop.id.rank);
  if (hop.answered) absl::StrAppendFormat(&who, " thread %d", hop.node.tid);
  return who;
}

std::string QueueLocks::DescribeWait(uint64_t lock, uint64_t pred) {
  const std::vector<Hop> hops = Walk(lock, pred);
  if (hops.empty()) return absl::StrFormat("queued behind %#x, which names no queue node", pred);
  std::string out = absl::StrCat("queued behind ", Who(hops.front()));
  // The pred alone: ", which <fate>"; further ahead: "; <who> (k ahead) <fate>".
  const Hop& last = hops.back();
  if (hops.size() == 1) {
    out += ", which";
  } else {
    absl::StrAppendFormat(&out, ", which waits too; %s (%d ahead)", Who(last), hops.size());
  }
  if (!last.answered) {
    out += " does not answer (stopped, hung in the kernel, or its host is down)";
  } else if (last.node.lock != lock || last.node.state == kNodeFree) {
    out += " moved on while the queue was read";
  } else if (last.node.state == kNodeHolding) {
    out += " holds it and answers";
  } else if (last.node.state == kNodeAbandoned) {
    out += " gave up waiting (GASP_TIMEOUT): the lock cannot be handed past it";
  } else {
    out += " waits too";
  }
  return out;
}

}  // namespace consistency
}  // namespace gasp

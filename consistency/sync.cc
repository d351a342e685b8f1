#include "consistency/sync.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <random>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/status.h"

namespace gasp {
namespace consistency {

using transport::Op;
using transport::OpType;

Sync::Sync(Coherence* coherence, transport::Transport* transport, int rank, int nranks,
           absl::Duration timeout, std::function<std::string(int)> describe_rank)
    : coherence_(coherence),
      transport_(transport),
      rank_(rank),
      nranks_(nranks),
      timeout_(timeout),
      describe_rank_(std::move(describe_rank)),
      delivered_(std::max(nranks, 0), 0) {}

absl::Status Sync::CheckWord(uint64_t addr, int* home) const {
  if (addr % 8 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("global atomic/lock word %#x is not 8-byte aligned", addr));
  }
  *home = coherence_->HomeForAtomic(addr);
  if (*home < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "global atomic/lock word %#x is not inside an allocation of the global range", addr));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Sync::Atomic(OpType type, uint64_t addr, uint64_t compare,
                                      uint64_t operand) {
  int home;
  GASP_RETURN_IF_ERROR(CheckWord(addr, &home));
  uint64_t old = 0;
  Op op = coherence_->HomeOp(type, home, addr);
  op.local = &old;
  op.compare = compare;
  op.operand = operand;
  StatAdd(Counter::kAtomics);
  absl::Status s = transport_->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + timeout_);
  if (!s.ok()) return Annotate(s, absl::StrFormat("atomic on %#x at %s", addr, describe_rank_(home)));
  return old;
}

absl::StatusOr<uint64_t> Sync::FetchAdd(uint64_t addr, uint64_t value, Ordering order) {
  if (order.release) GASP_RETURN_IF_ERROR(Release());
  GASP_ASSIGN_OR_RETURN(uint64_t old, Atomic(OpType::kFetchAdd, addr, 0, value));
  if (order.acquire) GASP_RETURN_IF_ERROR(Acquire());
  return old;
}

absl::StatusOr<uint64_t> Sync::CompareSwap(uint64_t addr, uint64_t expected, uint64_t desired,
                                           Ordering order) {
  if (order.release) GASP_RETURN_IF_ERROR(Release());
  GASP_ASSIGN_OR_RETURN(uint64_t old, Atomic(OpType::kCompareSwap, addr, expected, desired));
  if (order.acquire && old == expected) GASP_RETURN_IF_ERROR(Acquire());
  return old;
}

absl::StatusOr<uint64_t> Sync::Load(uint64_t addr, Ordering order) {
  // FETCH_ADD of zero reads the word atomically with respect to other atomics.
  GASP_ASSIGN_OR_RETURN(uint64_t v, Atomic(OpType::kFetchAdd, addr, 0, 0));
  if (order.acquire) GASP_RETURN_IF_ERROR(Acquire());
  return v;
}

absl::Status Sync::Store(uint64_t addr, uint64_t value, Ordering order) {
  if (order.release) GASP_RETURN_IF_ERROR(Release());
  uint64_t seen = 0;
  for (;;) {  // swap by CAS: atomic with respect to concurrent atomics
    GASP_ASSIGN_OR_RETURN(uint64_t old, Atomic(OpType::kCompareSwap, addr, seen, value));
    if (old == seen) break;
    seen = old;
  }
  if (order.acquire) GASP_RETURN_IF_ERROR(Acquire());
  return absl::OkStatus();
}

namespace {

// A lock word names its holder: rank + 1 in the low half, the holding
// thread's id in the high half, so that threads of one rank exclude each
// other too, and a thread locking twice is told so.
uint64_t Holder(int rank) {
  static thread_local const uint64_t tid = static_cast<uint64_t>(syscall(SYS_gettid));
  return (tid << 32) | (static_cast<uint64_t>(rank) + 1);
}

int HolderRank(uint64_t word) { return static_cast<int>(word & 0xffffffffu) - 1; }

}  // namespace

void Sync::SetLockNodes(uint64_t addr, uint64_t stride, uint32_t nodes_per_rank) {
  queue_ = std::make_unique<QueueLocks>(coherence_, transport_, rank_, nranks_, addr, stride,
                                        nodes_per_rank, timeout_, describe_rank_);
}

absl::StatusOr<int> Sync::LockHome(uint64_t word_addr) const {
  int home;
  GASP_RETURN_IF_ERROR(CheckWord(word_addr, &home));
  if (queue_ == nullptr) return absl::FailedPreconditionError("global locks before SetLockNodes");
  return home;
}

absl::Status Sync::Lock(uint64_t word_addr) {
  const absl::Time start = absl::Now();
  GASP_ASSIGN_OR_RETURN(const int home, LockHome(word_addr));
  bool handed_over = false;
  uint64_t known_tail = 0;
  GASP_RETURN_IF_ERROR(queue_->Lock(word_addr, home, &handed_over, &known_tail));
  StatAdd(Counter::kLockAcquires);
  StatAdd(Counter::kLockWaitNs, absl::ToInt64Nanoseconds(absl::Now() - start));
  // A hand-off carries the releaser's notice-log tail: no FETCH_ADD.
  return handed_over ? AcquireTo(known_tail) : Acquire();
}

absl::StatusOr<bool> Sync::TryLock(uint64_t word_addr) {
  GASP_ASSIGN_OR_RETURN(const int home, LockHome(word_addr));
  GASP_ASSIGN_OR_RETURN(const bool taken, queue_->TryLock(word_addr, home));
  if (!taken) return false;
  StatAdd(Counter::kLockAcquires);
  GASP_RETURN_IF_ERROR(Acquire());
  return true;
}

absl::Status Sync::Unlock(uint64_t word_addr) {
  GASP_ASSIGN_OR_RETURN(const int home, LockHome(word_addr));
  GASP_RETURN_IF_ERROR(queue_->CheckHolder(word_addr, home));
  // Release before the hand-off: the next holder's acquire must find this
  // holder's notices in the log, up to the tail passed with the lock.
  GASP_ASSIGN_OR_RETURN(const uint64_t known_tail, ReleaseForHandOff());
  return queue_->Unlock(word_addr, home, known_tail);
}

absl::Status Sync::LockTestAndSet(uint64_t word_addr) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout_;
  const uint64_t mine = Holder(rank_);
  absl::Duration backoff = absl::Microseconds(2);
  std::minstd_rand jitter(static_cast<unsigned>(rank_ * 7919 + 17));
  // One warning per wait, after GASP_TIMEOUT/6 (at least 10 s), naming the
  // holder and whether it still answers.
  absl::Time warn_at = start + std::max(timeout_ / 6, absl::Seconds(10));
  for (;;) {
    GASP_ASSIGN_OR_RETURN(uint64_t old, Atomic(OpType::kCompareSwap, word_addr, 0, mine));
    if (old == 0) break;
    if (old == mine) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "global lock %#x is already held by this thread (locks are not recursive)", word_addr));
    }
    StatAdd(Counter::kLockRetries);
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "global lock %#x still held by %s after GASP_TIMEOUT=%s", word_addr,
          DescribeHolder(HolderRank(old)), absl::FormatDuration(timeout_)));
    }
    if (now >= warn_at) {
      warn_at = absl::InfiniteFuture();
      GASP_LOG(Warn) << absl::StrFormat(
          "still waiting for global lock %#x for %s: held by %s", word_addr,
          absl::FormatDuration(absl::Trunc(now - start, absl::Seconds(1))),
          DescribeHolder(HolderRank(old)));
    }
    // Randomized exponential backoff keeps contending ranks from hammering
    // the home with CAS.
    absl::SleepFor(backoff * (0.5 + (jitter() % 1000) / 1000.0));
    backoff = std::min(backoff * 2, absl::Milliseconds(1));
  }
  StatAdd(Counter::kLockAcquires);
  StatAdd(Counter::kLockWaitNs, absl::ToInt64Nanoseconds(absl::Now() - start));
  return Acquire();
}

absl::Status Sync::UnlockTestAndSet(uint64_t word_addr) {
  GASP_RETURN_IF_ERROR(Release());
  const uint64_t mine = Holder(rank_);
  GASP_ASSIGN_OR_RETURN(uint64_t old, Atomic(OpType::kCompareSwap, word_addr, mine, 0));
  if (old != mine) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "unlock of global lock %#x by rank %d, but it is %s", word_addr, rank_,
        old == 0 ? std::string("not held")
        : HolderRank(old) == rank_
            ? std::string("held by another thread of this rank")
            : absl::StrCat("held by ", describe_rank_(HolderRank(old)))));
  }
  return absl::OkStatus();
}

absl::Status Sync::BarrierOnly() {
  std::vector<Contribution> known(1);
  known[0].origin = rank_;
  return Exchange(&known);
}

absl::Status Sync::Exchange(std::vector<Contribution>* known) {
  const uint64_t epoch = ++epoch_;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout_;
  NoteArrival(epoch);
  last_missing_.clear();
  std::vector<bool> have(nranks_, false);
  for (const Contribution& c : *known) have[c.origin] = true;
  for (int dist = 1; dist < nranks_; dist <<= 1) {
    const int to = (rank_ + dist) % nranks_;
    const int from = (rank_ - dist + nranks_) % nranks_;
    // Everything heard so far goes on, so after ceil(log2 n) rounds every
    // rank has every contribution.
    BarrierMessage out;
    out.epoch = epoch;
    out.distance = static_cast<uint32_t>(dist);
    out.stamp = stamp_;
    out.contributions = *known;
    const std::vector<uint8_t> payload = EncodeBarrierMessage(out);
    // The message is formatted only on failure: a round is a few
    // microseconds, formatting a rank's description is not free.
    if (absl::Status sent = transport_->Send(to, kBarrierTag, payload); !sent.ok()) {
      return Annotate(sent, absl::StrFormat("barrier %d: notifying %s", epoch, describe_rank_(to)));
    }
    absl::StatusOr<transport::Message> m = RecvRound(from, epoch, start, deadline);
    if (!m.ok()) {
      if (absl::IsDeadlineExceeded(m.status())) {
        std::string missing = MissingRanks(epoch);
        if (missing.empty()) missing = last_missing_;
        return absl::DeadlineExceededError(absl::StrFormat(
            "barrier %d: no barrier message from %s within GASP_TIMEOUT=%s%s", epoch,
            describe_rank_(from), absl::FormatDuration(timeout_),
            missing.empty() ? "" : absl::StrCat(": ", missing)));
      }
      return Annotate(m.status(), absl::StrFormat("barrier %d: waiting for %s", epoch,
                                                  describe_rank_(from)));
    }
    absl::StatusOr<BarrierMessage> in =
        DecodeBarrierMessage(m->payload, nranks_, coherence_->num_pages());
    if (!in.ok()) {
      return absl::DataLossError(absl::StrFormat("barrier %d: malformed message from %s: %s",
                                                 epoch, describe_rank_(from),
                                                 in.status().message()));
    }
    GASP_RETURN_IF_ERROR(CompareStamps(stamp_, in->stamp, rank_, describe_rank_(from)));
    if (in->epoch != epoch || in->distance != static_cast<uint32_t>(dist)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "barrier mismatch: this rank is at barrier %d, %s at barrier %d (every rank must call "
          "the same collectives in the same order)",
          epoch, describe_rank_(from), in->epoch));
    }
    for (Contribution& c : in->contributions) {
      if (have[c.origin]) continue;
      have[c.origin] = true;
      known->push_back(std::move(c));
    }
  }
  StatAdd(Counter::kBarriers);
  StatAdd(Counter::kBarrierWaitNs, absl::ToInt64Nanoseconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> Sync::AllgatherU64(uint64_t mine) {
  const uint64_t epoch = ++allgather_epoch_;
  const absl::Time deadline = absl::Now() + timeout_;
  std::vector<uint64_t> all(nranks_, 0);
  all[rank_] = mine;
  std::vector<uint8_t> payload(16);
  std::memcpy(payload.data(), &epoch, 8);
  std::memcpy(payload.data() + 8, &mine, 8);
  AppendStamp(stamp_, &payload);
  for (int r = 0; r < nranks_; ++r) {
    if (r == rank_) continue;
    if (absl::Status sent = transport_->Send(r, kAllgatherTag, payload); !sent.ok()) {
      return Annotate(sent, absl::StrFormat("allgather %d: sending to %s", epoch, describe_rank_(r)));
    }
  }
  for (int r = 0; r < nranks_; ++r) {
    if (r == rank_) continue;
    absl::StatusOr<transport::Message> m = transport_->Recv(kAllgatherTag, r, deadline);
    if (!m.ok()) {
      return Annotate(m.status(), absl::StrFormat("allgather %d: waiting for %s (GASP_TIMEOUT=%s)",
                                                  epoch, describe_rank_(r),
                                                  absl::FormatDuration(timeout_)));
    }
    uint64_t their_epoch = 0;
    CollectiveStamp theirs;
    absl::StatusOr<size_t> stamp_bytes =
        m->payload.size() < 16 ? absl::InvalidArgumentError("truncated")
                               : DecodeStamp(absl::MakeConstSpan(m->payload).subspan(16), &theirs);
    if (!stamp_bytes.ok() || 16 + *stamp_bytes != m->payload.size()) {
      return absl::DataLossError(absl::StrFormat("allgather %d: malformed message from %s",
                                                 epoch, describe_rank_(r)));
    }
    GASP_RETURN_IF_ERROR(CompareStamps(stamp_, theirs, rank_, describe_rank_(r)));
    std::memcpy(&their_epoch, m->payload.data(), 8);
    if (their_epoch != epoch) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "collective mismatch: this rank is at collective allocation %d, %s at %d (every rank "
          "must make the same collective calls in the same order)",
          epoch, describe_rank_(r), their_epoch));
    }
    std::memcpy(&all[r], m->payload.data() + 8, 8);
  }
  return all;
}

void Sync::SetNoticeLog(uint64_t addr, uint64_t entries) {
  std::lock_guard<std::mutex> lock(notice_mu_);
  log_ = std::make_unique<NoticeLog>(coherence_, transport_, rank_, nranks_, addr, entries,
                                     timeout_, describe_rank_);
}

absl::Status Sync::Release() { return ReleaseForHandOff().status(); }

absl::StatusOr<uint64_t> Sync::ReleaseForHandOff() {
  std::lock_guard<std::mutex> lock(notice_mu_);
  GASP_RETURN_IF_ERROR(coherence_->Release());
  if (log_ == nullptr) return 0;
  GASP_RETURN_IF_ERROR(PublishLocked());
  return log_->known_tail();
}

absl::Status Sync::PublishLocked(bool take_own) {
  std::vector<Contribution> all(1);
  all[0].origin = rank_;
  if (take_own) {
    GASP_RETURN_IF_ERROR(
        coherence_->TakeNotices(Coherence::NoticeSet::kSincePublished, &all[0].runs));
  }
  for (const Outgoing& o : outbox_) all.push_back(o.notices);
  GASP_RETURN_IF_ERROR(log_->Publish(all));
  outbox_.clear();
  return absl::OkStatus();
}

size_t Sync::OutboxRunsLocked() const {
  size_t n = 0;
  for (const Outgoing& o : outbox_) n += o.notices.runs.size();
  return n;
}

absl::Status Sync::ReleaseForCall(int to_rank, std::vector<Contribution>* carry, uint64_t* upto) {
  if (to_rank < 0 || to_rank >= nranks_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a shipped call to rank %d: not a rank of this job (0..%d)", to_rank, nranks_ - 1));
  }
  std::lock_guard<std::mutex> lock(notice_mu_);
  carry->clear();
  *upto = 0;
  GASP_RETURN_IF_ERROR(coherence_->Release());
  if (log_ == nullptr) return absl::OkStatus();
  Contribution own{rank_, {}, {}};
  GASP_RETURN_IF_ERROR(coherence_->TakeNotices(Coherence::NoticeSet::kSincePublished, &own.runs));
  if (!own.runs.empty()) outbox_.push_back({next_seq_++, rank_, std::move(own)});
  // Too many for a call: the log takes them all (this rank's own are
  // already in the outbox).
  if (OutboxRunsLocked() > kMaxCarriedRuns) return PublishLocked(/*take_own=*/false);
  for (const Outgoing& o : outbox_) {
    if (o.seq <= delivered_[to_rank] || o.from == to_rank || o.notices.origin == to_rank) continue;
    Contribution* into = nullptr;
    for (Contribution& c : *carry) {
      if (c.origin == o.notices.origin) into = &c;
    }
    if (into == nullptr) {
      carry->push_back({o.notices.origin, {}, {}});
      into = &carry->back();
    }
    into->runs.insert(into->runs.end(), o.notices.runs.begin(), o.notices.runs.end());
  }
  uint64_t pages = 0;
  for (Contribution& c : *carry) {
    MergeRuns(&c.runs);
    for (const PageRun& r : c.runs) pages += r.count;
  }
  StatAdd(Counter::kNoticesCarried, pages);
  *upto = next_seq_ - 1;
  return absl::OkStatus();
}

void Sync::Delivered(int to_rank, uint64_t upto) {
  std::lock_guard<std::mutex> lock(notice_mu_);
  if (to_rank < 0 || to_rank >= nranks_ || upto == 0) return;
  delivered_[to_rank] = std::max(delivered_[to_rank], upto);
}

absl::Status Sync::ReceiveCarried(int from_rank, absl::Span<const Contribution> carried,
                                  absl::Span<const PageRun> current) {
  std::lock_guard<std::mutex> lock(notice_mu_);
  std::vector<PageRun> stale;
  uint64_t pages = 0;
  for (const Contribution& c : carried) {
    if (c.origin == rank_) continue;  // this rank's own writes: nothing is stale here
    for (const PageRun& r : c.runs) pages += r.count;
    SubtractRuns(c.runs, current, &stale);
    if (log_ != nullptr) outbox_.push_back({next_seq_++, from_rank, c});
  }
  StatAdd(Counter::kNoticesReceived, pages);
  // The call's references were acquired by the call; a copy of any other
  // page the sender (or a rank before it) wrote is stale.
  MergeRuns(&stale);
  GASP_RETURN_IF_ERROR(coherence_->AcquireRuns(stale, /*may_refresh=*/false));
  // Bounded: past what one call may carry, the log takes them.
  if (log_ != nullptr && OutboxRunsLocked() > kMaxCarriedRuns) return PublishLocked();
  return absl::OkStatus();
}

absl::Status Sync::Acquire() {
  std::lock_guard<std::mutex> lock(notice_mu_);
  if (log_ == nullptr) return coherence_->Acquire();
  return log_->Collect();
}

absl::Status Sync::AcquireTo(uint64_t known_tail) {
  std::lock_guard<std::mutex> lock(notice_mu_);
  if (log_ == nullptr) return coherence_->Acquire();
  return log_->CollectTo(known_tail);
}

absl::Status Sync::Barrier() { return BarrierReduce({}, ReduceOp::kSum, nullptr); }

namespace {

// out[k] = values of rank 0, then each next rank combined in, in rank order.
absl::Status Combine(const std::vector<Contribution>& known, size_t n, Sync::ReduceOp op,
                     double* out, const std::function<std::string(int)>& describe) {
  std::vector<const Contribution*> by_rank(known.size(), nullptr);
  for (const Contribution& c : known) {
    if (c.origin >= 0 && static_cast<size_t>(c.origin) < by_rank.size()) by_rank[c.origin] = &c;
  }
  for (size_t r = 0; r < by_rank.size(); ++r) {
    if (by_rank[r] == nullptr || by_rank[r]->values.size() != n) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "Allreduce: %s contributed %d values where this rank contributed %d (every rank must "
          "pass the same count)",
          describe(static_cast<int>(r)), by_rank[r] == nullptr ? 0 : by_rank[r]->values.size(),
          n));
    }
  }
  for (size_t k = 0; k < n; ++k) {
    double v = by_rank[0]->values[k];
    for (size_t r = 1; r < by_rank.size(); ++r) {
      const double x = by_rank[r]->values[k];
      switch (op) {
        case Sync::ReduceOp::kSum: v += x; break;
        case Sync::ReduceOp::kMin: v = std::min(v, x); break;
        case Sync::ReduceOp::kMax: v = std::max(v, x); break;
      }
    }
    out[k] = v;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Sync::BarrierReduce(absl::Span<const double> values, ReduceOp op, double* out) {
  return BarrierAcquire(values, op, out, /*may_refresh=*/true);
}

absl::Status Sync::FinalBarrier() {
  return BarrierAcquire({}, ReduceOp::kSum, nullptr, /*may_refresh=*/false);
}

absl::Status Sync::BarrierAcquire(absl::Span<const double> values, ReduceOp op, double* out,
                                  bool may_refresh) {
  if (values.size() > kMaxReduceValues) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Allreduce of %d values: at most %d per call", values.size(), kMaxReduceValues));
  }
  // Write dirty pages home and take the notices since the last barrier.
  // The since-publication set is neither published nor cleared here: the
  // next lock or atomic release of this rank publishes it before it frees
  // anything, which is all a lock hand-off during or after this barrier
  // needs; barrier-only codes never touch the log. The lock is not held
  // during the rounds: other threads may take and free locks meanwhile.
  std::vector<Contribution> known(1);
  known[0].origin = rank_;
  known[0].values.assign(values.begin(), values.end());
  {
    std::lock_guard<std::mutex> lock(notice_mu_);
    GASP_RETURN_IF_ERROR(coherence_->Release());
    GASP_RETURN_IF_ERROR(
        coherence_->TakeNotices(Coherence::NoticeSet::kSinceBarrier, &known[0].runs));
  }
  uint64_t pages = 0;
  for (const PageRun& r : known[0].runs) pages += r.count;
  StatAdd(Counter::kNoticesSent, pages);
  GASP_RETURN_IF_ERROR(Exchange(&known));
  if (out != nullptr) {
    GASP_RETURN_IF_ERROR(Combine(known, values.size(), op, out, describe_rank_));
  }
  std::vector<PageRun> stale;
  pages = 0;
  for (const Contribution& c : known) {
    if (c.origin == rank_) continue;
    stale.insert(stale.end(), c.runs.begin(), c.runs.end());
    for (const PageRun& r : c.runs) pages += r.count;
  }
  StatAdd(Counter::kNoticesReceived, pages);
  std::lock_guard<std::mutex> lock(notice_mu_);
  return coherence_->AcquireRuns(stale, may_refresh);
}

}  // namespace consistency
}  // namespace gasp

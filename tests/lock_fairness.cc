// Global locks under contention: every thread of every rank takes one lock
// `count` times back to back, then the same on `locks` locks (thread g of
// the job on lock g % locks). Under its lock, each acquisition increments
// the lock's counter and appends {rank, thread, its queue node, the node it
// queued behind} to the lock's sequence (a global array). After a barrier
// every rank checks:
//   * exact: each counter equals its acquisitions, the sequence is full;
//   * FIFO: each acquisition that queued behind a node directly follows
//     that node's acquisition (the lock went to the waiters in the order
//     they queued: the order of the tail swaps);
//   * nobody kept out of the queue: no acquisition's swap failed more
//     than 3 x (the lock's threads) + 2 COMPARE_SWAPs (the bound of the
//     announcement at the door, docs/protocol.md "Locks"; without it a
//     thread whose round trip outlasted the others' turns failed hundreds
//     of times and fell behind: 3-17 of 100 when the first had finished);
//   * no starvation: the longest wait is at most 25x the mean + 100 ms
//     (loose: a loaded host's hiccups show there). How far the other
//     threads were when the first finished and the slowest/fastest mean
//     wait are printed, not checked: they depend on the scheduler when
//     threads outnumber cores (a thread off its core is not queued).
// FIFO and the door's bound hold for any timing: a thread that sleeps
// between acquisitions loses turns, but no thread is overtaken once it has
// queued, nor kept from queueing.
//
//   lock_fairness [count=100] [threads=4] [locks=3] [tas]
//
// Exits 0 and prints "verified" only if every check holds.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"

namespace {

struct Entry {
  uint32_t rank;
  uint32_t thread;
  uint64_t node;    // queue-node name of the holder (0 for test-and-set)
  uint64_t pred;    // the node it queued behind (0: it found the lock free)
  uint64_t failed;  // COMPARE_SWAPs of its swap that failed (0 for test-and-set)
};

// Per thread, written by the thread's rank, read by every rank after a barrier.
struct Waits {
  double sum_us;
  double max_us;
};

bool g_tas = false;

void Lock(gasp::GlobalLock& l, Entry* e) {
  const uint64_t addr = reinterpret_cast<uint64_t>(l.word());
  auto* sync = gasp::internal::GetSync();
  e->node = e->pred = e->failed = 0;
  if (g_tas) {
    if (!sync->LockTestAndSet(addr).ok()) gasp::Abort(1, "test-and-set lock failed");
    return;
  }
  l.lock();
  gasp::consistency::QueueLocks::Hold hold;
  if (!sync->queue_locks()->HeldBy(addr, &hold)) {
    gasp::Abort(1, "lock_fairness: the lock is not held after lock()");
  }
  e->node = hold.node;
  e->pred = hold.pred;
  e->failed = hold.failed_swaps;
}

void Unlock(gasp::GlobalLock& l) {
  if (!g_tas) return l.unlock();
  if (!gasp::internal::GetSync()->UnlockTestAndSet(reinterpret_cast<uint64_t>(l.word())).ok()) {
    gasp::Abort(1, "test-and-set unlock failed");
  }
}

// Checks lock `l`'s sequence; appends what failed to `why`. `who(r, t)`:
// does thread t of rank r use this lock.
template <typename Uses>
void Check(int l, const Entry* seq, uint64_t counter, const Waits* waits, int n, int threads,
           int count, Uses uses, std::string* why, std::string* summary) {
  std::vector<int> done(static_cast<size_t>(n) * threads, 0);
  int users = 0;
  for (int r = 0; r < n; ++r) {
    for (int t = 0; t < threads; ++t) users += uses(r, t);
  }
  if (users == 0) return;
  const uint64_t total = static_cast<uint64_t>(users) * count;
  char buf[512];
  if (counter != total) {
    std::snprintf(buf, sizeof(buf), "lock %d: counter %lu, expected %lu; ", l,
                  static_cast<unsigned long>(counter), static_cast<unsigned long>(total));
    *why += buf;
    return;
  }
  int chained = 0, min_others = count, first_done = -1;
  uint64_t most_failed = 0;
  const uint64_t door_bound = 3 * static_cast<uint64_t>(users) + 2;
  for (uint64_t i = 0; i < total; ++i) {
    const Entry& e = seq[i];
    most_failed = std::max(most_failed, e.failed);
    if (e.failed > door_bound) {
      std::snprintf(buf, sizeof(buf),
                    "lock %d: acquisition %lu (rank %u thread %u) failed %lu COMPARE_SWAPs "
                    "before it queued, more than 3 x %d threads + 2: kept out at the door; ",
                    l, static_cast<unsigned long>(i), e.rank, e.thread,
                    static_cast<unsigned long>(e.failed), users);
      *why += buf;
      return;
    }
    if (e.rank >= static_cast<uint32_t>(n) || e.thread >= static_cast<uint32_t>(threads) ||
        !uses(e.rank, e.thread)) {
      std::snprintf(buf, sizeof(buf), "lock %d: entry %lu names rank %u thread %u; ", l,
                    static_cast<unsigned long>(i), e.rank, e.thread);
      *why += buf;
      return;
    }
    if (e.pred != 0) {
      ++chained;
      if (i == 0 || e.pred != seq[i - 1].node) {
        std::snprintf(buf, sizeof(buf),
                      "lock %d: acquisition %lu (rank %u thread %u) queued behind node %#lx but "
                      "follows node %#lx (rank %u thread %u): not FIFO; ",
                      l, static_cast<unsigned long>(i), e.rank, e.thread,
                      static_cast<unsigned long>(e.pred),
                      static_cast<unsigned long>(i == 0 ? 0 : seq[i - 1].node),
                      i == 0 ? 0 : seq[i - 1].rank, i == 0 ? 0 : seq[i - 1].thread);
        *why += buf;
        return;
      }
    }
    if (++done[e.rank * threads + e.thread] == count && first_done < 0) {
      first_done = static_cast<int>(i);
      for (int r = 0; r < n; ++r) {
        for (int t = 0; t < threads; ++t) {
          if (uses(r, t)) min_others = std::min(min_others, done[r * threads + t]);
        }
      }
    }
  }
  double sum = 0, worst = 0, fast = 1e300, slow = 0;
  for (int r = 0; r < n; ++r) {
    for (int t = 0; t < threads; ++t) {
      if (!uses(r, t)) continue;
      const Waits& w = waits[r * threads + t];
      sum += w.sum_us;
      worst = std::max(worst, w.max_us);
      fast = std::min(fast, w.sum_us / count);
      slow = std::max(slow, w.sum_us / count);
    }
  }
  const double mean = sum / static_cast<double>(total);
  std::snprintf(buf, sizeof(buf),
                "lock %d: %lu acquisitions by %d threads, %d hand-offs in queue order, at most "
                "%lu failed swaps (bound %lu), others at >= %d of %d when the first finished, "
                "mean wait %.0f us, max %.0f us (%.1fx), slowest/fastest thread %.2f; ",
                l, static_cast<unsigned long>(total), users, chained,
                static_cast<unsigned long>(most_failed), static_cast<unsigned long>(door_bound),
                min_others, count, mean, worst, worst / mean, slow / fast);
  *summary += buf;
  // How far behind the others were when the first thread finished, and
  // the slowest thread's mean wait against the fastest's, are printed, not
  // checked: with more threads than cores a thread the scheduler leaves
  // off its core between two acquisitions is not queued, and the others
  // rightly pass it. Once queued, nobody is overtaken (the FIFO check),
  // and a thread that tries is let in (the door's bound), for any timing.
  // (A thread at 6 of 50 in tools/test, 16 threads on 2 cores, was one
  // whose swap kept failing, before the announcement at the door.)
  // Loose: one scheduling hiccup of a loaded host shows in the longest
  // wait; a waiter passed over again and again shows far beyond it.
  if (worst > 25 * mean + 100e3) {
    std::snprintf(buf, sizeof(buf), "lock %d: a wait of %.0f us, %.0fx the mean: starvation; ", l,
                  worst, worst / mean);
    *why += buf;
  }

}

}  // namespace

int main(int argc, char** argv) {
  gasp::Runtime rt = gasp::Init(&argc, &argv).value();
  const int count = argc > 1 ? std::atoi(argv[1]) : 100;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  const int nlocks = argc > 3 ? std::atoi(argv[3]) : 3;
  g_tas = argc > 4 && std::strcmp(argv[4], "tas") == 0;
  const int me = rt.rank(), n = rt.size();
  if (count < 3 || threads < 1 || nlocks < 1) {
    std::fprintf(stderr, "lock_fairness: count >= 3, threads >= 1, locks >= 1\n");
    return 2;
  }
  const int kPhases = 2;  // one lock; then nlocks locks
  const int max_locks = 1 + nlocks;
  const uint64_t capacity = static_cast<uint64_t>(n) * threads * count;
  // Counters on one page homed at the last rank; sequences and waits spread.
  uint64_t* counters = gasp::CoNewArray<uint64_t>(max_locks, gasp::Placement::OnRank(n - 1));
  Entry* seq = gasp::CoNewArray<Entry>(capacity * max_locks);
  Waits* waits = gasp::CoNewArray<Waits>(static_cast<size_t>(kPhases) * n * threads);
  std::vector<gasp::GlobalLock> locks;
  for (int l = 0; l < max_locks; ++l) locks.push_back(gasp::CoNewLock());

  std::string why, summary;
  for (int phase = 0; phase < kPhases; ++phase) {
    const int first_lock = phase == 0 ? 0 : 1;
    const int phase_locks = phase == 0 ? 1 : nlocks;
    auto lock_of = [&](int r, int t) { return first_lock + (r * threads + t) % phase_locks; };
    gasp::Barrier();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.push_back(gasp::StartThread([&, t] {
        const int l = lock_of(me, t);
        Waits w{0, 0};
        for (int i = 0; i < count; ++i) {
          Entry e;
          const auto t0 = std::chrono::steady_clock::now();
          Lock(locks[l], &e);
          const double us =
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                  .count();
          e.rank = static_cast<uint32_t>(me);
          e.thread = static_cast<uint32_t>(t);
          seq[capacity * l + counters[l]] = e;
          counters[l] += 1;
          Unlock(locks[l]);
          w.sum_us += us;
          w.max_us = std::max(w.max_us, us);
        }
        waits[(static_cast<size_t>(phase) * n + me) * threads + t] = w;
      }));
    }
    for (auto& th : pool) th.join();
    gasp::Barrier();
    for (int l = first_lock; l < first_lock + phase_locks; ++l) {
      Check(l, seq + capacity * l, counters[l], waits + static_cast<size_t>(phase) * n * threads,
            n, threads, count, [&](int r, int t) { return lock_of(r, t) == l; }, &why,
            &summary);
    }
  }
  const bool ok = why.empty();
  if (me == 0 || !ok) {
    std::printf("rank %d: %d ranks x %d threads x %d acquisitions (%s): %s%s\n", me, n, threads,
                count, g_tas ? "test-and-set" : "queue", summary.c_str(), ok ? "" : why.c_str());
  }
  std::printf("rank %d: %s\n", me, ok ? "verified" : "FAILED");
  const int rc = rt.Finalize();
  return ok ? rc : 1;
}

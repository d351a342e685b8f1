// Global locks in COMPARE_SWAP round trips, the queue lock (MCS, what
// gasp::GlobalLock is) beside the test-and-set lock of earlier releases
// (Sync::LockTestAndSet, kept for this comparison), in one run:
//
//   rtt           a COMPARE_SWAP round trip at rank 0 to a word homed at
//                 rank 1 (the other ranks idle): half the median of two
//                 back to back (see Measure); the median of one alone is
//                 printed too
//   uncontended   median lock+unlock at rank 0 of a lock homed at rank 1,
//                 interleaved with the rtt samples; / rtt (goal: <= 2) and
//                 / one CAS alone
//   hand-off      every thread of every rank takes one lock (homed at rank
//                 1) `acquisitions` times back to back with an empty
//                 critical section: wall time / all acquisitions; / rtt
//                 (goal: <= 3) and / one CAS alone; failed COMPARE_SWAPs
//                 per acquisition (test-and-set: attempts on a held lock;
//                 queue: swaps whose guess of the tail was wrong)
//   wait          lock() times of those acquisitions over every thread:
//                 max / mean, and the slowest thread's mean / the fastest
//                 thread's (1 = no thread favoured)
//
//   gasprun -np N bazel-bin/benchmarks/lock_bench [iterations=500]
//       [acquisitions=200] [threads=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "benchmarks/echo.h"
#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"
#include "transport/transport.h"

namespace {

using Clock = std::chrono::steady_clock;

enum class Kind { kTestAndSet, kQueue };

void Lock(Kind kind, uint64_t* word) {
  if (kind == Kind::kQueue) {
    gasp::GlobalLock(word).lock();
  } else if (!gasp::internal::GetSync()->LockTestAndSet(reinterpret_cast<uint64_t>(word)).ok()) {
    gasp::Abort(1, "lock_bench: test-and-set lock failed");
  }
}

void Unlock(Kind kind, uint64_t* word) {
  if (kind == Kind::kQueue) {
    gasp::GlobalLock(word).unlock();
  } else if (!gasp::internal::GetSync()->UnlockTestAndSet(reinterpret_cast<uint64_t>(word)).ok()) {
    gasp::Abort(1, "lock_bench: test-and-set unlock failed");
  }
}

// Rank 0: medians of two COMPARE_SWAPs back to back to `cas_word` (homed
// at rank 1), and of lock+unlock of each kind, interleaved so that the
// machine's drift touches every row alike. A lock+unlock is two operations
// back to back too: the tcp round trip is bimodal on loaded hosts, and a
// pair catches its slow mode about as often as a lock+unlock does.
struct Uncontended {
  double one_cas = 0;       // median of the first CAS of each pair
  double two_cas = 0;       // median of the pairs
  double lock_unlock[2] = {0, 0};
};

Uncontended Measure(uint64_t* cas_word, uint64_t* const lock_word[2], int iters) {
  uint64_t old = 0;
  gasp::transport::Op op = gasp::internal::GetCoherence()->HomeOp(
      gasp::transport::OpType::kCompareSwap, 1, reinterpret_cast<uint64_t>(cas_word));
  op.local = &old;
  auto cas = [&] {
    if (!gasp::internal::GetTransport()
             ->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + absl::Seconds(30))
             .ok()) {
      gasp::Abort(1, "lock_bench: COMPARE_SWAP failed");
    }
  };
  auto us = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
  };
  std::vector<double> one, two, lu[2];
  for (int i = 0; i < iters + gasp::bench::kWarmup; ++i) {
    const auto t0 = Clock::now();
    cas();
    const auto t1 = Clock::now();
    cas();
    const auto t2 = Clock::now();
    double kind_us[2];
    for (Kind kind : {Kind::kTestAndSet, Kind::kQueue}) {
      uint64_t* w = lock_word[static_cast<int>(kind)];
      const auto l0 = Clock::now();
      Lock(kind, w);
      Unlock(kind, w);
      kind_us[static_cast<int>(kind)] = us(l0, Clock::now());
    }
    if (i < gasp::bench::kWarmup) continue;
    one.push_back(us(t0, t1));
    two.push_back(us(t0, t2));
    for (int k = 0; k < 2; ++k) lu[k].push_back(kind_us[k]);
  }
  Uncontended u;
  u.one_cas = gasp::bench::Median(one);
  u.two_cas = gasp::bench::Median(two);
  for (int k = 0; k < 2; ++k) u.lock_unlock[k] = gasp::bench::Median(lu[k]);
  return u;
}

// This rank's failed COMPARE_SWAPs on lock words so far (counter
// lock_retries: test-and-set attempts that found the lock held; swaps of
// the queue lock that found another tail than they guessed).
double FailedSwaps() {
  for (const auto& [name, value] : gasp::Stats()) {
    if (name == "lock_retries") return static_cast<double>(value);
  }
  return 0;
}

struct Contended {
  double failed_cas = 0;       // failed COMPARE_SWAPs per acquisition
  double handoff_us = 0;       // wall time / acquisitions
  double max_over_mean = 0;    // max wait / mean wait, over every acquisition
  double slow_over_fast = 0;   // slowest thread's mean wait / fastest thread's
};

// Every thread of every rank takes the lock `count` times; collective.
Contended Hammer(Kind kind, uint64_t* word, int count, int threads) {
  std::vector<double> sum(threads, 0), max(threads, 0);
  gasp::Barrier();
  const double failed_before = FailedSwaps();
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.push_back(gasp::StartThread([&, t] {
      for (int i = 0; i < count; ++i) {
        const auto w0 = Clock::now();
        Lock(kind, word);
        const double waited = std::chrono::duration<double, std::micro>(Clock::now() - w0).count();
        Unlock(kind, word);
        sum[t] += waited;
        max[t] = std::max(max[t], waited);
      }
    }));
  }
  for (auto& th : pool) th.join();
  gasp::Barrier();
  const double wall = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  double waited = 0, worst = 0, fast = 1e300, slow = 0;
  for (int t = 0; t < threads; ++t) {
    waited += sum[t];
    worst = std::max(worst, max[t]);
    fast = std::min(fast, sum[t] / count);
    slow = std::max(slow, sum[t] / count);
  }
  const double acquisitions = static_cast<double>(gasp::Size()) * threads * count;
  Contended c;
  c.failed_cas = gasp::Allreduce(FailedSwaps() - failed_before) / acquisitions;
  c.handoff_us = wall / acquisitions;
  c.max_over_mean = gasp::Allreduce(worst, gasp::ReduceOp::kMax) /
                    (gasp::Allreduce(waited) / acquisitions);
  c.slow_over_fast = gasp::Allreduce(slow, gasp::ReduceOp::kMax) /
                     gasp::Allreduce(fast, gasp::ReduceOp::kMin);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  gasp::Runtime rt = gasp::Init(&argc, &argv).value();
  const int iters = argc > 1 ? std::atoi(argv[1]) : 500;
  const int count = argc > 2 ? std::atoi(argv[2]) : 200;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  const int me = rt.rank(), n = rt.size();
  if (n < 2 || iters < 1 || count < 1 || threads < 1) {
    if (me == 0) std::fprintf(stderr, "lock_bench: needs 2 ranks and positive counts\n");
    (void)rt.Finalize();
    return 2;
  }
  // Lock words and the CAS target on one page homed at rank 1, a cache
  // line apart.
  auto* words = static_cast<uint64_t*>(gasp::CoAlloc(4096, gasp::Placement::OnRank(1)));
  uint64_t* cas_word = words;
  uint64_t* lock_word[2] = {words + 8, words + 16};  // test-and-set, queue
  gasp::Barrier();
  Uncontended u;
  if (me == 0) u = Measure(cas_word, lock_word, iters);
  Contended contended[2];
  for (Kind kind : {Kind::kTestAndSet, Kind::kQueue}) {
    contended[static_cast<int>(kind)] = Hammer(kind, lock_word[static_cast<int>(kind)], count, threads);
  }
  if (me == 0) {
    // One round trip: half a pair of COMPARE_SWAPs (see Measure).
    const double rtt = u.two_cas / 2;
    std::printf("# lock_bench: %d ranks x %d threads, transport %s, %d iterations, %d "
                "acquisitions per thread, times in us\n",
                n, threads, gasp::internal::GetTransport()->name().c_str(), iters, count);
    std::printf(" %-38s %12s %12s\n", "row", "test-and-set", "queue (MCS)");
    std::printf(" %-38s %12.2f\n", "COMPARE_SWAP, one alone (median)", u.one_cas);
    std::printf(" %-38s %12.2f\n", "round trip (rtt): two back to back / 2", rtt);
    std::printf(" %-38s %12.2f %12.2f\n", "uncontended lock+unlock", u.lock_unlock[0],
                u.lock_unlock[1]);
    std::printf(" %-38s %12.2f %12.2f\n", "  / rtt", u.lock_unlock[0] / rtt,
                u.lock_unlock[1] / rtt);
    std::printf(" %-38s %12.2f %12.2f\n", "  / one COMPARE_SWAP alone",
                u.lock_unlock[0] / u.one_cas, u.lock_unlock[1] / u.one_cas);
    std::printf(" %-38s %12.2f %12.2f\n", "contended hand-off", contended[0].handoff_us,
                contended[1].handoff_us);
    std::printf(" %-38s %12.2f %12.2f\n", "  / rtt", contended[0].handoff_us / rtt,
                contended[1].handoff_us / rtt);
    std::printf(" %-38s %12.2f %12.2f\n", "  / one COMPARE_SWAP alone",
                contended[0].handoff_us / u.one_cas, contended[1].handoff_us / u.one_cas);
    std::printf(" %-38s %12.2f %12.2f\n", "  failed COMPARE_SWAPs per acquisition",
                contended[0].failed_cas, contended[1].failed_cas);
    std::printf(" %-38s %12.2f %12.2f\n", "max wait / mean wait", contended[0].max_over_mean,
                contended[1].max_over_mean);
    std::printf(" %-38s %12.2f %12.2f\n", "slowest thread / fastest (mean wait)",
                contended[0].slow_over_fast, contended[1].slow_over_fast);
  }
  return rt.Finalize();
}

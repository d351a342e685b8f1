// Shared harness of the NPB-style application kernels (ep, cg, mg, ft).
//
// Every kernel runs three versions of one computation and checks them
// against each other:
//   1. serial (rank 0 only, timed),
//   2. OpenMP with T = number of ranks threads (rank 0 only, timed),
//   3. gasp: every rank computes its part on gasp::CoNewArray memory with
//      plain loads and stores, synchronized by gasp::Barrier (timed between
//      barriers, allocation and initialization excluded).
// Rank 0 then compares the gasp and OpenMP results with the serial one and
// prints one line:
//   <kernel> <params> ranks=R serial_s=.. omp_s=.. gasp_s=.. gasp/serial=..x
//       omp/serial=..x mops_serial=.. mops_omp=.. mops_gasp=.. verified|MISMATCH
// Ratios are speedups (serial time / version time: above 1 is faster).
// While rank 0 runs the serial and OpenMP versions the other ranks sleep
// (RankZeroSignal), so they neither take its cores nor hit GASP_TIMEOUT.
// APPS_STATS=1 also prints rank 0's gasp::StatsReport() (taken right after
// the timed region, before verification reads the whole result).
#ifndef GASP_BENCHMARKS_APPS_APPS_COMMON_H_
#define GASP_BENCHMARKS_APPS_APPS_COMMON_H_

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gasp/gasp.h"

namespace apps {

inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Positional argument `index` (argv[index]) as a positive integer, or
// `fallback` when absent. A malformed value ends the process: a benchmark
// silently run at the default size would be misleading.
inline int64_t ArgOr(int argc, char** argv, int index, int64_t fallback) {
  if (index >= argc) return fallback;
  char* end = nullptr;
  const int64_t v = std::strtoll(argv[index], &end, 10);
  if (end == argv[index] || *end != '\0' || v <= 0) {
    std::fprintf(stderr, "argument %d: expected a positive integer, got '%s'\n", index,
                 argv[index]);
    std::exit(2);
  }
  return v;
}

// Deterministic 64-bit mixer (SplitMix64's finalizer): a counter-based
// generator, so any rank or thread can produce the value of any index.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform double in [0, 1) from a hash value (53 random bits).
inline double ToUnit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

struct Range {
  size_t lo = 0;
  size_t hi = 0;
  size_t size() const { return hi - lo; }
};

// Part `part` of `count` items split into `parts` contiguous, nearly equal
// pieces (the OpenMP and serial versions' partition).
inline Range EvenRange(size_t count, int part, int parts) {
  return {count * part / parts, count * (part + 1) / parts};
}

// The items of an array (`count` items `stride` bytes apart from `base`)
// whose first byte is homed at this rank. With Placement::Block these are
// contiguous, so each rank writes only home pages (no twins, no diffs, no
// write faults). Derived from gasp::HomeOf rather than recomputed from the
// placement rule, so a change of the rule costs speed, not correctness.
inline Range HomeRange(const void* base, size_t count, size_t stride) {
  const char* p = static_cast<const char*>(base);
  const int me = gasp::Rank();
  size_t lo = count, hi = count;
  for (size_t i = 0; i < count; ++i) {
    if (gasp::HomeOf(p + i * stride) == me) {
      lo = i;
      break;
    }
  }
  for (hi = lo; hi < count && gasp::HomeOf(p + hi * stride) == me; ++hi) {
  }
  for (size_t i = hi; i < count; ++i) {
    if (gasp::HomeOf(p + i * stride) == me) {
      gasp::Abort(1, "HomeRange: this rank's items are not contiguous (use Placement::Block)");
    }
  }
  if (lo == count) lo = hi = 0;  // no item homed here (tiny sizes): an empty part
  return {lo, hi};
}

// Cross-rank sum of a few doubles, added in rank order on every rank (the
// same bits everywhere). A Barrier as well.
class Reducer {
 public:
  static constexpr int kMaxValues = 256;

  // Collective.
  static Reducer Create() { return Reducer(); }

  // out[k] = sum over ranks of mine[k], k < count: gasp::Allreduce, which
  // carries the values in its barrier's messages. Collective.
  void Sum(const double* mine, double* out, int count) {
    if (count > kMaxValues) gasp::Abort(1, "Reducer::Sum: too many values");
    for (int k = 0; k < count; k += static_cast<int>(gasp::kMaxAllreduceValues)) {
      const size_t n = std::min<size_t>(gasp::kMaxAllreduceValues, static_cast<size_t>(count - k));
      gasp::Allreduce(mine + k, out + k, n);
    }
  }

  double Sum(double mine) { return gasp::Allreduce(mine); }
};

// A value rank 0 posts and the other ranks wait for, e.g. "the reference
// results are ready" while rank 0 runs the serial and OpenMP versions, or
// rank 0's verdict while it verifies. Those may take longer than
// GASP_TIMEOUT bounds a Barrier, so the others poll a word homed at rank 0
// with sleeps in between (which also keeps them off the cores rank 0 is
// timing on) instead of waiting in a Barrier.
class RankZeroSignal {
 public:
  // Collective.
  static RankZeroSignal Create() {
    RankZeroSignal s;
    s.word_ = gasp::CoNewArray<uint64_t>(1, gasp::Placement::OnRank(0));
    return s;
  }
  // Rank 0. REQUIRES: value != 0.
  void Post(uint64_t value) { gasp::AtomicStore(word_, value, std::memory_order_release); }
  // Other ranks: the posted value.
  uint64_t Wait() {
    uint64_t v;
    while ((v = gasp::AtomicLoad(word_, std::memory_order_acquire)) == 0) usleep(20 * 1000);
    return v;
  }

 private:
  uint64_t* word_ = nullptr;
};

// Signals of every kernel's main: `ready` after rank 0's reference runs,
// `verdict` after its verification.
struct Signals {
  RankZeroSignal ready;
  RankZeroSignal verdict;

  // Collective.
  static Signals Create() { return {RankZeroSignal::Create(), RankZeroSignal::Create()}; }

  // Rank 0 posts its verdict, the others receive it, so that every rank
  // exits with the same status.
  bool ShareVerdict(bool ok_on_rank0) {
    if (gasp::Rank() == 0) {
      verdict.Post(ok_on_rank0 ? 1 : 2);
      return ok_on_rank0;
    }
    return verdict.Wait() == 1;
  }
};

// Relative difference for reductions (sums whose order of operations
// differs between versions).
inline bool CloseRel(double got, double want, double tol = 1e-10) {
  if (got == want) return true;
  return std::fabs(got - want) <= tol * std::max(std::fabs(want), 1e-300);
}

// Largest |a[i] - b[i]| (0 when bitwise equal except for signed zeros).
template <typename GetA, typename GetB>
double MaxAbsDiff(size_t n, GetA a, GetB b) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(a(i) - b(i));
    if (!(d <= m)) m = d;  // also catches NaN
  }
  return m;
}

struct Timings {
  double serial_s = 0;
  double omp_s = 0;
  double gasp_s = 0;
  double ops = 0;  // operations of one run, for Mop/s
};

inline void PrintResult(const char* kernel, const std::string& params, const Timings& t, bool ok) {
  auto ratio = [&](double s) { return s > 0 ? t.serial_s / s : 0.0; };
  auto mops = [&](double s) { return s > 0 ? t.ops / s / 1e6 : 0.0; };
  std::printf(
      "%s %s ranks=%d serial_s=%.4f omp_s=%.4f gasp_s=%.4f gasp/serial=%.2fx omp/serial=%.2fx "
      "mops_serial=%.1f mops_omp=%.1f mops_gasp=%.1f %s\n",
      kernel, params.c_str(), gasp::Size(), t.serial_s, t.omp_s, t.gasp_s, ratio(t.gasp_s),
      ratio(t.omp_s), mops(t.serial_s), mops(t.omp_s), mops(t.gasp_s),
      ok ? "verified" : "MISMATCH");
  std::fflush(stdout);
}

// Rank 0's counters when APPS_STATS=1 (counted from Init: they include the
// initialization of the gasp version, not its verification).
inline void MaybePrintStats(const char* kernel) {
  const char* v = std::getenv("APPS_STATS");
  if (gasp::Rank() != 0 || v == nullptr || std::strcmp(v, "1") != 0) return;
  std::printf("%s stats rank 0:\n%s", kernel, gasp::StatsReport().c_str());
  std::fflush(stdout);
}

// Runs fn() `threads`-way under OpenMP with a fixed team size: fn(t, T)
// gets the thread's index and the team size it must partition by. The
// static schedule over exactly `threads` chunks keeps the partition (and so
// the bits of chunked reductions) independent of the team OpenMP grants.
template <typename Fn>
void OmpChunks(int threads, Fn fn) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int t = 0; t < threads; ++t) fn(t, threads);
}

}  // namespace apps

#endif  // GASP_BENCHMARKS_APPS_APPS_COMMON_H_

// What the consistency protocol costs, with the yardstick measured in the
// same run (docs/benchmarks.md, "Consistency v2"):
//
//   barrier    a barrier with an empty cache, then with kCleanPages clean
//              cached pages that nobody writes: write notices keep them
//              valid, so the two should be close (ratio printed)
//   table      an iterative kernel that re-reads a read-only table homed at
//              other ranks after every barrier: pages fetched per iteration
//              (the first iteration fetches the table, later ones nothing)
//   release    releasing 64 dirty pages where `x[i] += small` changed most
//              bytes of every double but not the sign and exponent bytes
//              (hundreds of byte runs per page), against releasing 64 pages
//              whose every byte changed (one run each): ratio printed
//   lock       lock+unlock by rank 0, without writes and with one store to a
//              page homed at another rank (release + notice publication)
//
//   gasprun -np 2 bazel-bin/benchmarks/consistency_bench [iterations]
// Every rank takes part; rank 0 prints.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "base/stats.h"
#include "gasp/gasp.h"

namespace {

using Clock = std::chrono::steady_clock;

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Row(const char* name, double median_us, size_t n) {
  std::printf(" %-52s %12.2f %8zu\n", name, median_us, n);
}

constexpr size_t kCleanPages = 16384;
constexpr size_t kTablePages = 1024;
constexpr size_t kReleasePages = 64;

// Median barrier latency over `iters` barriers (every rank).
double BarrierMedian(int iters) {
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    auto t0 = Clock::now();
    gasp::Barrier();
    t.push_back(Us(Clock::now() - t0));
  }
  return Median(t);
}

// Reads one byte of each of `pages` pages at `p`.
long Touch(const char* p, size_t pages) {
  long sum = 0;
  for (size_t i = 0; i < pages; ++i) sum += p[i * 4096];
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 200;
  const int me = rt->rank(), n = rt->size();
  const int next = (me + 1) % n;
  if (me == 0) {
    std::printf("# consistency_bench: %d ranks, %d iterations\n", n, iters);
    std::printf(" %-52s %12s %8s\n", "operation", "median_us", "n");
  }
  long check = 0;
  // BENCH_ONLY=release runs only the release loop (for profiling).
  const char* only = std::getenv("BENCH_ONLY");
  const bool all = only == nullptr;

  // 1. Barrier: empty cache, then kCleanPages clean cached pages.
  char* clean = static_cast<char*>(gasp::CoAlloc(kCleanPages * 4096 * n, gasp::Placement::Block()));
  const double empty_us = all ? BarrierMedian(iters) : 1;
  if (all) check += Touch(clean + kCleanPages * 4096 * next, kCleanPages);  // homed at the next rank
  gasp::Barrier();
  const double cached_us = all ? BarrierMedian(iters) : 1;
  if (me == 0 && all) {
    Row("barrier, empty cache", empty_us, iters);
    Row("barrier, 16384 clean cached pages", cached_us, iters);
    std::printf(" ratio cached / empty barrier (medians): %.2f\n", cached_us / empty_us);
  }

  // 2. A read-only table re-read after every barrier.
  char* table = static_cast<char*>(gasp::CoAlloc(kTablePages * 4096 * n, gasp::Placement::Block()));
  if (me == 0 && all) std::printf(" read-only table of %zu remote pages, re-read after each barrier:\n", kTablePages);
  gasp::Barrier();
  for (int it = 0; it < (all ? 4 : 0); ++it) {
    const uint64_t before = gasp::StatGet(gasp::Counter::kPagesFetched);
    check += Touch(table + kTablePages * 4096 * next, kTablePages);
    const uint64_t fetched = gasp::StatGet(gasp::Counter::kPagesFetched) - before;
    gasp::Barrier();
    if (me == 0) std::printf("   iteration %d: %lu pages fetched\n", it, (unsigned long)fetched);
  }

  // 3. Release of 64 pages of doubles: x[i] += small vs every byte changed.
  double* x = gasp::CoNewArray<double>(kReleasePages * 512 * n, gasp::Placement::Block());
  double* mine = x + kReleasePages * 512 * next;  // homed at the next rank
  for (size_t i = 0; i < kReleasePages * 512; ++i) mine[i] = 1.0 + i;
  gasp::Release();
  std::vector<double> small, full;
  uint64_t runs_small = 0, runs_full = 0;
  for (int it = 0; it < iters / 4 + 1; ++it) {
    check += Touch(reinterpret_cast<char*>(mine), kReleasePages);  // clean cached copies
    for (size_t i = 0; i < kReleasePages * 512; ++i) mine[i] += 1e-3;
    uint64_t r0 = gasp::StatGet(gasp::Counter::kDiffRuns);
    auto t0 = Clock::now();
    gasp::Release();
    small.push_back(Us(Clock::now() - t0));
    runs_small += gasp::StatGet(gasp::Counter::kDiffRuns) - r0;
    for (size_t i = 0; i < kReleasePages * 512; ++i) {
      uint64_t bits;
      std::memcpy(&bits, &mine[i], 8);
      bits = ~bits;  // every byte differs from the released value
      std::memcpy(&mine[i], &bits, 8);
    }
    r0 = gasp::StatGet(gasp::Counter::kDiffRuns);
    t0 = Clock::now();
    gasp::Release();
    full.push_back(Us(Clock::now() - t0));
    runs_full += gasp::StatGet(gasp::Counter::kDiffRuns) - r0;
    for (size_t i = 0; i < kReleasePages * 512; ++i) mine[i] = 1.0 + i;
    gasp::Release();
  }
  if (me == 0) {
    const double ms = Median(small), mf = Median(full);
    Row("release 64 pages, x[i] += 1e-3 (doubles)", ms, small.size());
    Row("release 64 pages, every byte changed", mf, full.size());
    std::printf(" ratio small-change / full-change release (medians): %.2f; runs per release "
                "%.0f vs %.0f\n",
                ms / mf, double(runs_small) / small.size(), double(runs_full) / full.size());
  }
  gasp::Barrier();

  // 4. Lock hand-off on rank 0 (the others wait): a lock homed at another
  //    rank, without writes and with one store to a page homed elsewhere.
  uint64_t* word = gasp::CoNewArray<uint64_t>(512, gasp::Placement::OnRank(n - 1));
  gasp::GlobalLock lock(word + 256);  // homed at the last rank, as the data
  if (me == 0 && all) {
    std::vector<double> alone, written;
    for (int i = 0; i < iters; ++i) {
      auto t0 = Clock::now();
      lock.lock();
      lock.unlock();
      alone.push_back(Us(Clock::now() - t0));
    }
    for (int i = 0; i < iters; ++i) {
      auto t0 = Clock::now();
      lock.lock();
      word[0] += 1;
      lock.unlock();
      written.push_back(Us(Clock::now() - t0));
    }
    Row("lock+unlock, nothing written", Median(alone), alone.size());
    Row("lock + one store to a remote page + unlock", Median(written), written.size());
  }
  gasp::Barrier();
  if (check == 42) std::printf(" \n");
  return rt->Finalize();
}

// Home placement against the program's ownership pattern, side by side in
// one run (docs/benchmarks.md, "Placement"):
//
//   for each ownership pattern of an array of kPagesPerRank pages per rank
//     contiguous    rank r writes the r-th contiguous share (what block
//                   placement assumes)
//     interleaved   rank r writes the pages i with i % n == r (what block
//                   placement gets wrong, and cyclic(1) right)
//   and each policy (block, first touch), on a fresh allocation:
//     init          every owner writes each of its pages once, then a
//                   barrier (first touch: the claims happen here)
//     iteration     every owner updates one double in eight of its pages,
//                   then a barrier; median of `iterations`
//
//   gasprun -np 2 bazel-bin/benchmarks/placement_bench [iterations]
// Every rank takes part; rank 0 prints.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/stats.h"
#include "gasp/gasp.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kPagesPerRank = 512;
constexpr size_t kDoubles = 512;  // per page

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Result {
  double init_us = 0, iter_us = 0;
  uint64_t remote_ops = 0;  // rank 0, iterations only
};

bool Owns(bool interleaved, size_t page, size_t pages, int me, int n) {
  if (interleaved) return static_cast<int>(page % n) == me;
  return static_cast<int>(page / (pages / n)) == me;
}

Result Run(bool interleaved, gasp::Placement placement, int iterations, int me, int n) {
  const size_t pages = kPagesPerRank * n;
  double* a = static_cast<double*>(gasp::CoAlloc(pages * 4096, placement));
  gasp::Barrier();
  Result r;
  auto t0 = Clock::now();
  for (size_t p = 0; p < pages; ++p) {
    if (!Owns(interleaved, p, pages, me, n)) continue;
    for (size_t k = 0; k < kDoubles; ++k) a[p * kDoubles + k] = static_cast<double>(p + k);
  }
  gasp::Barrier();
  r.init_us = Us(Clock::now() - t0);
  const uint64_t ops0 = gasp::StatGet(gasp::Counter::kRemoteOps);
  std::vector<double> t;
  for (int it = 0; it < iterations; ++it) {
    auto t1 = Clock::now();
    for (size_t p = 0; p < pages; ++p) {
      if (!Owns(interleaved, p, pages, me, n)) continue;
      for (size_t k = 0; k < kDoubles; k += 8) a[p * kDoubles + k] += 1.0;
    }
    gasp::Barrier();
    t.push_back(Us(Clock::now() - t1));
  }
  r.iter_us = Median(t);
  r.remote_ops = gasp::StatGet(gasp::Counter::kRemoteOps) - ops0;
  // Check: every value is its initial one plus `iterations`.
  long bad = 0;
  for (size_t p = 0; p < pages; ++p) {
    for (size_t k = 0; k < kDoubles; k += 8) {
      if (a[p * kDoubles + k] != static_cast<double>(p + k + iterations)) ++bad;
    }
  }
  if (bad != 0) {
    std::fprintf(stderr, "rank %d: placement_bench: %ld wrong values\n", me, bad);
    std::exit(1);
  }
  gasp::Barrier();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 20;
  const int me = rt->rank(), n = rt->size();
  if (me == 0) {
    std::printf("# placement_bench: %d ranks, %zu pages per rank, %d iterations (verified)\n", n,
                kPagesPerRank, iterations);
    std::printf(" %-12s %-12s %12s %14s %16s\n", "ownership", "policy", "init us",
                "iteration us", "remote ops/iter");
  }
  for (bool interleaved : {false, true}) {
    const Result block = Run(interleaved, gasp::Placement::Block(), iterations, me, n);
    const Result touch = Run(interleaved, gasp::Placement::FirstTouch(), iterations, me, n);
    if (me != 0) continue;
    const char* own = interleaved ? "interleaved" : "contiguous";
    for (const auto& [name, r] : {std::pair<const char*, const Result&>{"block", block},
                                  {"first touch", touch}}) {
      std::printf(" %-12s %-12s %12.0f %14.1f %16.1f\n", own, name, r.init_us, r.iter_us,
                  static_cast<double>(r.remote_ops) / iterations);
    }
    std::printf(" %-12s first touch / block: init %.2f, iteration %.2f\n", own,
                touch.init_us / block.init_us, touch.iter_us / block.iter_us);
  }
  return rt->Finalize();
}

// Barrier latency in message round trips, in one run (issue "fast paths",
// part 3: a barrier within 2 log2(N) round trips). The barrier is a
// dissemination barrier (consistency/sync.cc): ceil(log2 N) rounds of one
// message each way, write notices riding in the same messages.
//
//   rtt       median message echo between rank 0 and rank 1 (8 B, the
//             transport's Send/Recv), measured while the other ranks wait
//   barrier   median gasp::Barrier() at rank 0, nothing written (empty
//             notices), and with every rank dirtying one page per barrier
//   ratio     barrier / (ceil(log2 N) * rtt); the goal is <= 2
//
//   gasprun -np N bazel-bin/benchmarks/barrier_bench [iterations]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/time/clock.h"
#include "benchmarks/echo.h"
#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"
#include "transport/transport.h"

namespace {

// Rank 0: median 8 B echo with rank 1; rank 1 echoes; the others wait.
double EchoRtt(int me, int iters) {
  auto* tr = gasp::internal::GetTransport();
  if (me == 1) gasp::bench::Echo(tr);
  if (me != 0) return 0;
  const double rtt = gasp::bench::MessageRtt(tr, 8, iters);
  gasp::bench::StopEcho(tr);
  return rtt;
}

// Median barrier at this rank; `dirty`: each rank writes one word of its
// own page first, so every barrier carries notices and a diff.
double BarrierUs(int iters, uint64_t* own_page, bool dirty) {
  using Clock = std::chrono::steady_clock;
  std::vector<double> t;
  for (int i = 0; i < iters + gasp::bench::kWarmup; ++i) {
    if (dirty) *own_page = static_cast<uint64_t>(i);  // the write fault stays outside the timer
    const auto t0 = Clock::now();
    gasp::Barrier();
    if (i >= gasp::bench::kWarmup) {
      t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  return gasp::bench::Median(t);
}

}  // namespace

int main(int argc, char** argv) {
  gasp::Result<gasp::Runtime> rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", rt.status().message().c_str());
    return 1;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int me = rt->rank(), n = rt->size();
  if (n < 2 || iters < 1) {
    if (me == 0) std::fprintf(stderr, "barrier_bench: needs 2 ranks and iterations >= 1\n");
    (void)rt->Finalize();
    return 2;
  }
  // One page per rank, homed at the next rank: a write there is a remote
  // diff and a notice.
  auto* pages = static_cast<uint64_t*>(gasp::CoAlloc(4096 * n, gasp::Placement::Cyclic(1)));
  uint64_t* own = pages + 512 * ((me + n - 1) % n);
  gasp::Barrier();
  const double rtt = EchoRtt(me, iters);
  gasp::Barrier();
  const double clean = BarrierUs(iters, own, false);
  const double dirty = BarrierUs(iters, own, true);
  if (me == 0) {
    int rounds = 0;
    while ((1 << rounds) < n) ++rounds;
    std::printf("# barrier_bench: %d ranks, %d rounds, transport %s, %d iterations, medians in "
                "us\n",
                n, rounds, gasp::internal::GetTransport()->name().c_str(), iters);
    std::printf(" %-34s %10s %10s\n", "row", "median", "/ (rounds x rtt)");
    std::printf(" %-34s %10.2f\n", "message echo rank 0 <-> 1 (rtt)", rtt);
    std::printf(" %-34s %10.2f %10.2f\n", "barrier, nothing written", clean,
                clean / (rounds * rtt));
    std::printf(" %-34s %10.2f %10.2f\n", "barrier, one dirty page per rank", dirty,
                dirty / (rounds * rtt));
  }
  return rt->Finalize();
}

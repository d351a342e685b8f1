// The smallest program that lost updates with several application threads
// per rank: thread t of every rank increments counter t under lock t, the
// counters of all locks share one page, and that page is homed on the last
// rank (remote for every other rank). While one thread of a rank holds the
// page dirty for its counter, another thread of the rank acquires its lock
// and must see the other ranks' released increments of its own counter on
// that same page. Every counter must end at exactly ranks x `iters`; a lost
// update shows as a smaller value.
//
//   lock_counters [iters=500] [threads=2] [stride=1]
//
// Exits 0 and prints "verified" only if every counter is exact.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "gasp/gasp.h"

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 500;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  // Words between counters (1: neighbours in one page; 512: a page each).
  const int stride = argc > 3 ? std::atoi(argv[3]) : 1;
  const int me = rt->rank(), n = rt->size();
  // One page, homed on the last rank: the counters of different locks are
  // neighbours in that page.
  uint64_t* counters = gasp::CoNewArray<uint64_t>(threads * stride, gasp::Placement::OnRank(n - 1));
  std::vector<gasp::GlobalLock> locks;
  for (int i = 0; i < threads; ++i) locks.push_back(gasp::CoNewLock());

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.push_back(gasp::StartThread([&, t] {
      for (int i = 0; i < iters; ++i) {
        std::lock_guard<gasp::GlobalLock> guard(locks[t]);
        counters[t * stride] += 1;
      }
    }));
  }
  for (auto& th : pool) th.join();
  gasp::Barrier();

  long lost = 0;
  const uint64_t want = static_cast<uint64_t>(n) * iters;
  for (int t = 0; t < threads; ++t) {
    if (counters[t * stride] != want) {
      std::fprintf(stderr, "rank %d: counter %d is %lu, expected %lu\n", me, t,
                   static_cast<unsigned long>(counters[t * stride]), static_cast<unsigned long>(want));
      lost += static_cast<long>(want) - static_cast<long>(counters[t * stride]);
    }
  }
  std::printf("rank %d: %d ranks x %d threads x %d locked increments, %ld lost: %s\n", me, n,
              threads, iters, lost, lost == 0 ? "verified" : "FAILED");
  const int rc = rt->Finalize();
  return lost == 0 ? rc : 1;
}

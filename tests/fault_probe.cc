// Misbehaving programs for the fault tests (tests/faults_test.sh):
//   fault_probe unallocated   rank 1 loads from the range outside any allocation
//   fault_probe kill R        rank R SIGKILLs itself mid-run while others loop
//                             on barriers and remote reads
//   fault_probe threads       4 threads per rank fault on remote pages at once
//   fault_probe memory        backing store and twin memory stay proportional
//   fault_probe selective     Release/Acquire of a range with a relaxed flag
//                             (FAULT_PROBE_SKIP_ACQUIRE=1: negative control)
//   fault_probe refresh       pages re-read after every barrier are refreshed
//                             in place, not faulted in (GASP_REFRESH_PAGES=0:
//                             faulted every round)
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const std::string mode = argc > 1 ? argv[1] : "";
  const int me = rt->rank(), n = rt->size();
  if (mode == "unallocated") {
    char* p = static_cast<char*>(gasp::CoAlloc(4096));
    gasp::Barrier();
    if (me == 1 % n) {
      volatile char* beyond = p + 64 * 4096;  // inside the range, never allocated
      std::printf("rank %d: loading %p\n", me, (void*)beyond);
      std::fflush(stdout);
      char c = *beyond;
      std::printf("rank %d: load returned %d (should not happen)\n", me, c);
      return 3;
    }
    gasp::Barrier();
    return rt->Finalize();
  }
  // Mismatched collective calls: the job must stop naming both calls.
  if (mode == "mismatch-alloc") {
    gasp::Barrier();
    gasp::CoAlloc(me == 1 ? 4096 : 8192, gasp::Placement::Block());
    std::printf("rank %d: CoAlloc returned (should not happen)\n", me);
    return 3;
  }
  if (mode == "mismatch-allreduce") {
    gasp::Barrier();
    double v[2] = {1, 2};
    gasp::Allreduce(v, v, me == 1 ? 1 : 2);
    std::printf("rank %d: Allreduce returned (should not happen)\n", me);
    return 3;
  }
  if (mode == "barrier-finalize") {
    gasp::CoAlloc(4096);
    if (me == 1) return rt->Finalize();
    gasp::Barrier();
    std::printf("rank %d: Barrier returned (should not happen)\n", me);
    return 3;
  }
  if (mode == "mismatch-grant") {  // noticed at the next barrier
    gasp::Domain d = gasp::CoNewDomain("probe");
    gasp::CoGrant(d, me == 0 ? 1 : 0, gasp::Access::kRead);
    gasp::Barrier();
    std::printf("rank %d: Barrier returned (should not happen)\n", me);
    return 3;
  }
  // An off-by-1024 overflow of one collective array: with GASP_GUARD_PAGES
  // it faults naming the array; without, it lands in the next array.
  if (mode == "overflow") {
    double* a = gasp::CoNewArray<double>(512, gasp::Placement::OnRank(0));
    double* b = gasp::CoNewArray<double>(2048, gasp::Placement::OnRank(0));
    gasp::Barrier();
    if (me == 0) {
      a[512 + 1024] = 1.0;  // the bug: past a's end
      std::printf("rank %d: overflow of a landed silently (b[%ld] = %g)\n", me,
                  static_cast<long>((a + 512 + 1024) - b), b[(a + 512 + 1024) - b]);
      std::fflush(stdout);
    }
    gasp::Barrier();
    return rt->Finalize();
  }
  if (mode == "kill") {
    const int victim = argc > 2 ? std::atoi(argv[2]) : 1;
    long* data = gasp::CoNewArray<long>(4096 * n);
    for (int it = 0;; ++it) {
      data[me * 4096 + it % 4096] = it;
      gasp::Barrier();
      volatile long sum = 0;
      for (int r = 0; r < n; ++r) sum += data[r * 4096];
      if (it == 20 && me == victim) {
        std::printf("rank %d: killing myself with SIGKILL\n", me);
        std::fflush(stdout);
        kill(getpid(), SIGKILL);
      }
      if (it > 100000) break;
    }
    return rt->Finalize();
  }
  // False sharing on a page another rank reads for the first time: rank 1
  // fetches the page (first fetch from its block), then the home writes
  // other bytes of it in the same epoch (ordered in time only, by relaxed
  // atomics: no synchronization, and no data race: different bytes); after
  // the barrier, rank 1 must see them. Repeated on fresh pages.
  if (mode == "falseshare") {
    constexpr int kRounds = 8;
    uint8_t* a = gasp::CoNewArray<uint8_t>(4096 * 64 * kRounds, gasp::Placement::OnRank(0));
    uint64_t* flag = gasp::CoNewArray<uint64_t>(1, gasp::Placement::OnRank(n - 1));
    gasp::Barrier();
    long bad = 0;
    for (int round = 0; round < kRounds; ++round) {
      uint8_t* page = a + static_cast<size_t>(round) * 64 * 4096;  // a fresh 64-page block
      if (me == 1 % n && n > 1) {
        volatile uint8_t first = page[100];  // first fetch of the block
        (void)first;
        gasp::AtomicStore(flag, round + 1, std::memory_order_relaxed);
      }
      if (me == 0 && n > 1) {
        while (gasp::AtomicLoad(flag, std::memory_order_relaxed) < static_cast<uint64_t>(round + 1)) {
        }
        page[200] = static_cast<uint8_t>(7 + round);  // after rank 1's fetch, other bytes
      }
      gasp::Barrier();
      if (page[200] != static_cast<uint8_t>(7 + round)) ++bad;
      gasp::Barrier();
    }
    std::printf("rank %d: %d rounds of first fetch then home write, %ld stale: %s\n", me, kRounds,
                bad, bad == 0 ? "verified" : "FAILED");
    const int rc = rt->Finalize();
    return bad == 0 ? rc : 1;
  }
  // Hot home blocks (docs/protocol.md, "Home pages: closed until written"): rank 0
  // rewrites 64 pages of its home every round, so their block is promoted
  // (left open, noted at every take), demoted after 16 intervals and
  // promoted again; the other ranks must see every round's values, after
  // a barrier and after a lock hand-off.
  if (mode == "hot") {
    constexpr int kRounds = 40;
    constexpr size_t kLongs = 64 * 512;
    long* a = gasp::CoNewArray<long>(kLongs, gasp::Placement::OnRank(0));
    uint64_t* flag = gasp::CoNewArray<uint64_t>(1, gasp::Placement::OnRank(n - 1));
    gasp::GlobalLock lock = gasp::CoNewLock();
    long bad = 0;
    for (int round = 1; round <= kRounds; ++round) {
      if (me == 0) {
        for (size_t i = 0; i < kLongs; i += 64) a[i] = round;
      }
      gasp::Barrier();
      for (size_t i = 0; i < kLongs; i += 64 * 8) bad += a[i] != round;
      gasp::Barrier();
      if (me == 0) {  // the same pages again, handed over by the lock
        std::lock_guard<gasp::GlobalLock> g(lock);
        for (size_t i = 0; i < kLongs; i += 64) a[i] = -round;
        *flag = round;
      } else {
        for (bool done = false; !done;) {
          std::lock_guard<gasp::GlobalLock> g(lock);
          if (*flag == static_cast<uint64_t>(round)) {
            for (size_t i = 0; i < kLongs; i += 64 * 8) bad += a[i] != -round;
            done = true;
          }
        }
      }
      gasp::Barrier();
    }
    std::printf("rank %d: %d rounds of home writes read by others, %ld stale: %s\n", me, kRounds,
                bad, bad == 0 ? "verified" : "FAILED");
    const int rc = rt->Finalize();
    return bad == 0 ? rc : 1;
  }
  // Allreduce: sum, min and max of the most values per call, in place,
  // with every rank getting the same bits (sums of values that round).
  if (mode == "allreduce") {
    constexpr size_t kN = gasp::kMaxAllreduceValues;
    long bad = 0;
    for (int round = 0; round < 20; ++round) {
      double v[kN], lo[kN], hi[kN];
      for (size_t k = 0; k < kN; ++k) v[k] = lo[k] = hi[k] = (me + 1) * (k + round) + 0.1 * me;
      gasp::Allreduce(v, v, kN);
      gasp::Allreduce(lo, lo, kN, gasp::ReduceOp::kMin);
      gasp::Allreduce(hi, hi, kN, gasp::ReduceOp::kMax);
      for (size_t k = 0; k < kN; ++k) {
        double want = 0;
        for (int r = 0; r < n; ++r) want += (r + 1) * (k + round) + 0.1 * r;  // rank order
        bad += v[k] != want;
        bad += lo[k] != static_cast<double>(k + round);
        bad += hi[k] != n * static_cast<double>(k + round) + 0.1 * (n - 1);
      }
      // The same bits on every rank: rank 0's sums, compared everywhere.
      const double check = gasp::Allreduce(me == 0 ? v[kN - 1] : 0.0);
      bad += check != v[kN - 1];
    }
    std::printf("rank %d: 60 Allreduce calls of %zu values, %ld wrong: %s\n", me, kN, bad,
                bad == 0 ? "verified" : "FAILED");
    const int rc = rt->Finalize();
    return bad == 0 ? rc : 1;
  }
  // A rank stopped (SIGSTOP) before a barrier: the others warn, naming it,
  // and go on once the test continues it (faults_test).
  if (mode == "stop") {
    gasp::Barrier();
    if (me == n - 1) raise(SIGSTOP);
    gasp::Barrier();
    std::printf("rank %d: barrier after a stopped rank: verified\n", me);
    return rt->Finalize();
  }
  // The last rank stops (SIGSTOP) while it holds a lock the others wait
  // for: they warn, naming it as the holder that does not answer, and go on
  // once the test continues it (faults_test).
  if (mode == "lockstop") {
    gasp::GlobalLock lock = gasp::CoNewLock();
    long* count = gasp::CoNewArray<long>(1, gasp::Placement::OnRank(0));
    gasp::Barrier();
    if (me == n - 1) {
      lock.lock();
      ++*count;
    }
    gasp::Barrier();  // n-1 holds the lock from here until it is continued
    if (me == n - 1) {
      raise(SIGSTOP);
      lock.unlock();
    } else {
      std::lock_guard<gasp::GlobalLock> g(lock);
      ++*count;
    }
    gasp::Barrier();
    long seen = 0;
    {
      std::lock_guard<gasp::GlobalLock> g(lock);
      seen = *count;
    }
    std::printf("rank %d: lock held by a stopped rank, then %ld increments: %s\n", me, seen,
                seen == n ? "verified" : "FAILED");
    const int rc = rt->Finalize();
    return seen == n ? rc : 1;
  }
  // The last rank is killed (SIGKILL) while it holds a lock the others
  // queue for: they must end at once with the dead rank named, not wait
  // out GASP_TIMEOUT (faults_test).
  if (mode == "lockkill") {
    gasp::GlobalLock lock = gasp::CoNewLock();
    gasp::Barrier();
    if (me == n - 1) lock.lock();
    gasp::Barrier();
    if (me == n - 1) {
      sleep(1);  // the others are queued by now
      std::printf("rank %d: killing myself with SIGKILL while holding a lock\n", me);
      std::fflush(stdout);
      kill(getpid(), SIGKILL);
    }
    lock.lock();
    std::printf("rank %d: granted a lock whose holder was killed: FAILED\n", me);
    return 1;
  }
  if (mode == "threads") {
    const size_t kPerRank = 64 * 512;  // 64 pages of longs per rank
    long* data = gasp::CoNewArray<long>(kPerRank * n);
    for (size_t i = 0; i < kPerRank; ++i) data[me * kPerRank + i] = me * 1000000L + i;
    gasp::Barrier();
    std::atomic<long> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        for (int r = 0; r < n; ++r) {
          for (size_t i = t; i < kPerRank; i += 97) {
            if (data[r * kPerRank + i] != r * 1000000L + static_cast<long>(i)) bad++;
          }
        }
      });
    }
    for (auto& t : ts) t.join();
    std::printf("rank %d: 4 threads faulting concurrently, %ld bad values: %s\n", me, bad.load(),
                bad == 0 ? "verified" : "FAILED");
    int rc = rt->Finalize();
    return bad == 0 ? rc : 1;
  }
  if (mode == "selective") {
    // Selective release/acquire of a range, with a relaxed atomic flag as the
    // only synchronization: the reader sees exactly what was released.
    const size_t kLongs = 3 * 512;
    long* x = gasp::CoNewArray<long>(kLongs, gasp::Placement::OnRank(0));      // writer's home
    long* z = gasp::CoNewArray<long>(kLongs, gasp::Placement::OnRank(n - 1));  // reader's home
    uint64_t* flag = gasp::CoNewArray<uint64_t>(2);
    long bad = 0;
    volatile long warm = 0;
    gasp::Barrier();
    if (me == n - 1) {
      for (size_t i = 0; i < kLongs; ++i) warm += x[i];  // cache x (zeros) here
      gasp::AtomicStore(&flag[1], 1, std::memory_order_relaxed);
    }
    if (me == 0) {
      while (gasp::AtomicLoad(&flag[1], std::memory_order_relaxed) != 1) {
      }
      for (size_t i = 0; i < kLongs; ++i) x[i] = z[i] = 1000 + static_cast<long>(i);
      gasp::Release(z, kLongs * sizeof(long));  // diffs of z go home now
      gasp::AtomicStore(flag, 1, std::memory_order_relaxed);
    } else if (me == n - 1) {
      while (gasp::AtomicLoad(flag, std::memory_order_relaxed) != 1) {
      }
      if (std::getenv("FAULT_PROBE_SKIP_ACQUIRE") == nullptr) {
        gasp::Acquire(x, kLongs * sizeof(long));  // drop the stale cached copy of x
      }
      for (size_t i = 0; i < kLongs; ++i) {
        if (x[i] != 1000 + static_cast<long>(i) || z[i] != 1000 + static_cast<long>(i)) ++bad;
      }
    }
    std::printf("rank %d: selective release/acquire, %ld bad values: %s\n", me, bad,
                bad == 0 ? "verified" : "FAILED");
    int rc = rt->Finalize();
    return bad == 0 ? rc : 1;
  }
  if (mode == "refresh") {
    // Refresh in place: pages homed at rank 0, written there every round and
    // read by the others after the round's barrier. From the third round on
    // the readers' copies are refreshed at the barrier (no read fault) except
    // after every 8th barrier (a probe that drops them); every value is
    // right; once the readers stop reading, refreshing stops within 8
    // barriers. With GASP_REFRESH_PAGES=0 every round faults and nothing is
    // refreshed. Counts come from gasp::Stats() (read_faults, pages_refreshed).
    constexpr int kRounds = 24, kQuietRounds = 12;
    constexpr size_t kPages = 64, kLongsPerPage = 512;
    long* a = gasp::CoNewArray<long>(kPages * kLongsPerPage, gasp::Placement::OnRank(0));
    const char* setting = std::getenv("GASP_REFRESH_PAGES");
    const bool off = setting != nullptr && std::string(setting) == "0";
    auto stat = [](const char* name) {
      for (const auto& [k, v] : gasp::Stats()) {
        if (k == name) return v;
      }
      return uint64_t{0};
    };
    long bad = 0;
    int faulted_rounds = 0;
    uint64_t refreshed_start = 0;
    for (int round = 1; round <= kRounds + kQuietRounds; ++round) {
      if (me == 0) {
        for (size_t p = 0; p < kPages; ++p) a[p * kLongsPerPage + round % kLongsPerPage] = round;
      }
      gasp::Barrier();
      if (round == kRounds + 1) refreshed_start = stat("pages_refreshed");
      if (me != 0 && round <= kRounds) {
        const uint64_t faults = stat("read_faults");
        for (size_t p = 0; p < kPages; ++p) bad += a[p * kLongsPerPage + round % kLongsPerPage] != round;
        faulted_rounds += stat("read_faults") != faults;
      }
    }
    // The last quiet rounds' barriers (after a probe dropped the copies)
    // must have refreshed nothing.
    const uint64_t refreshed = stat("pages_refreshed");
    gasp::Barrier();
    gasp::Barrier();
    const uint64_t late = stat("pages_refreshed") - refreshed;
    bool ok = bad == 0;
    if (me != 0) {
      const int most_faults = off ? kRounds : 2 + kRounds / 8 + 1;
      const int least_faults = off ? kRounds : 2;
      ok = ok && faulted_rounds <= most_faults && faulted_rounds >= least_faults &&
           (off ? refreshed == 0 : refreshed >= (kRounds - most_faults) * kPages) &&
           late == 0 && (off || refreshed - refreshed_start <= 8 * kPages);
    }
    std::printf("rank %d: refresh %s: %d rounds, %d with read faults, %lu pages refreshed (%lu "
                "after reading stopped, %lu in the last barriers), %ld stale: %s\n",
                me, off ? "off" : "on", kRounds, faulted_rounds,
                static_cast<unsigned long>(refreshed),
                static_cast<unsigned long>(refreshed - refreshed_start),
                static_cast<unsigned long>(late), bad, ok ? "verified" : "FAILED");
    const int rc = rt->Finalize();
    return ok ? rc : 1;
  }
  if (mode == "memory") {
    // The backing store holds this rank's share of what was allocated and
    // touched, not the range; twins exist only for written pages.
    const size_t kBytes = size_t{32} << 20;
    char* a = static_cast<char*>(gasp::CoAlloc(kBytes, gasp::Placement::Block()));
    const size_t share = kBytes / n;
    for (size_t i = me * share; i < (me + 1) * share; i += 4096) a[i] = 1;  // home pages
    gasp::Barrier();
    const uint64_t before = gasp::internal::GetRange()->ResidentBytes();
    const bool home_ok = before >= share && before <= share + (size_t{2} << 20);
    char* remote = a + ((me + 1) % n) * share;  // another rank's share
    for (int p = 0; p < 3; ++p) remote[p * 4096 + 5] = 7;  // three written pages
    const uint64_t dirty = gasp::internal::GetCoherence()->dirty_pages();
    const bool twins_ok = n == 1 || dirty == 3;
    gasp::Barrier();
    const bool clean_ok = gasp::internal::GetCoherence()->dirty_pages() == 0;
    std::printf("rank %d: backing store %lu bytes for a %zu-byte share of a %zu-byte array; %lu "
                "twins after writing 3 remote pages: %s\n",
                me, static_cast<unsigned long>(before), share, kBytes,
                static_cast<unsigned long>(dirty), home_ok && twins_ok && clean_ok ? "verified" : "FAILED");
    int rc = rt->Finalize();
    return home_ok && twins_ok && clean_ok ? rc : 1;
  }
  std::fprintf(stderr, "usage: fault_probe unallocated|kill R|threads|memory|selective|refresh\n");
  return 2;
}

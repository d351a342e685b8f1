// Multi-rank benchmark with perftest-style tables (median, p99 per op).
// Run under gasprun: rank 0 measures against rank 1 (the last rank for the
// barrier). Every figure that is compared is measured in this same run:
//
//   trap        bare fault trap: SIGSEGV + mprotect opening the page, no fetch
//   read4k      raw one-sided 4 KiB READ on the same transport
//   trap+read   the two back to back in one loop iteration: the floor of a
//               fault-driven fetch (the same syscalls, none of our logic)
//   fetch       fault-driven remote page fetch (prefetch off)
//   ratio       fetch / (trap + read4k), against the one-loop floor and
//               against the sum of the two separate medians
//   seqread     sequential remote read throughput, prefetch 0 vs default
//   wdiff       write fault + diff + release, per dirty page
//   lock        uncontended remote lock+unlock, in CAS round trips
//   barrier     barrier latency at this job size
//
//   gasprun -np 2 bazel-bin/benchmarks/gasp_bench [iterations]
//
// Profiling: BENCH_ONLY=read8|read4k|floor|fetch runs only that loop (fetch:
// BENCH_ROUNDS rounds over the pages, an acquire before each), so that
// `perf record -a` in the guest sees nothing else; docs/testing.md.
// BENCH_ONLY=spin|mprotect|vmaonly|signal times a READ after 20 us of
// computing, after an mprotect of another populated page, after an
// mprotect of a page never touched, or after a signal: which part of a trap
// makes the READ after it slower (docs/benchmarks.md, "Page fetch").
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gas/fault_dispatcher.h"
#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"

namespace {

using Clock = std::chrono::steady_clock;

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Summary {
  double median, p99, mean;
};

Summary Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)], sum / v.size()};
}

void Row(const char* name, const char* size, const Summary& s, size_t n) {
  std::printf(" %-34s %8s %10.2f %10.2f %10.2f %8zu\n", name, size, s.median, s.p99, s.mean, n);
}

// Private pages, closed (PROT_NONE) all at once like an acquire closes the
// cache, whose fault handler only opens the faulting page: the physical
// floor of a fault, without any fetch. Closing happens once per loop,
// outside the timed region, as a fetch's happens at the acquire.
char* g_trap = nullptr;
size_t g_trap_len = 0;
bool TrapHandler(void*, siginfo_t* info, ucontext_t*) {
  char* a = static_cast<char*>(info->si_addr);
  if (a < g_trap || a >= g_trap + g_trap_len) return false;
  mprotect(g_trap + ((a - g_trap) & ~size_t{4095}), 4096, PROT_READ);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  gasp::InitOptions opts;
  auto rt = gasp::Init(&argc, &argv, opts);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int me = rt->rank(), n = rt->size();
  const char* only = std::getenv("BENCH_ONLY");
  if (only != nullptr && std::string(only) != "read8" && std::string(only) != "read4k" &&
      std::string(only) != "floor" && std::string(only) != "fetch" &&
      std::string(only) != "spin" && std::string(only) != "mprotect" &&
      std::string(only) != "vmaonly" && std::string(only) != "signal") {
    if (me == 0) {
      std::fprintf(stderr, "gasp_bench: BENCH_ONLY=%s: expected read8, read4k, floor, spin, mprotect, vmaonly, signal or fetch\n",
                   only);
    }
    (void)rt->Finalize();  // every rank takes this branch: the env is the job's
    return 2;
  }
  auto* transport = gasp::internal::GetTransport();
  auto* coherence = gasp::internal::GetCoherence();
  const int peer = n - 1;
  // Pages homed at the last rank, read by rank 0.
  const size_t kPages = static_cast<size_t>(iters) + 16;
  char* remote = static_cast<char*>(gasp::CoAlloc(kPages * 4096, gasp::Placement::OnRank(peer)));
  const size_t kSeqBytes = 16 << 20;
  char* seq = static_cast<char*>(gasp::CoAlloc(kSeqBytes, gasp::Placement::OnRank(peer)));
  // A lock word on its own page, homed at the peer.
  uint64_t* lock_word = static_cast<uint64_t*>(gasp::CoAlloc(4096, gasp::Placement::OnRank(peer)));
  if (me == peer) {
    for (size_t p = 0; p < kPages; ++p) remote[p * 4096] = static_cast<char>(p);
    for (size_t i = 0; i < kSeqBytes; i += 4096) seq[i] = 1;
  }
  gasp::Barrier();
  if (me == 0 && n > 1) {
    std::printf("# gasp_bench: rank 0 -> rank %d (%s), transport %s, %d iterations\n", peer,
                gasp::internal::DescribeRank(peer).c_str(), transport->name().c_str(), iters);
    std::printf(" %-34s %8s %10s %10s %10s %8s\n", "operation", "bytes", "median_us", "p99_us",
                "mean_us", "samples");
    // The trap pages, one per iteration, touched once each so they are
    // backed (as cached pages are) before the first close.
    g_trap_len = static_cast<size_t>(std::max(iters, 1)) * 4096;
    g_trap = static_cast<char*>(
        mmap(nullptr, g_trap_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (g_trap == MAP_FAILED) return 1;
    for (size_t o = 0; o < g_trap_len; o += 4096) g_trap[o] = 1;
    if (!gasp::gas::RegisterFaultHandler(TrapHandler, nullptr).ok()) return 1;
    auto close_traps = [] { mprotect(g_trap, g_trap_len, PROT_NONE); };
    auto trap_at = [](int i) {
      volatile char c = g_trap[static_cast<size_t>(i) * 4096];
      (void)c;
    };
    // The raw ops' local buffer is registered like perftest's, so a backend
    // that can skip its bounce copy for registered memory (verbs) does.
    std::vector<char> buf(4096);
    if (!transport->Register(buf.data(), buf.size(), 0).ok()) return 1;
    auto page_addr = [&](int i) { return reinterpret_cast<uint64_t>(remote) + (i % kPages) * 4096; };
    // Pages past the fetch benchmark's: the raw writes must not disturb it.
    auto seq_addr = [&](int i) { return reinterpret_cast<uint64_t>(seq) + (i % 64) * 4096; };
    // The raw ops of one loop, built before it is timed (as perftest builds
    // its work requests): op i targets the peer's backing store of the
    // global address addr_of(i).
    auto make_ops = [&](gasp::transport::OpType type, size_t bytes, auto addr_of) {
      std::vector<gasp::transport::Op> ops(static_cast<size_t>(iters));
      for (int i = 0; i < iters; ++i) {
        gasp::transport::Op& op = ops[static_cast<size_t>(i)];
        op.type = type;
        op.peer = peer;
        op.local = buf.data();
        op.length = bytes;
        op.remote_addr = coherence->HomeAddress(peer, addr_of(i));
        op.rkey = coherence->HomeKey(addr_of(i), peer);
      }
      return ops;
    };
    // Executes one raw op with a fresh deadline, as a caller would.
    auto exec = [&](const gasp::transport::Op& op) {
      absl::Status s = transport->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + absl::Seconds(30));
      if (!s.ok()) {
        std::fprintf(stderr, "gasp_bench: raw op: %s\n", std::string(s.message()).c_str());
        std::exit(1);
      }
    };
    const std::vector<gasp::transport::Op> reads4k =
        make_ops(gasp::transport::OpType::kRead, 4096, page_addr);
    auto timed = [](int n, auto body) {
      std::vector<double> t;
      t.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        auto t0 = Clock::now();
        body(i);
        t.push_back(Us(Clock::now() - t0));
      }
      return t;
    };
    // A single loop for profiling (see the file comment); nothing else runs.
    if (only != nullptr) {
      const std::string mode = only;
      const char* rounds_env = std::getenv("BENCH_ROUNDS");
      const int rounds = std::max(1, rounds_env != nullptr ? std::atoi(rounds_env) : 1);
      coherence->set_prefetch_pages(0);
      long sum = 0;
      std::vector<double> t, halves[2];
      for (int r = 0; r < rounds; ++r) {
        std::vector<double> part;
        if (mode == "read8") {
          const auto ops = make_ops(gasp::transport::OpType::kRead, 8, seq_addr);
          part = timed(iters, [&](int i) { exec(ops[static_cast<size_t>(i)]); });
        } else if (mode == "read4k") {
          part = timed(iters, [&](int i) { exec(reads4k[static_cast<size_t>(i)]); });
        } else if (mode == "floor") {
          // Each half timed too: which one pays for running back to back.
          close_traps();
          part = timed(iters, [&](int i) {
            auto t0 = Clock::now();
            trap_at(i);
            auto t1 = Clock::now();
            exec(reads4k[static_cast<size_t>(i)]);
            halves[0].push_back(Us(t1 - t0));
            halves[1].push_back(Us(Clock::now() - t1));
          });
        } else if (mode == "spin" || mode == "mprotect" || mode == "vmaonly" ||
                   mode == "signal") {
          // What a READ pays after each part of a trap alone: 20 us of
          // computing; one mprotect of another (populated) page, which
          // changes its page-table entry; an mprotect of a page never
          // touched, which changes only the mapping's flags; a signal
          // delivered to this thread (no protection change).
          close_traps();
          char* untouched = static_cast<char*>(
              mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
          struct sigaction sa = {};
          sa.sa_handler = [](int) {};
          sigaction(SIGUSR2, &sa, nullptr);
          part = timed(iters, [&](int i) {
            if (mode == "spin") {
              const auto until = Clock::now() + std::chrono::microseconds(20);
              while (Clock::now() < until) {
              }
            } else if (mode == "mprotect") {
              mprotect(g_trap + static_cast<size_t>(i) * 4096, 4096, PROT_READ);
            } else if (mode == "vmaonly") {
              mprotect(untouched, 4096, (i & 1) ? PROT_READ : PROT_NONE);
            } else {
              raise(SIGUSR2);
            }
            auto t1 = Clock::now();
            exec(reads4k[static_cast<size_t>(i)]);
            halves[1].push_back(Us(Clock::now() - t1));
          });
        } else {  // fetch
          gasp::Acquire(remote, kPages * 4096);
          part = timed(iters, [&](int i) { sum += remote[static_cast<size_t>(i) * 4096]; });
        }
        t.insert(t.end(), part.begin(), part.end());
      }
      Row(("only " + mode).c_str(), mode == "read8" ? "8" : "4096", Summarize(t), t.size());
      if (!halves[0].empty()) {
        Row("  of which the trap", "0", Summarize(halves[0]), halves[0].size());
      }
      if (!halves[1].empty()) {
        Row("  of which the READ", "4096", Summarize(halves[1]), halves[1].size());
      }
      if (sum == 42) std::printf(" \n");
      gasp::Barrier();  // the other ranks' one barrier in this mode
      return rt->Finalize();
    }
    // 1. Bare fault trap.
    close_traps();
    std::vector<double> trap = timed(iters, trap_at);
    // 2. Raw 4 KiB READ from the peer's backing store.
    std::vector<double> read4k = timed(iters, [&](int i) { exec(reads4k[static_cast<size_t>(i)]); });
    // 2a. The floor of a fetch: a trap and a 4 KiB READ back to back, as a
    //     fetch does them.
    close_traps();
    std::vector<double> floor = timed(iters, [&](int i) {
      trap_at(i);
      exec(reads4k[static_cast<size_t>(i)]);
    });
    // 2b. The other raw one-sided sizes, for the side-by-side tables.
    auto raw = [&](gasp::transport::OpType type, size_t bytes, const char* label) {
      const auto ops = make_ops(type, bytes, seq_addr);
      Row(label, std::to_string(bytes).c_str(),
          Summarize(timed(iters, [&](int i) { exec(ops[static_cast<size_t>(i)]); })), iters);
    };
    // 3. Fault-driven fetch of one page (prefetch off), each page once.
    coherence->set_prefetch_pages(0);
    std::vector<double> fetch;
    long check = 0;
    for (int i = 0; i < iters; ++i) {
      volatile char* p = remote + static_cast<size_t>(i) * 4096;
      auto t0 = Clock::now();
      check += *p;
      fetch.push_back(Us(Clock::now() - t0));
    }
    // 3b. Steady state: the same pages again after an acquire invalidated
    //     them (their memory is already allocated, as in iterative codes).
    gasp::Acquire(remote, kPages * 4096);
    std::vector<double> refetch;
    for (int i = 0; i < iters; ++i) {
      volatile char* p = remote + static_cast<size_t>(i) * 4096;
      auto t0 = Clock::now();
      check += *p;
      refetch.push_back(Us(Clock::now() - t0));
    }
    Summary st = Summarize(trap), sr = Summarize(read4k), sfl = Summarize(floor),
            sf = Summarize(fetch), srf = Summarize(refetch);
    Row("fault trap (SIGSEGV+mprotect)", "0", st, trap.size());
    Row("raw READ", "4096", sr, read4k.size());
    Row("fault trap + raw READ, one loop", "4096", sfl, floor.size());
    Row("page fetch by fault, first touch", "4096", sf, fetch.size());
    Row("page fetch by fault, after acquire", "4096", srf, refetch.size());
    std::printf(" ratio fetch / (trap + READ), medians: first touch %.2f, after acquire %.2f "
                "(floor: one loop); %.2f, %.2f (floor: sum of the separate medians)\n",
                sf.median / sfl.median, srf.median / sfl.median,
                sf.median / (st.median + sr.median), srf.median / (st.median + sr.median));
    raw(gasp::transport::OpType::kRead, 8, "raw READ");
    raw(gasp::transport::OpType::kWrite, 8, "raw WRITE");
    raw(gasp::transport::OpType::kWrite, 4096, "raw WRITE");
    // 4. Sequential read throughput, prefetch off vs default window.
    for (int window : {0, static_cast<int>(gasp::internal::GetConfig().prefetch_pages), 16}) {
      gasp::Acquire(seq, kSeqBytes);
      coherence->set_prefetch_pages(window);
      auto t0 = Clock::now();
      long sum = 0;
      for (size_t i = 0; i < kSeqBytes; i += 4096) sum += seq[i];
      double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      std::printf(" sequential remote read, prefetch %2d pages: %8.1f MB/s (%zu pages, sum %ld)\n",
                  window, kSeqBytes / secs / 1e6, kSeqBytes / 4096, sum);
    }
    coherence->set_prefetch_pages(static_cast<int>(gasp::internal::GetConfig().prefetch_pages));
    // 5. Write fault + diff + release, per dirty page (pages cached first).
    std::vector<double> wdiff;
    const int kBatch = 64;
    for (int round = 0; round < std::max(1, iters / kBatch); ++round) {
      char* base = remote + static_cast<size_t>(round % (kPages / kBatch)) * kBatch * 4096;
      for (int p = 0; p < kBatch; ++p) check += base[p * 4096];  // read-cache them
      auto t0 = Clock::now();
      for (int p = 0; p < kBatch; ++p) base[p * 4096 + 8] = static_cast<char>(round);
      gasp::Release();
      wdiff.push_back(Us(Clock::now() - t0) / kBatch);
    }
    Row("write fault + diff + release", "8/page", Summarize(wdiff), wdiff.size());
    // 6. Uncontended remote lock vs a raw CAS round trip.
    std::vector<double> cas, lock;
    gasp::GlobalLock l(lock_word);
    uint64_t scratch = 0;
    for (int i = 0; i < iters; ++i) {
      gasp::transport::Op op;
      op.type = gasp::transport::OpType::kCompareSwap;
      op.peer = peer;
      op.local = &scratch;
      op.remote_addr = coherence->HomeAddress(peer, reinterpret_cast<uint64_t>(remote) + 128);
      op.rkey = coherence->HomeKey(reinterpret_cast<uint64_t>(remote) + 128, peer);
      auto t0 = Clock::now();
      if (!transport->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + absl::Seconds(30)).ok()) return 1;
      cas.push_back(Us(Clock::now() - t0));
      t0 = Clock::now();
      l.lock();
      l.unlock();
      lock.push_back(Us(Clock::now() - t0));
    }
    Summary sc = Summarize(cas), sl = Summarize(lock);
    Row("raw CAS round trip", "8", sc, cas.size());
    Row("lock+unlock, uncontended remote", "8", sl, lock.size());
    std::printf(" lock+unlock in CAS round trips (medians): %.2f\n", sl.median / sc.median);
    if (check == 42) std::printf(" \n");
  } else if (me == 0) {
    std::printf("# gasp_bench: needs at least 2 ranks for the remote figures\n");
  }
  if (only != nullptr) {  // profiling one loop of rank 0's: nothing else
    gasp::Barrier();
    return rt->Finalize();
  }
  // 7. Barrier latency at this size.
  gasp::Barrier();
  std::vector<double> bar;
  for (int i = 0; i < std::max(100, iters / 4); ++i) {
    auto t0 = Clock::now();
    gasp::Barrier();
    bar.push_back(Us(Clock::now() - t0));
  }
  if (me == 0) {
    char label[32];
    std::snprintf(label, sizeof(label), "barrier, %d ranks", n);
    Row(label, "0", Summarize(bar), bar.size());
  }
  return rt->Finalize();
}

// The stubs of docs/protection.md side by side, in one run: a plain call, a
// trusted client's stub (direct call), an untrusted client's stub (a gate
// into the server's domain), a bare gate, and, for scale, a same-node
// cross-process call (futex ping-pong over shared memory). The protection
// backend is GASP_PROTECT's (mprotect without PKU; pkeys in the guest).
//   bazel run -c opt //benchmarks:stub_benchmark
// Runs as a single rank (no launcher needed).
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "benchmark/benchmark.h"
#include "gasp/gasp.h"

namespace {

// A service whose state lives in its own domain.
struct Counter {
  uint64_t* slots;
  __attribute__((noinline)) uint64_t Add(uint64_t x) {
    benchmark::DoNotOptimize(slots);
    return slots[0] += x;
  }
};

struct Fixture {
  gasp::Domain domain;
  Counter* counter = nullptr;
  uint64_t* plain = nullptr;
  gasp::Gate gate;
};

Fixture* g_fix = nullptr;

__attribute__((noinline)) uint64_t PlainAdd(uint64_t* p, uint64_t x) {
  benchmark::DoNotOptimize(p);
  return *p += x;
}

void BM_PlainCall(benchmark::State& state) {
  uint64_t x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(PlainAdd(g_fix->plain, ++x));
}
BENCHMARK(BM_PlainCall);

void BM_TrustedStub(benchmark::State& state) {
  // Trusted: this thread holds the domain, the stub is a direct call.
  gasp::LocalRef<Counter> ref = gasp::LocalRef<Counter>::Trusted(g_fix->counter);
  uint64_t x = 0;
  gasp::Status st = g_fix->gate.Call([&] {
    for (auto _ : state) {
      gasp::Result<uint64_t> r = ref.Call(&Counter::Add, ++x);
      benchmark::DoNotOptimize(r);
    }
  });
  if (!st.ok()) state.SkipWithError(std::string(st.message()).c_str());
}
BENCHMARK(BM_TrustedStub);

void BM_UntrustedStub(benchmark::State& state) {
  gasp::LocalRef<Counter> ref = gasp::LocalRef<Counter>::Untrusted(g_fix->counter, g_fix->gate);
  uint64_t x = 0;
  for (auto _ : state) {
    gasp::Result<uint64_t> r = ref.Call(&Counter::Add, ++x);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(gasp::ProtectionBackend());
}
BENCHMARK(BM_UntrustedStub);

long Futex(std::atomic<uint32_t>* w, int op, uint32_t v) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), op, v, nullptr, nullptr, 0);
}

// Same node, another process: the request and reply each cost a futex wake
// and a context switch.
void BM_CrossProcessFutexCall(benchmark::State& state) {
  auto* w = static_cast<std::atomic<uint32_t>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  w[0] = 0;  // turn: even = client, odd = server; ~0u = stop
  pid_t pid = fork();
  if (pid == 0) {
    uint64_t sum = 0;
    for (uint32_t expect = 1;; expect += 2) {
      uint32_t v;
      while ((v = w[0].load()) != expect && v != ~0u) Futex(&w[0], FUTEX_WAIT, v);
      if (v == ~0u) _exit(0);
      sum += w[1].load();  // the "call"
      w[0].store(expect + 1);
      Futex(&w[0], FUTEX_WAKE, 1);
    }
  }
  uint32_t turn = 0;
  for (auto _ : state) {
    w[1].store(turn);
    w[0].store(turn + 1);
    Futex(&w[0], FUTEX_WAKE, 1);
    uint32_t v;
    while ((v = w[0].load()) != turn + 2) Futex(&w[0], FUTEX_WAIT, v);
    turn += 2;
  }
  w[0].store(~0u);
  Futex(&w[0], FUTEX_WAKE, 1);
  waitpid(pid, nullptr, 0);
  munmap(w, 4096);
}
BENCHMARK(BM_CrossProcessFutexCall)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  gasp::Result<gasp::Runtime> rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  Fixture fix;
  fix.domain = gasp::CoNewDomain("counter");
  fix.counter = gasp::New<Counter>();
  fix.counter->slots = gasp::CoNewArray<uint64_t>(512, {}, fix.domain);
  fix.plain = gasp::CoNewArray<uint64_t>(512);
  gasp::CoGrant(fix.domain, gasp::Rank(), gasp::Access::kReadWrite, gasp::Trust::kUntrusted);
  gasp::Result<gasp::Gate> gate = gasp::OpenGate(fix.domain, gasp::Access::kReadWrite);
  if (!gate.ok()) {
    std::fprintf(stderr, "OpenGate: %s\n", std::string(gate.status().message()).c_str());
    return 1;
  }
  fix.gate = *gate;
  g_fix = &fix;
  std::printf("protection backend: %s\n", gasp::ProtectionBackend());
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return rt->Finalize();
}

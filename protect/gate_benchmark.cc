// Gate round trip: pkeys (WRPKRU) vs mprotect, against a direct call, and a
// same-node cross-process round trip (pipe ping-pong) for scale.
//   bazel run -c opt //protect:gate_benchmark
// pkeys rows report an error where the CPU has no PKU (run it in the guest:
// tools/vmtest -- bazel-vm-bin/protect/gate_benchmark; TCG timings are not
// hardware timings, see /work/shared/notes/vm.md).
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>

#include "benchmark/benchmark.h"
#include "protect/cpu_probe.h"
#include "protect/gate.h"
#include "protect/protection.h"

namespace gasp {
namespace protect {
namespace {

__attribute__((noinline)) int Work(int* p) {
  benchmark::DoNotOptimize(p);
  return ++*p;
}

void BM_DirectCall(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(Work(&x));
}
BENCHMARK(BM_DirectCall);

void GateRoundTrip(benchmark::State& state, BackendKind kind) {
  if (kind == BackendKind::kPkeys && !ProbePku().usable()) {
    state.SkipWithError(("no PKU: " + ProbePku().reason).c_str());
    return;
  }
  ProtectionOptions o;
  o.backend = kind;
  auto p = Protection::Create(o);
  if (!p.ok()) {
    state.SkipWithError(p.status().ToString().c_str());
    return;
  }
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  auto d = (*p)->CreateDomain("bench");
  if (!(*p)->Attach(*d, page, 4096).ok()) {
    state.SkipWithError("attach");
    return;
  }
  Binding b = *(*p)->Bind(*d, Rights::kReadWrite, Scope::kThread);
  Gate gate(p->get(), *d, Rights::kReadWrite);
  int* x = static_cast<int*>(page);
  for (auto _ : state) {
    auto r = gate.Call(b, Work, x);
    benchmark::DoNotOptimize(r);
  }
  p->reset();
  munmap(page, 4096);
}
void BM_GatePkeys(benchmark::State& state) { GateRoundTrip(state, BackendKind::kPkeys); }
void BM_GateMprotect(benchmark::State& state) { GateRoundTrip(state, BackendKind::kMprotect); }
BENCHMARK(BM_GatePkeys);
BENCHMARK(BM_GateMprotect);

void BM_WrpkruPair(benchmark::State& state) {
  if (!ProbePku().usable()) {
    state.SkipWithError("no PKU");
    return;
  }
  uint32_t v = ReadPkru();
  for (auto _ : state) {
    WritePkru(v | PkruWd(15));
    WritePkru(v);
  }
}
BENCHMARK(BM_WrpkruPair);

// Same-node cross-process round trip: one byte each way over two pipes.
void BM_CrossProcessPipe(benchmark::State& state) {
  int to[2], from[2];
  if (pipe(to) != 0 || pipe(from) != 0) {
    state.SkipWithError("pipe");
    return;
  }
  pid_t child = fork();
  if (child == 0) {
    close(to[1]);  // else read() never sees EOF and the parent's waitpid hangs
    close(from[0]);
    char c;
    while (read(to[0], &c, 1) == 1) {
      ++c;
      if (write(from[1], &c, 1) != 1) break;
    }
    _exit(0);
  }
  close(to[0]);
  close(from[1]);
  char c = 0;
  for (auto _ : state) {
    if (write(to[1], &c, 1) != 1 || read(from[0], &c, 1) != 1) {
      state.SkipWithError("pipe io");
      break;
    }
  }
  close(to[1]);
  close(from[0]);
  waitpid(child, nullptr, 0);
}
BENCHMARK(BM_CrossProcessPipe);

}  // namespace
}  // namespace protect
}  // namespace gasp

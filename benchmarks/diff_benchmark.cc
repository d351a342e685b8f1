// Cost of diffing a 4 KiB page against its twin, by how much changed.
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "consistency/diff.h"

namespace {

void BM_Diff(benchmark::State& state) {
  const int changed_bytes = static_cast<int>(state.range(0));
  std::vector<uint8_t> twin(4096, 0), page(4096, 0);
  std::mt19937 rng(1);
  for (int i = 0; i < changed_bytes; ++i) page[rng() % 4096] = 1;
  std::vector<gasp::consistency::DiffRun> runs(gasp::consistency::MaxDiffRuns(4096));
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        gasp::consistency::ComputeDiff(page.data(), twin.data(), 4096, runs.data(), runs.size()));
  }
  state.SetBytesProcessed(state.iterations() * 4096);
}
BENCHMARK(BM_Diff)->Arg(0)->Arg(8)->Arg(64)->Arg(512)->Arg(4096);

}  // namespace

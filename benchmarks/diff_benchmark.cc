// Cost of diffing a 4 KiB page against its twin, by how much changed.
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "consistency/diff.h"
#include "consistency/diff_wire.h"

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

namespace {

// A page of doubles after x[i] += 1e-3: most bytes of each double change,
// the sign and exponent bytes do not (hundreds of short runs).
void SmallChangePage(std::vector<uint8_t>* twin, std::vector<uint8_t>* page) {
  twin->assign(4096, 0);
  page->assign(4096, 0);
  for (int i = 0; i < 512; ++i) {
    double a = 1.0 + i, b = a + 1e-3;
    std::memcpy(twin->data() + i * 8, &a, 8);
    std::memcpy(page->data() + i * 8, &b, 8);
  }
}

// Encoding a page's runs into a packed diff message (the sender's cost).
void BM_PackSmallChangePage(benchmark::State& state) {
  std::vector<uint8_t> twin, page;
  SmallChangePage(&twin, &page);
  std::vector<gasp::consistency::DiffRun> runs(gasp::consistency::MaxDiffRuns(4096));
  runs.resize(gasp::consistency::ComputeDiff(page.data(), twin.data(), 4096, runs.data(), runs.size()));
  gasp::consistency::DiffWriter w;
  for (auto _ : state) {
    w.Start(1, 1);
    w.AddPage(0, page.data(), runs);
    benchmark::DoNotOptimize(w.Finish().data());
  }
  state.counters["runs"] = static_cast<double>(runs.size());
  state.counters["bytes"] = static_cast<double>(w.size());
}
BENCHMARK(BM_PackSmallChangePage);

// Decoding and applying it (the home's cost).
void BM_ApplySmallChangePage(benchmark::State& state) {
  std::vector<uint8_t> twin, page;
  SmallChangePage(&twin, &page);
  std::vector<gasp::consistency::DiffRun> runs(gasp::consistency::MaxDiffRuns(4096));
  runs.resize(gasp::consistency::ComputeDiff(page.data(), twin.data(), 4096, runs.data(), runs.size()));
  gasp::consistency::DiffWriter w;
  w.Start(1, 1);
  w.AddPage(0, page.data(), runs);
  auto msg = w.Finish();
  std::vector<uint8_t> home = twin;
  for (auto _ : state) {
    auto m = gasp::consistency::DecodeDiff(msg, 4096);
    for (const auto& r : m->records) gasp::consistency::ApplyRecord(r, home.data());
    benchmark::DoNotOptimize(home.data());
  }
}
BENCHMARK(BM_ApplySmallChangePage);

}  // namespace

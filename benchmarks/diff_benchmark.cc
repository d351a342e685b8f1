// Cost of diffing a 4 KiB page against its twin, by how much changed; and of
// a shipped page sent as a diff (bundle kind 3) and applied.
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "consistency/bundle.h"
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

namespace {

using gasp::consistency::kBundlePageBytes;

// A page of a 10k-node tree (32-byte nodes) after every node's value += 1
// (service_bench's "changed" tree): one byte in 32 differs.
void TreePage(std::vector<uint8_t>* before, std::vector<uint8_t>* after) {
  before->assign(kBundlePageBytes, 0);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < kBundlePageBytes; i += 8) {
    const uint64_t v = rng() & 0x0000ffffffffff00ull;  // a pointer or a key
    std::memcpy(before->data() + i, &v, 8);
  }
  *after = *before;
  for (size_t i = 8; i < kBundlePageBytes; i += 32) (*after)[i] += 1;  // the value's low byte
}

void BM_PageHash(benchmark::State& state) {
  std::vector<uint8_t> page, unused;
  TreePage(&page, &unused);
  for (auto _ : state) benchmark::DoNotOptimize(gasp::consistency::PageHash(page.data()));
  state.SetBytesProcessed(state.iterations() * kBundlePageBytes);
}
BENCHMARK(BM_PageHash);

// The sender of a shipped page: the diff against the copy last sent, encoded.
void BM_BundleAddTreeDiff(benchmark::State& state) {
  std::vector<uint8_t> before, after;
  TreePage(&before, &after);
  const uint64_t h0 = gasp::consistency::PageHash(before.data());
  const uint64_t h1 = gasp::consistency::PageHash(after.data());
  gasp::consistency::BundleWriter w(1);
  size_t bytes = 0;
  for (auto _ : state) {
    w.AddDiff(1, before.data(), h0, after.data(), h1);
    bytes = w.Finish().size();
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_BundleAddTreeDiff);

// The receiver: base hash check, patch, new hash check.
void BM_BundlePatchTreeDiff(benchmark::State& state) {
  std::vector<uint8_t> before, after, out(kBundlePageBytes);
  TreePage(&before, &after);
  gasp::consistency::BundleWriter w(1);
  w.AddDiff(1, before.data(), gasp::consistency::PageHash(before.data()), after.data(),
            gasp::consistency::PageHash(after.data()));
  const std::string b = w.Finish();
  auto pages = gasp::consistency::DecodeBundle(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
  for (auto _ : state) {
    benchmark::DoNotOptimize(gasp::consistency::PatchedPage((*pages)[0], before.data(), out.data()));
  }
}
BENCHMARK(BM_BundlePatchTreeDiff);

}  // namespace

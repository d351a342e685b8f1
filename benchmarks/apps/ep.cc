// EP (after the NAS Parallel Benchmarks' embarrassingly parallel kernel):
// Gaussian pairs by the Marsaglia polar method, counted per square annulus
// l <= max(|X|, |Y|) < l + 1, with the sums of X and of Y.
//
//   gasprun -np R ep [pairs=100000000]
//
// Uniforms come from a counter-based generator (pair k uses the hashes of
// 2k and 2k + 1), so every version draws the same numbers whatever the
// partition. Each version sums contiguous chunks, then the chunk results in
// order; only that final reduction is shared in the gasp version (one page
// per rank, apps::Reducer). Counts must match exactly; the sums, added in a
// different order than serially, to a relative 1e-10.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/apps/apps_common.h"
#include "gasp/gasp.h"

namespace {

constexpr int kAnnuli = 10;
constexpr int64_t kDefaultPairs = 100000000;
constexpr uint64_t kSeed = 271828183;

// Sums and annulus counts; counts are doubles so that the whole result is
// one vector for the Reducer (exact up to 2^53).
struct Tally {
  double v[2 + kAnnuli] = {};
  double& sx() { return v[0]; }
  double& sy() { return v[1]; }
  double& count(int l) { return v[2 + l]; }
  void Add(const Tally& o) {
    for (int k = 0; k < 2 + kAnnuli; ++k) v[k] += o.v[k];
  }
};

// Pairs [begin, end): the kernel all three versions share.
Tally CountPairs(uint64_t begin, uint64_t end) {
  Tally t;
  for (uint64_t k = begin; k < end; ++k) {
    const double x = 2.0 * apps::ToUnit(apps::Mix64(kSeed + 2 * k)) - 1.0;
    const double y = 2.0 * apps::ToUnit(apps::Mix64(kSeed + 2 * k + 1)) - 1.0;
    const double s = x * x + y * y;
    if (s > 1.0 || s == 0.0) continue;  // outside the unit disc: rejected
    const double f = std::sqrt(-2.0 * std::log(s) / s);
    const double gx = x * f, gy = y * f;
    const int l = static_cast<int>(std::max(std::fabs(gx), std::fabs(gy)));
    if (l < kAnnuli) t.count(l) += 1;
    t.sx() += gx;
    t.sy() += gy;
  }
  return t;
}

Tally RunSerial(uint64_t pairs) { return CountPairs(0, pairs); }

Tally RunOmp(uint64_t pairs, int threads) {
  std::vector<Tally> part(threads);
  apps::OmpChunks(threads, [&](int t, int nt) {
    apps::Range r = apps::EvenRange(pairs, t, nt);
    part[t] = CountPairs(r.lo, r.hi);
  });
  Tally total;
  for (const Tally& p : part) total.Add(p);
  return total;
}

// Counts exact, sums within the reduction tolerance.
bool Matches(Tally got, Tally want) {
  for (int l = 0; l < kAnnuli; ++l) {
    if (got.count(l) != want.count(l)) return false;
  }
  return apps::CloseRel(got.sx(), want.sx()) && apps::CloseRel(got.sy(), want.sy());
}

// The gasp version: one contiguous chunk per rank, then the shared sum.
Tally RunGasp(uint64_t pairs, apps::Reducer& reducer) {
  apps::Range r = apps::EvenRange(pairs, gasp::Rank(), gasp::Size());
  Tally mine = CountPairs(r.lo, r.hi);
  Tally total;
  reducer.Sum(mine.v, total.v, 2 + kAnnuli);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const uint64_t pairs = apps::ArgOr(argc, argv, 1, kDefaultPairs);
  const int ranks = rt->size();
  apps::Timings t;
  t.ops = 2.0 * static_cast<double>(pairs);  // NPB counts random numbers
  apps::Signals signals = apps::Signals::Create();

  Tally serial, omp;
  bool omp_ok = true;
  if (rt->rank() == 0) {
    double t0 = apps::NowSeconds();
    serial = RunSerial(pairs);
    t.serial_s = apps::NowSeconds() - t0;
    t0 = apps::NowSeconds();
    omp = RunOmp(pairs, ranks);
    t.omp_s = apps::NowSeconds() - t0;
    omp_ok = Matches(omp, serial);
    signals.ready.Post(1);
  } else {
    signals.ready.Wait();
  }

  apps::Reducer reducer = apps::Reducer::Create();
  gasp::Barrier();
  const double g0 = apps::NowSeconds();
  Tally result = RunGasp(pairs, reducer);
  gasp::Barrier();
  t.gasp_s = apps::NowSeconds() - g0;
  apps::MaybePrintStats("ep");

  bool ok = true;
  if (rt->rank() == 0) {
    const bool gasp_ok = Matches(result, serial);
    ok = omp_ok && gasp_ok;
    if (!omp_ok) std::printf("ep: OpenMP result differs from serial\n");
    if (!gasp_ok) {
      std::printf("ep: gasp result differs from serial: sx %.17g vs %.17g, sy %.17g vs %.17g\n",
                  result.sx(), serial.sx(), result.sy(), serial.sy());
    }
    double accepted = 0;
    for (int l = 0; l < kAnnuli; ++l) accepted += serial.count(l);
    std::printf("ep gaussian_pairs=%.0f sx=%.15e sy=%.15e\n", accepted, serial.sx(), serial.sy());
    apps::PrintResult("ep", "n=" + std::to_string(pairs), t, ok);
  }
  ok = signals.ShareVerdict(ok);
  const int rc = rt->Finalize();
  return ok ? rc : 1;
}

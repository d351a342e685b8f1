// FT (after the data movement of the NAS Parallel Benchmarks' 3-D FFT
// kernel): a 2-D N x N array alternates a per-row transform with a global
// transpose, which is all-to-all traffic. Each iteration
//   1. transforms every row of the source in place: a normalized
//      Walsh-Hadamard butterfly (log2 N stages of (a+b)/sqrt2, (a-b)/sqrt2,
//      an FFT's access pattern without its arithmetic), then an "evolve"
//      damping x[i][j] *= w[i] w[j] (w[k] = exp(-alpha k'^2), k' the
//      wrapped frequency), as FT's time step does;
//   2. transposes the source into the destination (dst[i][j] = src[j][i]);
// and the two arrays swap roles.
//
//   gasprun -np R ft [N=1024] [iterations=100]      (N a power of two)
//
// gasp version: both arrays shared, Placement::Block by rows; each rank
// transforms its rows of the source, then (after a Barrier) writes its
// rows of the destination from columns of the source, reading every other
// rank's rows. One Barrier per iteration: it publishes the transformed
// rows, and the next one keeps the next transpose's writes after this
// one's reads.
//
// The same operations in the same order in every version: bitwise equal.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/apps/apps_common.h"
#include "gasp/gasp.h"

namespace {

constexpr int64_t kDefaultN = 1024;
constexpr int64_t kDefaultIterations = 100;
constexpr size_t kTile = 16;  // transpose tile: 16 source rows' cache lines
constexpr double kAlpha = 0.02;
constexpr uint64_t kSeed = 577215664;

// Damping factor per (wrapped) index.
std::vector<double> Evolve(size_t n) {
  std::vector<double> w(n);
  for (size_t k = 0; k < n; ++k) {
    const double kk = static_cast<double>(std::min(k, n - k)) / (n / 2.0);
    w[k] = std::exp(-kAlpha * kk * kk);
  }
  return w;
}

double Initial(size_t n, size_t i, size_t j) {
  return 2.0 * apps::ToUnit(apps::Mix64(kSeed + i * n + j)) - 1.0;
}

// The per-row transform of row `i` (length n, in place).
void TransformRow(double* x, size_t i, size_t n, const std::vector<double>& w) {
  constexpr double kScale = 0.70710678118654752440;  // 1/sqrt(2): norm-preserving
  for (size_t len = 1; len < n; len <<= 1) {
    for (size_t b = 0; b < n; b += 2 * len) {
      for (size_t j = b; j < b + len; ++j) {
        const double u = x[j], v = x[j + len];
        x[j] = (u + v) * kScale;
        x[j + len] = (u - v) * kScale;
      }
    }
  }
  for (size_t j = 0; j < n; ++j) x[j] *= w[i] * w[j];
}

void TransformRows(double* a, size_t n, size_t lo, size_t hi, const std::vector<double>& w) {
  for (size_t i = lo; i < hi; ++i) TransformRow(a + i * n, i, n, w);
}

// Rows [lo, hi) of dst from columns of src, in tiles so that each source
// cache line (and page) is used for several destination rows at once.
void TransposeRows(const double* src, double* dst, size_t n, size_t lo, size_t hi) {
  for (size_t ib = lo; ib < hi; ib += kTile) {
    const size_t ie = std::min(ib + kTile, hi);
    for (size_t jb = 0; jb < n; jb += kTile) {
      const size_t je = std::min(jb + kTile, n);
      for (size_t i = ib; i < ie; ++i) {
        for (size_t j = jb; j < je; ++j) dst[i * n + j] = src[j * n + i];
      }
    }
  }
}

void InitRows(double* a, size_t n, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) {
    for (size_t j = 0; j < n; ++j) a[i * n + j] = Initial(n, i, j);
  }
}

// FT-style checksum: a fixed pseudo-random sample of elements.
double Checksum(const double* a, size_t n) {
  double s = 0;
  for (size_t k = 0; k < 1024; ++k) s += a[((5 * k) % n) * n + (3 * k) % n];
  return s;
}

// ---- serial and OpenMP ------------------------------------------------------

// Runs the iterations on a (initialized) and b; returns the result array.
const double* RunSerial(double* a, double* b, size_t n, int iterations) {
  const std::vector<double> w = Evolve(n);
  for (int it = 0; it < iterations; ++it) {
    double* src = it % 2 == 0 ? a : b;
    double* dst = it % 2 == 0 ? b : a;
    TransformRows(src, n, 0, n, w);
    TransposeRows(src, dst, n, 0, n);
  }
  return iterations % 2 == 0 ? a : b;
}

const double* RunOmp(double* a, double* b, size_t n, int iterations, int threads) {
  const std::vector<double> w = Evolve(n);
  const int64_t rows = static_cast<int64_t>(n),
                tiles = static_cast<int64_t>((n + kTile - 1) / kTile);
  for (int it = 0; it < iterations; ++it) {
    double* src = it % 2 == 0 ? a : b;
    double* dst = it % 2 == 0 ? b : a;
    // One team for both loops; the implicit barrier at the end of the first
    // orders every row's transform before any transpose reads it.
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < rows; ++i) TransformRow(src + i * n, i, n, w);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tiles; ++t) {
        TransposeRows(src, dst, n, t * kTile, std::min((t + 1) * kTile, n));
      }
    }
  }
  return iterations % 2 == 0 ? a : b;
}

// ---- gasp -------------------------------------------------------------------

struct GaspFt {
  double* a = nullptr;
  double* b = nullptr;
  apps::Range rows;  // homed here, in both arrays
  std::vector<double> w;
  double transform_s = 0;  // rank 0's phases
  double barrier_s = 0;
  double transpose_s = 0;  // includes faulting in remote rows
};

// Collective: allocations and this rank's rows of the initial array.
void SetUpGasp(GaspFt& g, size_t n) {
  g.a = gasp::CoNewArray<double>(n * n, gasp::Placement::Block());
  g.b = gasp::CoNewArray<double>(n * n, gasp::Placement::Block());
  g.rows = apps::HomeRange(g.a, n, n * sizeof(double));
  const apps::Range rb = apps::HomeRange(g.b, n, n * sizeof(double));
  if (rb.lo != g.rows.lo || rb.hi != g.rows.hi) gasp::Abort(1, "ft: a and b split differently");
  g.w = Evolve(n);
  InitRows(g.a, n, g.rows.lo, g.rows.hi);
  // Touch this rank's rows of b too (first-touch faults out of the timing).
  std::fill(g.b + g.rows.lo * n, g.b + g.rows.hi * n, 0.0);
}

const double* RunGasp(GaspFt& g, size_t n, int iterations) {
  for (int it = 0; it < iterations; ++it) {
    double* src = it % 2 == 0 ? g.a : g.b;
    double* dst = it % 2 == 0 ? g.b : g.a;
    const double t0 = apps::NowSeconds();
    TransformRows(src, n, g.rows.lo, g.rows.hi, g.w);
    const double t1 = apps::NowSeconds();
    gasp::Barrier();
    const double t2 = apps::NowSeconds();
    TransposeRows(src, dst, n, g.rows.lo, g.rows.hi);
    g.transform_s += t1 - t0;
    g.barrier_s += t2 - t1;
    g.transpose_s += apps::NowSeconds() - t2;
  }
  return iterations % 2 == 0 ? g.a : g.b;
}

bool SameArray(const char* what, const double* got, const double* want, size_t n) {
  size_t bad = 0;
  for (size_t k = 0; k < n * n; ++k) bad += got[k] != want[k];
  if (bad != 0) {
    const double d = apps::MaxAbsDiff(
        n * n, [&](size_t k) { return got[k]; }, [&](size_t k) { return want[k]; });
    std::printf("ft: %s differs from serial at %zu elements, max |diff| %.3g\n", what, bad, d);
  }
  return bad == 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const size_t n = apps::ArgOr(argc, argv, 1, kDefaultN);
  const int iterations = static_cast<int>(apps::ArgOr(argc, argv, 2, kDefaultIterations));
  if (n < 2 || n > (1u << 15) || (n & (n - 1)) != 0) {
    gasp::Abort(2, "ft: N must be a power of two in [2, 32768]");
  }
  const int me = rt->rank(), ranks = rt->size();
  apps::Signals signals = apps::Signals::Create();

  apps::Timings t;
  // Per element and iteration: 2 flops per butterfly stage, 2 for evolve.
  t.ops = static_cast<double>(iterations) * n * n * (2.0 * std::log2(n) + 2.0);
  std::vector<double> serial;
  bool omp_ok = true;
  if (me == 0) {
    std::vector<double> a(n * n), b(n * n);
    InitRows(a.data(), n, 0, n);
    double t0 = apps::NowSeconds();
    const double* ref = RunSerial(a.data(), b.data(), n, iterations);
    t.serial_s = apps::NowSeconds() - t0;
    serial.assign(ref, ref + n * n);
    InitRows(a.data(), n, 0, n);
    t0 = apps::NowSeconds();
    const double* omp = RunOmp(a.data(), b.data(), n, iterations, ranks);
    t.omp_s = apps::NowSeconds() - t0;
    omp_ok = SameArray("OpenMP", omp, serial.data(), n);
    signals.ready.Post(1);
  } else {
    signals.ready.Wait();
  }

  GaspFt g;
  SetUpGasp(g, n);
  gasp::Barrier();
  const double g0 = apps::NowSeconds();
  const double* result = RunGasp(g, n, iterations);
  gasp::Barrier();
  t.gasp_s = apps::NowSeconds() - g0;
  apps::MaybePrintStats("ft");

  bool ok = true;
  if (me == 0) {
    ok = SameArray("gasp", result, serial.data(), n) && omp_ok;
    std::printf(
        "ft checksum=%.15e rank0: rows=%zu transform_s=%.4f barrier_s=%.4f "
        "transpose_s=%.4f\n",
        Checksum(serial.data(), n), g.rows.size(), g.transform_s, g.barrier_s, g.transpose_s);
    apps::PrintResult("ft", "n=" + std::to_string(n) + " iters=" + std::to_string(iterations), t,
                      ok);
  }
  ok = signals.ShareVerdict(ok);
  const int rc = rt->Finalize();
  return ok ? rc : 1;
}

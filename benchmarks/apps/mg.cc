// MG (after the smoother of the NAS Parallel Benchmarks' multigrid kernel):
// Jacobi sweeps of the 7-point Laplacian on an n^3 grid, double buffered:
//   u'(x,y,z) = (sum of the 6 neighbours of u + h^2 f(x,y,z)) / 6
// with u = 0 on the boundary and a deterministic random right-hand side f.
//
//   gasprun -np R mg [n=128] [sweeps=300]
//
// gasp version: both grids are shared, Placement::Block, z-planes padded to
// whole pages and the plane count to a multiple of the rank count, so each
// rank is home of a slab of whole planes. A rank updates its slab and reads
// only the two halo planes of its neighbours (faulted in after each
// Barrier); f is private to each rank's slab. One Barrier per sweep.
//
// Every version updates each point with the same operations in the same
// order, so the grids must be bitwise equal.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/apps/apps_common.h"
#include "gasp/gasp.h"

namespace {

constexpr int64_t kDefaultN = 128;
constexpr int64_t kDefaultSweeps = 300;
constexpr uint64_t kSeed = 161803398;

// Right-hand side at (x, y) of plane z, in [-1, 1).
double Rhs(int n, int z, int y, int x) {
  const uint64_t index = (static_cast<uint64_t>(z) * n + y) * n + x;
  return 2.0 * apps::ToUnit(apps::Mix64(kSeed + index)) - 1.0;
}

// Fills plane z of f (n x n, row stride n).
void FillRhsPlane(int n, int z, double* f) {
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) f[y * n + x] = Rhs(n, z, y, x);
  }
}

// One plane of a sweep: `out` from the plane `here` and its neighbours
// `below` and `above` (all n x n, row stride n); interior points only, so
// the boundary values already in `out` stay.
void SweepPlane(const double* below, const double* here, const double* above, const double* f,
                double h2, int n, double* out) {
  constexpr double kSixth = 1.0 / 6.0;
  for (int y = 1; y < n - 1; ++y) {
    const double* c = here + y * n;
    for (int x = 1; x < n - 1; ++x) {
      const int i = y * n + x;
      out[i] = (c[x - 1] + c[x + 1] + here[i - n] + here[i + n] + below[i] + above[i] + h2 * f[i]) *
               kSixth;
    }
  }
}

// A grid whose plane z starts at base + z * stride.
struct Grid {
  double* base = nullptr;
  size_t stride = 0;
  double* plane(int z) const { return base + static_cast<size_t>(z) * stride; }
};

// Sweep planes [lo, hi) (interior ones only) from src to dst; fplane(z)
// gives f's plane z.
template <typename FPlane>
void SweepPlanes(const Grid& src, const Grid& dst, FPlane fplane, double h2, int n, int lo,
                 int hi) {
  for (int z = std::max(lo, 1); z < std::min(hi, n - 1); ++z) {
    SweepPlane(src.plane(z - 1), src.plane(z), src.plane(z + 1), fplane(z), h2, n, dst.plane(z));
  }
}

double H2(int n) { return 1.0 / (static_cast<double>(n - 1) * (n - 1)); }

// ---- serial and OpenMP: private n^3 grids -----------------------------------

struct LocalGrids {
  std::vector<double> a, b, f;
};

LocalGrids MakeLocalGrids(int n) {
  const size_t plane = static_cast<size_t>(n) * n;
  LocalGrids g;
  g.a.assign(plane * n, 0.0);
  g.b.assign(plane * n, 0.0);
  g.f.resize(plane * n);
  for (int z = 0; z < n; ++z) FillRhsPlane(n, z, g.f.data() + z * plane);
  return g;
}

// Runs `sweeps` sweeps; returns the grid holding the result.
const std::vector<double>& RunSerial(LocalGrids& g, int n, int sweeps) {
  const size_t plane = static_cast<size_t>(n) * n;
  auto fplane = [&](int z) { return g.f.data() + z * plane; };
  for (int s = 0; s < sweeps; ++s) {
    std::vector<double>& src = s % 2 == 0 ? g.a : g.b;
    std::vector<double>& dst = s % 2 == 0 ? g.b : g.a;
    SweepPlanes(Grid{src.data(), plane}, Grid{dst.data(), plane}, fplane, H2(n), n, 0, n);
  }
  return sweeps % 2 == 0 ? g.a : g.b;
}

const std::vector<double>& RunOmp(LocalGrids& g, int n, int sweeps, int threads) {
  const size_t plane = static_cast<size_t>(n) * n;
  auto fplane = [&](int z) { return g.f.data() + z * plane; };
  for (int s = 0; s < sweeps; ++s) {
    std::vector<double>& src = s % 2 == 0 ? g.a : g.b;
    std::vector<double>& dst = s % 2 == 0 ? g.b : g.a;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int z = 1; z < n - 1; ++z) {
      SweepPlanes(Grid{src.data(), plane}, Grid{dst.data(), plane}, fplane, H2(n), n, z, z + 1);
    }
  }
  return sweeps % 2 == 0 ? g.a : g.b;
}

// ---- gasp -------------------------------------------------------------------

struct GaspMg {
  Grid a, b;
  apps::Range planes;     // this rank's slab (homed here)
  std::vector<double> f;  // f's planes of the slab
  double compute_s = 0;   // rank 0: sweeping (with halo faults)
  double barrier_s = 0;   // rank 0: waiting in barriers
};

// Collective: allocations and this rank's f (untimed). u starts at zero,
// which is what the zero-filled allocation holds.
void SetUpGasp(GaspMg& g, int n) {
  constexpr size_t kPageDoubles = 4096 / sizeof(double);
  const size_t stride =
      (static_cast<size_t>(n) * n + kPageDoubles - 1) / kPageDoubles * kPageDoubles;
  const int ranks = gasp::Size();
  const size_t planes = (static_cast<size_t>(n) + ranks - 1) / ranks * ranks;
  g.a = Grid{gasp::CoNewArray<double>(stride * planes, gasp::Placement::Block()), stride};
  g.b = Grid{gasp::CoNewArray<double>(stride * planes, gasp::Placement::Block()), stride};
  apps::Range r = apps::HomeRange(g.a.base, planes, stride * sizeof(double));
  g.planes = {std::min(r.lo, static_cast<size_t>(n)), std::min(r.hi, static_cast<size_t>(n))};
  // Touch the slab of both grids now (writing the zeros they hold), so
  // first-touch page faults stay out of the timed sweeps.
  for (size_t z = g.planes.lo; z < g.planes.hi; ++z) {
    std::fill(g.a.plane(static_cast<int>(z)), g.a.plane(static_cast<int>(z)) + stride, 0.0);
    std::fill(g.b.plane(static_cast<int>(z)), g.b.plane(static_cast<int>(z)) + stride, 0.0);
  }
  const size_t plane = static_cast<size_t>(n) * n;
  g.f.resize(plane * g.planes.size());
  for (size_t z = g.planes.lo; z < g.planes.hi; ++z) {
    FillRhsPlane(n, static_cast<int>(z), g.f.data() + (z - g.planes.lo) * plane);
  }
}

// Returns the grid holding the result.
const Grid& RunGasp(GaspMg& g, int n, int sweeps) {
  const size_t plane = static_cast<size_t>(n) * n;
  const int lo = static_cast<int>(g.planes.lo), hi = static_cast<int>(g.planes.hi);
  auto fplane = [&](int z) { return g.f.data() + (z - lo) * plane; };
  for (int s = 0; s < sweeps; ++s) {
    const Grid& src = s % 2 == 0 ? g.a : g.b;
    const Grid& dst = s % 2 == 0 ? g.b : g.a;
    double t0 = apps::NowSeconds();
    SweepPlanes(src, dst, fplane, H2(n), n, lo, hi);
    double t1 = apps::NowSeconds();
    // The slab is published before anyone reads it as a halo, and every
    // halo read of src is done before src is overwritten next sweep.
    gasp::Barrier();
    g.compute_s += t1 - t0;
    g.barrier_s += apps::NowSeconds() - t1;
  }
  return sweeps % 2 == 0 ? g.a : g.b;
}

// Bitwise comparison of grid `got` (planes `stride` apart) with `want`.
bool SameGrid(const char* what, int n, const double* got, size_t stride,
              const std::vector<double>& want) {
  const size_t plane = static_cast<size_t>(n) * n;
  auto at = [&](size_t i) { return got[i / plane * stride + i % plane]; };
  size_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) bad += at(i) != want[i];
  if (bad != 0) {
    const double d = apps::MaxAbsDiff(want.size(), at, [&](size_t i) { return want[i]; });
    std::printf("mg: %s differs from serial at %zu points, max |diff| %.3g\n", what, bad, d);
  }
  return bad == 0;
}

double Norm(const std::vector<double>& u) {
  double s = 0;
  for (double v : u) s += v * v;
  return std::sqrt(s);
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int n = static_cast<int>(apps::ArgOr(argc, argv, 1, kDefaultN));
  const int sweeps = static_cast<int>(apps::ArgOr(argc, argv, 2, kDefaultSweeps));
  if (n < 3 || n > 2048) gasp::Abort(2, "mg: n must be in [3, 2048]");
  const int me = rt->rank(), ranks = rt->size();
  apps::Signals signals = apps::Signals::Create();

  apps::Timings t;
  t.ops = 8.0 * sweeps * std::pow(n - 2.0, 3);  // 7 adds and 1 multiply-add per point
  std::vector<double> serial;
  bool omp_ok = true;
  if (me == 0) {
    LocalGrids g = MakeLocalGrids(n);
    double t0 = apps::NowSeconds();
    const std::vector<double>& ref = RunSerial(g, n, sweeps);
    t.serial_s = apps::NowSeconds() - t0;
    serial = ref;  // copied outside the timing; g is reused below
    g = MakeLocalGrids(n);
    t0 = apps::NowSeconds();
    const std::vector<double>& omp = RunOmp(g, n, sweeps, ranks);
    t.omp_s = apps::NowSeconds() - t0;
    omp_ok = SameGrid("OpenMP", n, omp.data(), static_cast<size_t>(n) * n, serial);
    signals.ready.Post(1);
  } else {
    signals.ready.Wait();
  }

  GaspMg g;
  SetUpGasp(g, n);
  gasp::Barrier();
  const double g0 = apps::NowSeconds();
  const Grid& result = RunGasp(g, n, sweeps);
  gasp::Barrier();
  t.gasp_s = apps::NowSeconds() - g0;
  apps::MaybePrintStats("mg");

  bool ok = true;
  if (me == 0) {
    ok = SameGrid("gasp", n, result.base, result.stride, serial) && omp_ok;
    std::printf("mg norm=%.15e rank0: planes=%zu compute_s=%.4f barrier_s=%.4f\n", Norm(serial),
                g.planes.size(), g.compute_s, g.barrier_s);
    apps::PrintResult("mg", "n=" + std::to_string(n) + " sweeps=" + std::to_string(sweeps), t, ok);
  }
  ok = signals.ShareVerdict(ok);
  const int rc = rt->Finalize();
  return ok ? rc : 1;
}

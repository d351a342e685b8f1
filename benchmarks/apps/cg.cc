// CG (after the NAS Parallel Benchmarks' conjugate gradient kernel): inverse
// power iteration for the smallest eigenvalue of a sparse symmetric
// positive definite matrix; each outer iteration solves A z = x with
// kCgIterations plain CG steps, then zeta = 1 / (x . z) and x = z / |z|.
//
//   gasprun -np R cg [n=100000] [outer=15] [offdiag_per_row=7]
//
// The matrix is deterministic and random: row r draws `offdiag_per_row`
// columns c and values v from a counter-based hash, and (r, c, v) is
// mirrored to (c, r, v); the diagonal is 1 + sum |off-diagonal| (strictly
// diagonally dominant, hence SPD). Any rank builds any rows by scanning the
// cheap generator, so no rank needs the whole matrix.
//
// gasp version: rows are split in blocks over the ranks (the rows whose p
// entries are homed at the rank, Placement::Block). Only the search
// direction p is shared: every rank reads p at its rows' columns, which
// straddle all homes. Dot products are gasp::Allreduce calls (apps::Reducer),
// each a Barrier carrying the partial sums; each inner step has three
// barriers (p . q, r . r, and publishing the new p).
//
// Sparse products add in CSR order in every version (identical bits);
// dot products add in different orders, so zeta is compared to a relative
// 1e-10 and x to 1e-10 of its largest entry.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "benchmarks/apps/apps_common.h"
#include "gasp/gasp.h"

namespace {

constexpr int kCgIterations = 25;  // as NPB's cgitmax
constexpr int64_t kDefaultN = 100000;
constexpr int64_t kDefaultOuter = 15;
constexpr int64_t kDefaultOffdiag = 7;
constexpr uint64_t kSeed = 314159265;

// Rows [row0, row0 + rows()) of the matrix in CSR form.
struct Csr {
  size_t row0 = 0;
  std::vector<uint64_t> start;  // rows() + 1 offsets into col/val
  std::vector<uint32_t> col;
  std::vector<double> val;
  size_t rows() const { return start.size() - 1; }
};

// Calls fn(row, col, value) for every generated off-diagonal entry and its
// mirror, in one fixed order (so each row sees its entries in the same
// order whichever rows are being built).
template <typename Fn>
void ForEachEntry(size_t n, int per_row, Fn fn) {
  for (size_t r = 0; r < n; ++r) {
    for (int k = 0; k < per_row; ++k) {
      const uint64_t h = apps::Mix64(kSeed + r * per_row + k);
      const size_t c = h % n;
      if (c == r) continue;
      const double v = 2.0 * apps::ToUnit(apps::Mix64(h)) - 1.0;
      fn(r, c, v);
      fn(c, r, v);
    }
  }
}

// Sorts one row's (col, value) entries by column, keeping generation order
// among equal columns, and adds duplicates in that order.
void CanonicalRow(std::vector<std::pair<uint32_t, double>>& e) {
  std::stable_sort(e.begin(), e.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t out = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    if (out > 0 && e[out - 1].first == e[i].first) {
      e[out - 1].second += e[i].second;
    } else {
      e[out++] = e[i];
    }
  }
  e.resize(out);
}

// Rows [lo, hi) of the n x n matrix, with their diagonals.
Csr BuildRows(size_t n, int per_row, size_t lo, size_t hi) {
  std::vector<std::vector<std::pair<uint32_t, double>>> rows(hi - lo);
  ForEachEntry(n, per_row, [&](size_t r, size_t c, double v) {
    if (r >= lo && r < hi) rows[r - lo].emplace_back(static_cast<uint32_t>(c), v);
  });
  Csr m;
  m.row0 = lo;
  m.start.push_back(0);
  for (size_t i = 0; i < rows.size(); ++i) {
    CanonicalRow(rows[i]);
    double diag = 1.0;
    for (const auto& e : rows[i]) diag += std::fabs(e.second);
    rows[i].emplace_back(static_cast<uint32_t>(lo + i), diag);
    CanonicalRow(rows[i]);  // puts the diagonal in column order
    for (const auto& e : rows[i]) {
      m.col.push_back(e.first);
      m.val.push_back(e.second);
    }
    m.start.push_back(m.col.size());
    std::vector<std::pair<uint32_t, double>>().swap(rows[i]);
  }
  return m;
}

// q[i - row0] = (A p)[i] for the rows of m in [lo, hi) (global indices);
// p is indexed globally.
void SpMv(const Csr& m, const double* p, double* q, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) {
    const size_t li = i - m.row0;
    double s = 0;
    for (uint64_t k = m.start[li]; k < m.start[li + 1]; ++k) s += m.val[k] * p[m.col[k]];
    q[li] = s;
  }
}

double Dot(const double* a, const double* b, size_t lo, size_t hi) {
  double s = 0;
  for (size_t i = lo; i < hi; ++i) s += a[i] * b[i];
  return s;
}

// Result of the whole run.
struct CgResult {
  double zeta = 0;
  std::vector<double> x;  // the last normalized iterate, all n entries
};

// ---- serial ---------------------------------------------------------------

// One CG solve of A z = x from z = 0 (NPB's conj_grad without the residual).
void SerialSolve(const Csr& a, const std::vector<double>& x, std::vector<double>& z,
                 std::vector<double>& r, std::vector<double>& p, std::vector<double>& q) {
  const size_t n = x.size();
  std::fill(z.begin(), z.end(), 0.0);
  r = x;
  p = x;
  double rho = Dot(r.data(), r.data(), 0, n);
  for (int it = 0; it < kCgIterations; ++it) {
    SpMv(a, p.data(), q.data(), 0, n);
    const double alpha = rho / Dot(p.data(), q.data(), 0, n);
    for (size_t i = 0; i < n; ++i) {
      z[i] += alpha * p[i];
      r[i] -= alpha * q[i];
    }
    const double rho_new = Dot(r.data(), r.data(), 0, n);
    const double beta = rho_new / rho;
    rho = rho_new;
    for (size_t i = 0; i < n; ++i) p[i] = r[i] + beta * p[i];
  }
}

CgResult RunSerial(const Csr& a, int outer) {
  const size_t n = a.rows();
  CgResult res;
  res.x.assign(n, 1.0);
  std::vector<double> z(n), r(n), p(n), q(n);
  for (int k = 0; k < outer; ++k) {
    SerialSolve(a, res.x, z, r, p, q);
    res.zeta = 1.0 / Dot(res.x.data(), z.data(), 0, n);
    const double inv_norm = 1.0 / std::sqrt(Dot(z.data(), z.data(), 0, n));
    for (size_t i = 0; i < n; ++i) res.x[i] = z[i] * inv_norm;
  }
  return res;
}

// ---- OpenMP ---------------------------------------------------------------

// Dot product over T even chunks, partial sums added in chunk order.
double OmpDot(int threads, const double* a, const double* b, size_t n) {
  std::vector<double> part(threads);
  apps::OmpChunks(threads, [&](int t, int nt) {
    apps::Range c = apps::EvenRange(n, t, nt);
    part[t] = Dot(a, b, c.lo, c.hi);
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

void OmpSolve(int threads, const Csr& a, const std::vector<double>& x, std::vector<double>& z,
              std::vector<double>& r, std::vector<double>& p, std::vector<double>& q) {
  const int64_t n = static_cast<int64_t>(x.size());
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    z[i] = 0;
    r[i] = p[i] = x[i];
  }
  double rho = OmpDot(threads, r.data(), r.data(), n);
  for (int it = 0; it < kCgIterations; ++it) {
    apps::OmpChunks(threads, [&](int t, int nt) {
      apps::Range c = apps::EvenRange(n, t, nt);
      SpMv(a, p.data(), q.data(), c.lo, c.hi);
    });
    const double alpha = rho / OmpDot(threads, p.data(), q.data(), n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      z[i] += alpha * p[i];
      r[i] -= alpha * q[i];
    }
    const double rho_new = OmpDot(threads, r.data(), r.data(), n);
    const double beta = rho_new / rho;
    rho = rho_new;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = r[i] + beta * p[i];
  }
}

CgResult RunOmp(const Csr& a, int outer, int threads) {
  const size_t n = a.rows();
  CgResult res;
  res.x.assign(n, 1.0);
  std::vector<double> z(n), r(n), p(n), q(n);
  for (int k = 0; k < outer; ++k) {
    OmpSolve(threads, a, res.x, z, r, p, q);
    res.zeta = 1.0 / OmpDot(threads, res.x.data(), z.data(), n);
    const double inv_norm = 1.0 / std::sqrt(OmpDot(threads, z.data(), z.data(), n));
    const int64_t ln = static_cast<int64_t>(n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < ln; ++i) res.x[i] = z[i] * inv_norm;
  }
  return res;
}

// ---- gasp -----------------------------------------------------------------

// Per-phase wall time of rank 0's gasp run.
struct Phases {
  double spmv_s = 0;     // includes faulting in remote p pages
  double reduce_s = 0;   // the two dot-product barriers per step
  double publish_s = 0;  // the barrier that publishes p
};

// This rank's part: rows [lo, hi) and their private vectors (indexed from
// lo); only p (global, n entries) is shared.
struct GaspCg {
  apps::Range rows;
  Csr a;
  double* p = nullptr;  // shared, Placement::Block
  std::vector<double> x, z, r, q;
  apps::Reducer reducer;
  Phases phases;
};

// Collective: allocations, then this rank's rows of A (untimed).
void SetUpGasp(GaspCg& g, size_t n, int per_row) {
  g.p = gasp::CoNewArray<double>(n, gasp::Placement::Block());
  g.reducer = apps::Reducer::Create();
  g.rows = apps::HomeRange(g.p, n, sizeof(double));
  g.a = BuildRows(n, per_row, g.rows.lo, g.rows.hi);
  const size_t m = g.rows.size();
  g.x.assign(m, 1.0);
  g.z.resize(m);
  g.r.resize(m);
  g.q.resize(m);
}

double Elapsed(double& since) {
  const double now = apps::NowSeconds(), d = now - since;
  since = now;
  return d;
}

void GaspSolve(GaspCg& g) {
  const size_t lo = g.rows.lo, m = g.rows.size();
  double* p = g.p + lo;  // this rank's (home) part of p
  for (size_t i = 0; i < m; ++i) {
    g.z[i] = 0;
    g.r[i] = p[i] = g.x[i];
  }
  double rho = g.reducer.Sum(Dot(g.r.data(), g.r.data(), 0, m));  // also publishes p
  double t = apps::NowSeconds();
  for (int it = 0; it < kCgIterations; ++it) {
    SpMv(g.a, g.p, g.q.data(), lo, g.rows.hi);
    g.phases.spmv_s += Elapsed(t);
    const double alpha = rho / g.reducer.Sum(Dot(p, g.q.data(), 0, m));
    g.phases.reduce_s += Elapsed(t);
    for (size_t i = 0; i < m; ++i) {
      g.z[i] += alpha * p[i];
      g.r[i] -= alpha * g.q[i];
    }
    const double rho_new = g.reducer.Sum(Dot(g.r.data(), g.r.data(), 0, m));
    g.phases.reduce_s += Elapsed(t);
    const double beta = rho_new / rho;
    rho = rho_new;
    for (size_t i = 0; i < m; ++i) p[i] = g.r[i] + beta * p[i];
    // Everyone's new p before anyone's next product. (The Reducer barriers
    // above already keep this write after every rank's reads of the old p.)
    gasp::Barrier();
    g.phases.publish_s += Elapsed(t);
  }
}

double RunGasp(GaspCg& g, int outer) {
  const size_t m = g.rows.size();
  double zeta = 0;
  for (int k = 0; k < outer; ++k) {
    GaspSolve(g);
    double mine[2] = {Dot(g.x.data(), g.z.data(), 0, m), Dot(g.z.data(), g.z.data(), 0, m)};
    double sum[2];
    g.reducer.Sum(mine, sum, 2);
    zeta = 1.0 / sum[0];
    const double inv_norm = 1.0 / std::sqrt(sum[1]);
    for (size_t i = 0; i < m; ++i) g.x[i] = g.z[i] * inv_norm;
  }
  return zeta;
}

// ---- verification -----------------------------------------------------------

bool Matches(const char* what, double zeta, const double* x, const CgResult& want) {
  const size_t n = want.x.size();
  double xmax = 0;
  for (double v : want.x) xmax = std::max(xmax, std::fabs(v));
  const double dx = apps::MaxAbsDiff(
      n, [&](size_t i) { return x[i]; }, [&](size_t i) { return want.x[i]; });
  const bool ok = apps::CloseRel(zeta, want.zeta) && dx <= 1e-10 * xmax;
  if (!ok) {
    std::printf("cg: %s differs from serial: zeta %.17g vs %.17g, max |dx| %.3g\n", what, zeta,
                want.zeta, dx);
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const size_t n = apps::ArgOr(argc, argv, 1, kDefaultN);
  const int outer = static_cast<int>(apps::ArgOr(argc, argv, 2, kDefaultOuter));
  const int per_row = static_cast<int>(apps::ArgOr(argc, argv, 3, kDefaultOffdiag));
  if (n >= (1ULL << 32)) gasp::Abort(2, "cg: n must fit in 32-bit column indices");
  const int me = rt->rank(), ranks = rt->size();
  apps::Signals signals = apps::Signals::Create();

  apps::Timings t;
  CgResult serial;
  bool omp_ok = true;
  if (me == 0) {
    const Csr a = BuildRows(n, per_row, 0, n);
    // Approximate flops: per step a product (2 nnz), two dots and three
    // vector updates (10 n); per outer iteration two dots and a scaling.
    t.ops = outer * (kCgIterations * (2.0 * a.val.size() + 10.0 * n) + 5.0 * n);
    double t0 = apps::NowSeconds();
    serial = RunSerial(a, outer);
    t.serial_s = apps::NowSeconds() - t0;
    t0 = apps::NowSeconds();
    CgResult omp = RunOmp(a, outer, ranks);
    t.omp_s = apps::NowSeconds() - t0;
    omp_ok = Matches("OpenMP", omp.zeta, omp.x.data(), serial);
    signals.ready.Post(1);
  } else {
    signals.ready.Wait();
  }

  GaspCg g;
  SetUpGasp(g, n, per_row);
  gasp::Barrier();
  const double g0 = apps::NowSeconds();
  const double zeta = RunGasp(g, outer);
  gasp::Barrier();
  t.gasp_s = apps::NowSeconds() - g0;
  apps::MaybePrintStats("cg");

  // Rank 0 checks every rank's x: publish them in the (now idle) p array.
  for (size_t i = 0; i < g.rows.size(); ++i) g.p[g.rows.lo + i] = g.x[i];
  gasp::Barrier();
  bool ok = true;
  if (me == 0) {
    ok = Matches("gasp", zeta, g.p, serial) && omp_ok;
    std::printf("cg zeta=%.15e rank0: rows=%zu spmv_s=%.4f reduce_s=%.4f publish_s=%.4f\n",
                serial.zeta, g.rows.size(), g.phases.spmv_s, g.phases.reduce_s, g.phases.publish_s);
    apps::PrintResult("cg",
                      "n=" + std::to_string(n) + " outer=" + std::to_string(outer) +
                          " offdiag=" + std::to_string(per_row),
                      t, ok);
  }
  ok = signals.ShareVerdict(ok);
  const int rc = rt->Finalize();
  return ok ? rc : 1;
}

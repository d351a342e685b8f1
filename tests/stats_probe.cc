// Checks the metrics of a running job from inside it: gasp::Stats() counts
// this rank's locks, and with GASP_STATS_FILE (only %r expanded here) and
// GASP_STATS_INTERVAL each rank finds its own file rewritten during the run
// ("final":false, at least a second periodic dump) before Finalize. Keeps
// doing barriers until every rank has seen that, at most argv[1] seconds
// (default 15); rank 0 prints "verified" or FAILED.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "gasp/gasp.h"

namespace {

uint64_t Counter(const char* name) {
  for (const auto& [n, v] : gasp::Stats()) {
    if (n == name) return v;
  }
  return 0;
}

// True once the file holds a periodic dump numbered 2 or more.
bool SawPeriodicRewrite(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  static constexpr char kMark[] = "\"final\":false,\"dump\":";
  const size_t at = doc.find(kMark);
  return at != std::string::npos && std::atoi(doc.c_str() + at + sizeof(kMark) - 1) >= 2;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const char* pattern = std::getenv("GASP_STATS_FILE");
  std::string path = pattern != nullptr ? pattern : "";
  const size_t r = path.find("%r");
  if (r != std::string::npos) path.replace(r, 2, std::to_string(rt->rank()));

  gasp::GlobalLock lock = gasp::CoNewLock();
  for (int i = 0; i < 10; ++i) std::lock_guard<gasp::GlobalLock> guard(lock);
  bool ok = Counter("lock_acquires") >= 10 && gasp::Stats().front().first == "read_faults";
  if (!ok) std::printf("FAILED: rank %d: Stats() does not count its locks\n", rt->rank());

  const int wait_s = argc > 1 ? std::atoi(argv[1]) : 15;
  bool all_saw = false;
  for (int i = 0; i < wait_s * 50 && !all_saw; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    all_saw = gasp::Allreduce(SawPeriodicRewrite(path) ? 1.0 : 0.0, gasp::ReduceOp::kMin) == 1.0;
  }
  if (!all_saw && rt->rank() == 0) {
    std::printf("FAILED: not every rank saw %s rewritten during the run\n", path.c_str());
  }
  const bool job_ok = gasp::Allreduce(ok && all_saw ? 1.0 : 0.0, gasp::ReduceOp::kMin) == 1.0;
  if (rt->rank() == 0 && job_ok) std::printf("stats probe: verified\n");
  int rc = rt->Finalize();
  return job_ok ? rc : 1;
}

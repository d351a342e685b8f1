// Randomized data-race-free programs checked against a sequential model.
//
// Each epoch, every byte of two shared arrays (block- and cyclic-homed) gets a
// pseudo-random owner rank; owners write pseudo-random values to some of
// their bytes (so neighbouring bytes of one word are written by different
// ranks), then a barrier; then every rank checks every byte against the
// model. Between epochs, ranks increment random counters under random
// locks; totals are checked exactly. Exits 0 only if everything matches.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "gasp/gasp.h"

namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 12;
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 7;
  const int me = rt->rank(), n = rt->size();
  constexpr size_t kBytes = 5 * 4096 + 123;
  constexpr int kCounters = 40, kLocks = 7, kIncrements = 60;
  uint8_t* block = gasp::CoNewArray<uint8_t>(kBytes, gasp::Placement::Block());
  uint8_t* cyclic = gasp::CoNewArray<uint8_t>(kBytes, gasp::Placement::Cyclic(1));
  uint64_t* counters = gasp::CoNewArray<uint64_t>(kCounters);
  std::vector<gasp::GlobalLock> locks;
  for (int l = 0; l < kLocks; ++l) locks.push_back(gasp::CoNewLock());
  std::vector<uint8_t> model_block(kBytes, 0), model_cyclic(kBytes, 0);
  std::vector<uint64_t> model_counters(kCounters, 0);
  long errors = 0;
  for (int e = 0; e < epochs; ++e) {
    for (size_t i = 0; i < kBytes; ++i) {
      for (int which = 0; which < 2; ++which) {
        uint64_t h = Mix(seed * 1000003 + e * 7919 + i * 31 + which);
        int owner = static_cast<int>(h % n);
        if (((h >> 20) & 1) == 0) continue;  // not written this epoch
        uint8_t v = static_cast<uint8_t>(h >> 32);
        (which == 0 ? model_block : model_cyclic)[i] = v;
        if (owner == me) (which == 0 ? block : cyclic)[i] = v;
      }
    }
    // Lock-protected increments: counter c is guarded by lock c % kLocks.
    for (int k = 0; k < kIncrements; ++k) {
      for (int r = 0; r < n; ++r) {
        int c = static_cast<int>(Mix(seed + e * 131 + k * 17 + r) % kCounters);
        model_counters[c] += 1;
        if (r == me) {
          std::lock_guard<gasp::GlobalLock> g(locks[c % kLocks]);
          counters[c] += 1;
        }
      }
    }
    gasp::Barrier();
    for (size_t i = 0; i < kBytes; ++i) {
      if (block[i] != model_block[i] || cyclic[i] != model_cyclic[i]) {
        if (errors < 5) {
          std::fprintf(stderr, "rank %d epoch %d byte %zu: block %u/%u cyclic %u/%u\n", me, e, i,
                       block[i], model_block[i], cyclic[i], model_cyclic[i]);
        }
        ++errors;
      }
    }
    for (int c = 0; c < kCounters; ++c) {
      if (counters[c] != model_counters[c]) {
        if (errors < 5) {
          std::fprintf(stderr, "rank %d epoch %d counter %d: %lu, model %lu\n", me, e, c,
                       static_cast<unsigned long>(counters[c]),
                       static_cast<unsigned long>(model_counters[c]));
        }
        ++errors;
      }
    }
    gasp::Barrier();  // nobody writes the next epoch while others still check
  }
  std::printf("rank %d: %d epochs, %ld mismatches: %s\n", me, epochs, errors,
              errors == 0 ? "verified" : "FAILED");
  int rc = rt->Finalize();
  return errors == 0 ? rc : 1;
}

// A program with one planted bug, for the debugging recipes
// (docs/debugging.md, tests/debugging_test.sh): first real DSM work, so
// that the rank takes many SIGSEGVs that are gasp's own (home write faults,
// remote read faults, after every barrier again), then a load from a
// global address that was never allocated, in a function with a
// distinctive name. A debugger must stop at the bug, not at the DSM faults.
//   planted_bug [ROUNDS]   the last rank hits the bug after ROUNDS rounds
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gasp/gasp.h"

namespace {

constexpr int kPagesPerRank = 16;
constexpr int kWordsPerPage = 4096 / sizeof(long);

// The planted bug. noinline: the name must appear in backtraces.
__attribute__((noinline)) long PlantedBugReadPastTheArray(const long* array, long words) {
  const volatile long* beyond = array + words + 64 * kWordsPerPage;  // never allocated
  return *beyond;
}

// Every rank writes its own pages (home write faults) and reads everyone
// else's, one page apart (remote read faults; cyclic placement, one page
// per block, keeps prefetch from hiding them).
long Round(long* array, long words, int me, int n, int round) {
  for (long i = 0; i < words; i += kWordsPerPage) {
    if ((i / kWordsPerPage) % n == me) array[i] = round * 1000 + i;
  }
  gasp::Barrier();
  long sum = 0;
  for (long i = 0; i < words; i += kWordsPerPage) sum += array[i];
  gasp::Barrier();
  return sum;
}

uint64_t ReadFaults() {
  for (const auto& [name, value] : gasp::Stats()) {
    if (name == "read_faults") return value;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const int me = rt->rank(), n = rt->size();
  const long words = static_cast<long>(kPagesPerRank) * n * kWordsPerPage;
  long* array = static_cast<long*>(
      gasp::CoAlloc(words * sizeof(long), gasp::Placement::Cyclic(1)));
  long sum = 0;
  for (int r = 0; r < rounds; ++r) sum += Round(array, words, me, n, r);
  std::printf("rank %d: %d rounds done, checksum %ld, %lu read faults\n", me, rounds, sum,
              static_cast<unsigned long>(ReadFaults()));
  std::fflush(stdout);
  if (me == n - 1) {
    std::printf("rank %d: about to read past the array\n", me);
    std::fflush(stdout);
    long v = PlantedBugReadPastTheArray(array, words);
    std::printf("rank %d: read %ld (should not happen)\n", me, v);
    return 3;
  }
  gasp::Barrier();
  return rt->Finalize();
}

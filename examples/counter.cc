// N ranks increment one shared counter under a global lock; the final value
// is checked exactly. Also counts with a global atomic for comparison.
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "gasp/gasp.h"

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 200;
  struct Shared {
    long counter;
    uint64_t atomic_counter;
  };
  Shared* shared = gasp::CoNewArray<Shared>(1);
  static gasp::GlobalLock lock = gasp::CoNewLock();
  for (int i = 0; i < iters; ++i) {
    std::lock_guard<gasp::GlobalLock> guard(lock);  // acquire ... release
    shared->counter += 1;                           // plain load and store
  }
  for (int i = 0; i < iters; ++i) {
    gasp::AtomicFetchAdd(&shared->atomic_counter, 1, std::memory_order_relaxed);
  }
  gasp::Barrier();
  const long want = static_cast<long>(iters) * rt->size();
  const bool ok = shared->counter == want &&
                  gasp::AtomicLoad(&shared->atomic_counter) == static_cast<uint64_t>(want);
  if (rt->rank() == 0) {
    std::printf("counter = %ld (locked), %lu (atomic), expected %ld: %s\n", shared->counter,
                static_cast<unsigned long>(shared->atomic_counter), want,
                ok ? "verified" : "MISMATCH");
  }
  int rc = rt->Finalize();
  return ok ? rc : 1;
}

// First-touch placement, checked from every rank (tests/first_touch_test.sh):
//
//   placement  2 threads per rank write a pattern of pages that is not any
//              static policy's (page i by rank (i+1) % n); every rank then
//              reads every value and sees page i homed at its writer.
//   zero       a rank reads pages nobody has written (zeros, no claim);
//              another rank writes them later; after a barrier, and after a
//              lock hand-off, the reader sees the writes, and the writer is
//              the home.
//   race       every rank and thread writes its own bytes of the same fresh
//              pages at once: one home per page, agreed by all ranks, and
//              no byte lost.
//   atomic     every rank FETCH_ADDs words of fresh pages (an atomic
//              claims): the sums are exact.
// Prints "verified" per rank on success; exits non-zero otherwise.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/stats.h"
#include "gasp/gasp.h"

namespace {

constexpr size_t kPage = 4096;
int me = 0, n = 1;
long bad = 0;

void Expect(bool ok, const char* what, size_t i, long got, long want) {
  if (ok) return;
  if (++bad <= 5) {
    std::fprintf(stderr, "rank %d: %s [%zu]: got %ld, want %ld\n", me, what, i, got, want);
  }
}

void Placement() {
  const size_t pages = 8 * static_cast<size_t>(n);
  long* a = static_cast<long*>(gasp::CoAlloc(pages * kPage, gasp::Placement::FirstTouch()));
  const uint64_t claimed_before = gasp::StatGet(gasp::Counter::kPagesClaimed);
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&, t] {
      for (size_t p = 0; p < pages; ++p) {
        if (static_cast<int>((p + 1) % n) != me || static_cast<int>(p / n) % 2 != t) continue;
        for (size_t k = 0; k < kPage / sizeof(long); k += 7) a[p * 512 + k] = p * 1000 + k;
      }
    });
  }
  for (auto& t : ts) t.join();
  Expect(gasp::StatGet(gasp::Counter::kPagesClaimed) - claimed_before == pages / n,
         "pages claimed", 0,
         static_cast<long>(gasp::StatGet(gasp::Counter::kPagesClaimed) - claimed_before),
         static_cast<long>(pages / n));
  gasp::Barrier();
  for (size_t p = 0; p < pages; ++p) {
    Expect(gasp::HomeOf(a + p * 512) == static_cast<int>((p + 1) % n), "home of page", p,
           gasp::HomeOf(a + p * 512), static_cast<long>((p + 1) % n));
    for (size_t k = 0; k < kPage / sizeof(long); k += 7) {
      Expect(a[p * 512 + k] == static_cast<long>(p * 1000 + k), "placement value", p * 512 + k,
             a[p * 512 + k], static_cast<long>(p * 1000 + k));
    }
  }
  gasp::Barrier();
}

void Zero() {
  // Page 0: handed over by a barrier; page 1: by a lock. Both in a block
  // (64 aligned pages) of their own, that nobody has written before.
  constexpr uintptr_t kBlock = 64 * kPage;
  char* area = static_cast<char*>(gasp::CoAlloc(3 * kBlock, gasp::Placement::FirstTouch()));
  long* z = reinterpret_cast<long*>((reinterpret_cast<uintptr_t>(area) + kBlock) & ~(kBlock - 1));
  uint64_t* flag = gasp::CoNewArray<uint64_t>(1, gasp::Placement::OnRank(0));
  gasp::GlobalLock lock = gasp::CoNewLock();
  const int reader = 0, writer = n - 1;
  if (me == reader) {
    Expect(z[5] == 0 && z[512 + 5] == 0, "unwritten page reads zero", 5, z[5], 0);
    Expect(gasp::HomeOf(z) == -1, "no home before a write", 0, gasp::HomeOf(z), -1);
  }
  gasp::Barrier();
  if (me == writer) {
    z[5] = 55;
    std::lock_guard<gasp::GlobalLock> g(lock);
    z[512 + 5] = 66;
    *flag = 1;
  }
  if (me == reader) {
    for (;;) {
      std::lock_guard<gasp::GlobalLock> g(lock);
      if (*flag == 1) {
        Expect(z[512 + 5] == 66, "zero copy after a lock hand-off", 512 + 5, z[512 + 5], 66);
        break;
      }
    }
  }
  gasp::Barrier();
  Expect(z[5] == 55, "zero copy after a barrier", 5, z[5], 55);
  Expect(gasp::HomeOf(z) == writer, "the writer, not the reader, is the home", 0,
         gasp::HomeOf(z), writer);
  gasp::Barrier();
}

void Race() {
  constexpr size_t kPages = 8;
  const int threads = 2;
  uint8_t* r = static_cast<uint8_t*>(gasp::CoAlloc(kPages * kPage, gasp::Placement::FirstTouch()));
  int* homes = gasp::CoNewArray<int>(kPages * n, gasp::Placement::OnRank(0));
  gasp::Barrier();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      const size_t slot = static_cast<size_t>(me * threads + t);
      for (size_t p = 0; p < kPages; ++p) r[p * kPage + slot * 8] = static_cast<uint8_t>(slot + p + 1);
    });
  }
  for (auto& t : ts) t.join();
  gasp::Barrier();
  for (size_t p = 0; p < kPages; ++p) {
    homes[me * kPages + p] = gasp::HomeOf(r + p * kPage);
    for (size_t slot = 0; slot < static_cast<size_t>(n * threads); ++slot) {
      Expect(r[p * kPage + slot * 8] == static_cast<uint8_t>(slot + p + 1), "racing first writes",
             p * kPage + slot * 8, r[p * kPage + slot * 8], static_cast<long>(slot + p + 1));
    }
  }
  gasp::Barrier();
  if (me == 0) {
    for (size_t p = 0; p < kPages; ++p) {
      for (int q = 0; q < n; ++q) {
        Expect(homes[q * kPages + p] == homes[p] && homes[p] >= 0 && homes[p] < n,
               "ranks agree on the home", p, homes[q * kPages + p], homes[p]);
      }
    }
  }
  gasp::Barrier();
}

void Atomic() {
  constexpr size_t kWords = 4;  // one per page
  uint64_t* w = static_cast<uint64_t*>(gasp::CoAlloc(kWords * kPage, gasp::Placement::FirstTouch()));
  for (int i = 0; i < 100; ++i) gasp::AtomicFetchAdd(&w[((i + me) % kWords) * 512], 1);
  gasp::Barrier();
  for (size_t k = 0; k < kWords; ++k) {
    Expect(gasp::AtomicLoad(&w[k * 512]) == 25u * n, "atomic sum", k,
           static_cast<long>(gasp::AtomicLoad(&w[k * 512])), 25L * n);
    Expect(gasp::HomeOf(&w[k * 512]) >= 0, "an atomic claims", k, gasp::HomeOf(&w[k * 512]), 0);
  }
  gasp::Barrier();
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  me = rt->rank();
  n = rt->size();
  Placement();
  Zero();
  Race();
  Atomic();
  std::printf("rank %d: first touch (placement, zero copies, racing claims, atomics): %s\n", me,
              bad == 0 ? "verified" : "FAILED");
  const int rc = rt->Finalize();
  return bad == 0 ? rc : 1;
}

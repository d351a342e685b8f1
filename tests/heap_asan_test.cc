// gasp::Alloc under AddressSanitizer (--config=asan): an overflow of a heap
// block, a read past it and a use after gasp::Free are reported; in-bounds
// use is clean. Without ASan the checks are skipped (nothing poisons).
#include <cstring>

#include "gasp/gasp.h"
#include "gtest/gtest.h"

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

gasp::InitOptions SingleRank() {
  gasp::InitOptions o;
  o.settings = {{"GASP_SIZE", "1G"}, {"GASP_HEAP_SIZE", "64M"}, {"GASP_BOOT", "single"}};
  return o;
}

// The death tests re-run the test in a child (threadsafe style: gasp's
// runtime has threads), Init included.
class HeapAsanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kAsan) GTEST_SKIP() << "not an ASan build (--config=asan)";
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto rt = gasp::Init(nullptr, nullptr, SingleRank());
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    rt_ = *rt;
  }
  void TearDown() override {
    if (kAsan) rt_.Finalize();
  }
  gasp::Runtime rt_;
};

__attribute__((noinline)) void Store(char* p, long i) { p[i] = 1; }
__attribute__((noinline)) char Load(const char* p, long i) { return p[i]; }

TEST_F(HeapAsanTest, InBoundsUseIsClean) {
  for (size_t n : {1, 24, 100, 2000, 4096, 10000}) {
    char* p = static_cast<char*>(gasp::Alloc(n));
    std::memset(p, 7, n);
    EXPECT_EQ(Load(p, static_cast<long>(n) - 1), 7);
    gasp::Free(p);
  }
}

TEST_F(HeapAsanTest, OneByteOverflowOfASmallBlockIsReported) {
  char* p = static_cast<char*>(gasp::Alloc(100));
  EXPECT_DEATH(Store(p, 100), "use-after-poison");
}

TEST_F(HeapAsanTest, OverflowOfAPageSizedBlockIsReported) {
  char* p = static_cast<char*>(gasp::Alloc(8192));
  EXPECT_DEATH(Load(p, 8192), "use-after-poison");
}

TEST_F(HeapAsanTest, UseAfterFreeIsReported) {
  char* p = static_cast<char*>(gasp::Alloc(64));
  gasp::Free(p);
  EXPECT_DEATH(Store(p, 0), "use-after-poison");
}

}  // namespace

// Single-rank runtime checks of bad input at Init (the multi-rank ones are
// in faults_test.sh).
#include <sys/mman.h>

#include <cstdlib>

#include "gasp/gasp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::HasSubstr;

TEST(RuntimeInitTest, BaseOverAnExistingMappingIsAClearError) {
  const uint64_t base = 0x310000000000ull;
  void* blocker = mmap(reinterpret_cast<void*>(base + (8 << 20)), 4096, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ASSERT_NE(blocker, MAP_FAILED);
  gasp::InitOptions o;
  o.settings = {{"GASP_BASE", "0x310000000000"}, {"GASP_SIZE", "1G"}, {"GASP_HEAP_SIZE", "64M"},
                {"GASP_BOOT", "single"}};
  auto rt = gasp::Init(nullptr, nullptr, o);
  ASSERT_FALSE(rt.ok());
  EXPECT_THAT(std::string(rt.status().message()), HasSubstr("GASP_BASE=0x310000000000"));
  munmap(blocker, 4096);
}

TEST(RuntimeInitTest, MalformedAndOutOfRangeSettings) {
  for (auto [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"GASP_SIZE", "12 apples"}, {"GASP_PREFETCH_PAGES", "-1"}, {"GASP_WAIT_MODE", "nap"}}) {
    gasp::InitOptions o;
    o.settings = {{name, value}, {"GASP_BOOT", "single"}};
    auto rt = gasp::Init(nullptr, nullptr, o);
    ASSERT_FALSE(rt.ok()) << name;
    EXPECT_THAT(std::string(rt.status().message()), HasSubstr(name + "=" + value));
  }
}

TEST(RuntimeInitTest, SingleRankWorksEndToEnd) {
  gasp::InitOptions o;
  o.settings = {{"GASP_SIZE", "1G"}, {"GASP_HEAP_SIZE", "64M"}, {"GASP_BOOT", "single"}};
  auto rt = gasp::Init(nullptr, nullptr, o);
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(rt->rank(), 0);
  EXPECT_EQ(rt->size(), 1);
  int* a = gasp::CoNewArray<int>(3000);
  EXPECT_TRUE(gasp::IsGlobal(a));
  EXPECT_EQ(gasp::HomeOf(a), 0);
  for (int i = 0; i < 3000; ++i) a[i] = i;
  gasp::Barrier();
  EXPECT_EQ(a[2999], 2999);
  uint64_t* w = gasp::New<uint64_t>(5);
  EXPECT_EQ(gasp::AtomicFetchAdd(w, 3), 5u);
  EXPECT_EQ(gasp::AtomicLoad(w), 8u);
  gasp::GlobalLock l = gasp::CoNewLock();
  l.lock();
  EXPECT_FALSE(l.try_lock());  // held by this rank already
  l.unlock();
  gasp::Delete(w);
  auto big = gasp::TryCoAlloc(size_t{4} << 30);
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("raise GASP_SIZE"));
  EXPECT_EQ(rt->Finalize(), 0);
}

}  // namespace

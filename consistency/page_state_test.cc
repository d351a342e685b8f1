#include "consistency/page_state.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

TEST(PageStateTest, WordEncoding) {
  uint32_t w = MakeWord(kWrite, 77);
  EXPECT_EQ(StateOf(w), kWrite);
  EXPECT_EQ(TwinOf(w), 77u);
  EXPECT_FALSE(IsBusy(w));
  EXPECT_TRUE(IsBusy(w | kBusy));
}

TEST(PageBitmapTest, SetClearAndOrderedWalkOverSparseRange) {
  auto b = PageBitmap::Create(uint64_t{1} << 26);  // 64M pages: sparse
  ASSERT_TRUE(b.ok());
  std::vector<uint64_t> pages = {0, 1, 63, 64, 4095, 4096, 1234567, (uint64_t{1} << 26) - 1};
  for (uint64_t p : pages) EXPECT_TRUE(b->Set(p));
  EXPECT_FALSE(b->Set(63));
  std::vector<uint64_t> seen;
  b->ForEach(0, uint64_t{1} << 26, [&](uint64_t p) { seen.push_back(p); });
  EXPECT_EQ(seen, pages);
  seen.clear();
  b->ForEach(64, 4097, [&](uint64_t p) { seen.push_back(p); });
  EXPECT_EQ(seen, (std::vector<uint64_t>{64, 4095, 4096}));
  EXPECT_TRUE(b->Clear(4095));
  EXPECT_FALSE(b->Clear(4095));
  EXPECT_FALSE(b->Test(4095));
  seen.clear();
  b->ForEach(0, 5000, [&](uint64_t p) { seen.push_back(p); });
  EXPECT_EQ(seen, (std::vector<uint64_t>{0, 1, 63, 64, 4096}));
}

TEST(PageBitmapTest, ConcurrentSetters) {
  auto b = PageBitmap::Create(1 << 20);
  ASSERT_TRUE(b.ok());
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (uint64_t p = t; p < (1 << 20); p += 4) b->Set(p);
    });
  }
  for (auto& t : ts) t.join();
  uint64_t count = 0;
  b->ForEach(0, 1 << 20, [&](uint64_t) { ++count; });
  EXPECT_EQ(count, uint64_t{1} << 20);
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

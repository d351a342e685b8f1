#include "gas/heap.h"

#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "gas/range.h"

namespace gasp {
namespace gas {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kBegin = 0x1000000;

TEST(HeapTest, AllocationsAreAlignedDisjointAndReusable) {
  HeapAllocator h(kBegin, 1 << 20);
  std::set<uint64_t> seen;
  for (size_t bytes : {1, 16, 17, 100, 2048, 2049, 10000}) {
    auto a = h.Allocate(bytes, 8);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(h.Contains(*a));
    EXPECT_EQ(*a % 8, 0u);
    EXPECT_TRUE(seen.insert(*a).second);
  }
  auto big = h.Allocate(8192, 4096);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(*big % 4096, 0u);
  ASSERT_TRUE(h.Free(*big).ok());
  auto again = h.Allocate(8192, 4096);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *big);
}

TEST(HeapTest, BadFreesAreErrors) {
  HeapAllocator h(kBegin, 1 << 20);
  auto a = h.Allocate(64, 8);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(h.Free(*a + 8).ok());
  ASSERT_TRUE(h.Free(*a).ok());
  absl::Status s = h.Free(*a);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("double free"));
  EXPECT_FALSE(h.Allocate(8, 3).ok());
}

TEST(HeapTest, ExhaustionNamesTheSetting) {
  HeapAllocator h(kBegin, 64 * 1024);
  ASSERT_TRUE(h.Allocate(32 * 1024, 8).ok());
  auto a = h.Allocate(40 * 1024, 8);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("GASP_HEAP_SIZE"));
}

TEST(HeapTest, ThreadsAllocateConcurrently) {
  HeapAllocator h(kBegin, 64 << 20);
  std::vector<std::vector<uint64_t>> got(4);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) got[t].push_back(*h.Allocate(24 + (i % 5) * 100, 8));
    });
  }
  for (auto& t : ts) t.join();
  std::set<uint64_t> all;
  for (auto& v : got) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 8000u);
}

}  // namespace
}  // namespace gas
}  // namespace gasp

#include "gas/segment.h"

#include <map>

#include "gtest/gtest.h"

namespace gasp {
namespace gas {
namespace {

TEST(SegmentTest, BlockPolicySplitsContiguously) {
  Segment s{.offset = 10 * kPageSize, .num_pages = 10, .policy = HomePolicy::kBlock, .nranks = 4};
  // share = ceil(10/4) = 3 -> ranks 0,0,0,1,1,1,2,2,2,3
  int expect[10] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 3};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.HomeOfPage(10 + i), expect[i]) << i;
  EXPECT_EQ(s.SameHomeRun(10), 3u);
  EXPECT_EQ(s.SameHomeRun(11), 2u);
  EXPECT_EQ(s.SameHomeRun(19), 1u);
}

TEST(SegmentTest, CyclicAndExplicit) {
  Segment c{.offset = 0, .num_pages = 9, .policy = HomePolicy::kCyclic, .block_pages = 2,
            .nranks = 3};
  int expect[9] = {0, 0, 1, 1, 2, 2, 0, 0, 1};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(c.HomeOfPage(i), expect[i]) << i;
  std::map<uint64_t, uint64_t> runs;
  c.ForEachHomeRun(0, [&](uint64_t p, uint64_t n) { runs[p] = n; });
  EXPECT_EQ(runs, (std::map<uint64_t, uint64_t>{{0, 2}, {6, 2}}));
  Segment e{.offset = 0, .num_pages = 5, .policy = HomePolicy::kExplicit, .home_rank = 2,
            .nranks = 3};
  EXPECT_EQ(e.HomeOfPage(4), 2);
  EXPECT_EQ(e.SameHomeRun(1), 4u);
}

TEST(SegmentTest, FirstTouchFollowsWhatIsKnown) {
  std::atomic<int32_t> touch[6];
  const int32_t homes[6] = {-1, 1, 1, 0, -1, 1};
  for (int i = 0; i < 6; ++i) touch[i].store(homes[i]);
  Segment f{.offset = 4 * kPageSize, .num_pages = 6, .policy = HomePolicy::kFirstTouch,
            .nranks = 2};
  f.touch = touch;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f.HomeOfPage(4 + i), homes[i]) << i;
  EXPECT_EQ(f.SameHomeRun(4), 1u);  // unknown pages form their own runs
  EXPECT_EQ(f.SameHomeRun(5), 2u);
  EXPECT_EQ(f.SameHomeRun(9), 1u);
  std::map<uint64_t, uint64_t> runs;
  f.ForEachHomeRun(1, [&](uint64_t p, uint64_t n) { runs[p] = n; });
  EXPECT_EQ(runs, (std::map<uint64_t, uint64_t>{{5, 2}, {9, 1}}));
  touch[4].store(1);  // learned later: runs grow
  EXPECT_EQ(f.SameHomeRun(8), 2u);
}

TEST(SegmentTest, TableFindsAndRejectsOverlap) {
  SegmentTable t(4);
  ASSERT_TRUE(t.Add({.offset = 0, .num_pages = 2, .nranks = 1}).ok());
  ASSERT_TRUE(t.Add({.offset = 8 * kPageSize, .num_pages = 2, .nranks = 1}).ok());
  EXPECT_NE(t.FindPage(1), nullptr);
  EXPECT_EQ(t.FindPage(2), nullptr);  // gap between segments
  EXPECT_EQ(t.FindPage(9)->offset, 8 * kPageSize);
  EXPECT_FALSE(t.Add({.offset = kPageSize, .num_pages = 1, .nranks = 1}).ok());
  ASSERT_TRUE(t.Add({.offset = 20 * kPageSize, .num_pages = 1, .nranks = 1}).ok());
  ASSERT_TRUE(t.Add({.offset = 30 * kPageSize, .num_pages = 1, .nranks = 1}).ok());
  auto full = t.Add({.offset = 40 * kPageSize, .num_pages = 1, .nranks = 1});
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace gas
}  // namespace gasp

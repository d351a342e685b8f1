#include "rpcgen/sent_pages.h"

#include "gtest/gtest.h"

namespace gasp {
namespace rpc {
namespace {

TEST(SentPagesTest, RemembersPerRankAndPage) {
  SentPages s;
  EXPECT_FALSE(s.SameAsLast(1, 10, 0xabc));  // first time: full
  EXPECT_TRUE(s.SameAsLast(1, 10, 0xabc));   // unchanged
  EXPECT_FALSE(s.SameAsLast(2, 10, 0xabc));  // another rank has not seen it
  EXPECT_FALSE(s.SameAsLast(1, 10, 0xdef));  // changed
  EXPECT_TRUE(s.SameAsLast(1, 10, 0xdef));
  EXPECT_FALSE(s.SameAsLast(1, 11, 0));      // a zero hash is never "the same"
  EXPECT_FALSE(s.SameAsLast(1, 11, 0));
  EXPECT_EQ(s.size(), 3u);
}

TEST(SentPagesTest, BoundedByForgettingTheGrowingRank) {
  SentPages s(/*capacity=*/4);
  for (uint64_t p = 0; p < 3; ++p) EXPECT_FALSE(s.SameAsLast(1, p, 100 + p));
  EXPECT_FALSE(s.SameAsLast(2, 0, 7));
  EXPECT_EQ(s.size(), 4u);
  // Rank 2 grows past the capacity: its own table goes, rank 1's stays.
  EXPECT_FALSE(s.SameAsLast(2, 1, 8));
  EXPECT_LE(s.size(), 4u);
  EXPECT_FALSE(s.SameAsLast(2, 0, 7));  // forgotten: sent in full again
  for (uint64_t p = 0; p < 3; ++p) EXPECT_TRUE(s.SameAsLast(1, p, 100 + p));
  // However many pages go out, to however many ranks, the table stays
  // bounded.
  for (uint64_t p = 0; p < 1000; ++p) {
    s.SameAsLast(3 + static_cast<int>(p % 7), p, p + 1);
    ASSERT_LE(s.size(), 4u);
  }
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

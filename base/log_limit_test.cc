#include "base/log_limit.h"

#include "gtest/gtest.h"

namespace gasp {
namespace {

TEST(LogLimiterTest, OneLinePerIntervalWithTheCountHeldBack) {
  LogLimiter limit(absl::Seconds(10));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  uint64_t held = 99;
  ASSERT_TRUE(limit.Allow(t0, &held));
  EXPECT_EQ(held, 0u);
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(limit.Allow(t0 + absl::Seconds(i), &held));
  ASSERT_TRUE(limit.Allow(t0 + absl::Seconds(10), &held));
  EXPECT_EQ(held, 5u);
  EXPECT_FALSE(limit.Allow(t0 + absl::Seconds(19), &held));
  ASSERT_TRUE(limit.Allow(t0 + absl::Seconds(25), &held));
  EXPECT_EQ(held, 1u);
}

}  // namespace
}  // namespace gasp

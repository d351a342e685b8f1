#include "base/wait.h"

#include <thread>

#include "gtest/gtest.h"

namespace gasp {
namespace {

class WaitTest : public ::testing::TestWithParam<WaitMode> {};

TEST_P(WaitTest, WakesOnChangeAndTimesOut) {
  SetWaitPolicy(GetParam(), 5);
  std::atomic<uint32_t> word{0};
  EXPECT_FALSE(WaitWhileEqual(&word, 0, absl::Now() + absl::Milliseconds(20)));
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(10));
    word.store(1);
    WakeAll(&word);
  });
  EXPECT_TRUE(WaitWhileEqual(&word, 0, absl::Now() + absl::Seconds(10)));
  EXPECT_EQ(word.load(), 1u);
  t.join();
  SetWaitPolicy(WaitMode::kAdaptive, 20);
}

INSTANTIATE_TEST_SUITE_P(Modes, WaitTest,
                         ::testing::Values(WaitMode::kAdaptive, WaitMode::kPoll, WaitMode::kBlock));

}  // namespace
}  // namespace gasp

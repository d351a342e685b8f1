#include "rpcgen/auto_policy.h"

#include "gtest/gtest.h"

namespace gasp {
namespace rpc {
namespace {

TEST(AutoPolicy, CachedPicksDataUncachedPicksFunction) {
  AutoPolicy p;
  CallFeatures cached{100, 0, 0};
  CallFeatures cold{100, 100, 0};
  EXPECT_TRUE(p.ChooseData(cached));
  EXPECT_FALSE(p.ChooseData(cold)) << "8 faults x 30 us vs one 150 us RPC: the prior says function";
}

TEST(AutoPolicy, LearnsFromMeasurements) {
  AutoPolicy p;
  CallFeatures cold{10, 10, 0};
  // Measured: fetches are cheap (1 us each, a call touches 8 pages), RPCs
  // are slow (400 us): data shipping wins even cold.
  for (int i = 0; i < 40; ++i) {
    p.RecordData(cold, 8, absl::Microseconds(2 + 8 * 1));
    p.RecordFunction(cold, absl::Microseconds(400));
  }
  EXPECT_NEAR(p.PredictDataUs(cold), 2 + 8, 1.5);
  EXPECT_NEAR(p.PredictFunctionUs(cold), 400, 5);
  int data = 0;
  for (int i = 0; i < AutoPolicy::kExplorePeriod; ++i) data += p.ChooseData(cold) ? 1 : 0;
  EXPECT_EQ(data, AutoPolicy::kExplorePeriod - 1) << "one exploring call per period";
}

TEST(AutoPolicy, BundleCostScalesWithPages) {
  AutoPolicy p;
  for (int i = 0; i < 40; ++i) {
    p.RecordFunction(CallFeatures{0, 0, 0}, absl::Microseconds(100));
    p.RecordFunction(CallFeatures{50, 0, 50}, absl::Microseconds(100 + 50 * 3));
  }
  EXPECT_NEAR(p.PredictFunctionUs(CallFeatures{20, 0, 20}), 100 + 20 * 3, 10);
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

// Queue-node names: what lock words, links and grants carry, read back
// from memory other ranks write.
#include "consistency/queue_lock.h"

#include <cstddef>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

TEST(QueueLockTest, NamesRoundTripAndAreNeverZero) {
  for (int rank : {0, 1, 7, 65535}) {
    for (uint32_t index : {0u, 1u, 1023u, (1u << 20) - 1}) {
      const uint64_t name = NodeName({rank, index});
      EXPECT_NE(name, kNoNode);
      // The low half alone is non-zero: waiters futex-wait on it.
      EXPECT_NE(name & 0xffffffffu, 0u);
      NodeId id;
      ASSERT_TRUE(DecodeNodeName(name, 65536, 1u << 20, &id)) << rank << " " << index;
      EXPECT_EQ(id.rank, rank);
      EXPECT_EQ(id.index, index);
    }
  }
  EXPECT_EQ(NodeName({0, 0}), 1u);
  EXPECT_EQ(NodeName({2, 5}), (uint64_t{5} << 32) | 3);
}

TEST(QueueLockTest, DecodeRefusesWhatNamesNoNode) {
  NodeId id;
  EXPECT_FALSE(DecodeNodeName(kNoNode, 4, 16, &id));
  EXPECT_FALSE(DecodeNodeName(NodeName({4, 0}), 4, 16, &id));   // rank out of range
  EXPECT_FALSE(DecodeNodeName(NodeName({0, 16}), 4, 16, &id));  // index beyond the pool
  EXPECT_FALSE(DecodeNodeName(uint64_t{7} << 32, 4, 16, &id));   // high half only: rank + 1 = 0
  EXPECT_FALSE(DecodeNodeName(~uint64_t{0}, 4, 16, &id));
  EXPECT_TRUE(DecodeNodeName(NodeName({3, 15}), 4, 16, &id));
}

TEST(QueueLockTest, NodeLayoutIsWhatRemoteWritesAssume) {
  // Other ranks WRITE 8 bytes at these offsets and READ the whole node.
  EXPECT_EQ(sizeof(QueueNode), 64u);
  EXPECT_EQ(offsetof(QueueNode, grant), 0u);
  EXPECT_EQ(offsetof(QueueNode, next), 8u);
  EXPECT_EQ(offsetof(QueueNode, pred), 16u);
  EXPECT_EQ(offsetof(QueueNode, lock), 24u);
  EXPECT_EQ(offsetof(QueueNode, state), 32u);
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

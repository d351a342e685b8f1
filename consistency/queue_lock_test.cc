// Queue-node names, lock words and grants: what other ranks write into
// lock words and nodes, and read back.
#include "consistency/queue_lock.h"

#include <cstddef>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

constexpr int kMaxRanks = (1 << 24) - 1;

TEST(QueueLockTest, NamesRoundTripAndAreNeverZero) {
  for (int rank : {0, 1, 7, 65535, kMaxRanks - 1}) {
    for (uint32_t index : {0u, 1u, 1023u, (1u << 20) - 1}) {
      const uint64_t name = NodeName({rank, index});
      EXPECT_NE(name, kNoNode);
      // The low half alone is non-zero: waiters futex-wait on it.
      EXPECT_NE(name & 0xffffffffu, 0u);
      // Names leave the lock word's top bits to the announcements.
      EXPECT_EQ(name & ~kNameMask, 0u);
      NodeId id;
      ASSERT_TRUE(DecodeNodeName(name, kMaxRanks, 1u << 20, &id)) << rank << " " << index;
      EXPECT_EQ(id.rank, rank);
      EXPECT_EQ(id.index, index);
    }
  }
  EXPECT_EQ(NodeName({0, 0}), 1u);
  EXPECT_EQ(NodeName({2, 5}), (uint64_t{5} << 24) | 3);
}

TEST(QueueLockTest, DecodeRefusesWhatNamesNoNode) {
  NodeId id;
  EXPECT_FALSE(DecodeNodeName(kNoNode, 4, 16, &id));
  EXPECT_FALSE(DecodeNodeName(NodeName({4, 0}), 4, 16, &id));   // rank out of range
  EXPECT_FALSE(DecodeNodeName(NodeName({0, 16}), 4, 16, &id));  // index beyond the pool
  EXPECT_FALSE(DecodeNodeName(uint64_t{7} << 24, 4, 16, &id));   // index only: rank + 1 = 0
  EXPECT_FALSE(DecodeNodeName(NodeName({1, 1}) | kAnnounceOne, 4, 16, &id));  // not a name
  EXPECT_FALSE(DecodeNodeName(~uint64_t{0}, 4, 16, &id));
  EXPECT_TRUE(DecodeNodeName(NodeName({3, 15}), 4, 16, &id));
}

TEST(QueueLockTest, LockWordCarriesTailAndAnnouncements) {
  const uint64_t name = NodeName({5, 9});
  uint64_t word = name;
  EXPECT_EQ(TailName(word), name);
  EXPECT_EQ(Announced(word), 0u);
  word += 3 * kAnnounceOne;  // three FETCH_ADDs of threads whose swap failed
  EXPECT_EQ(TailName(word), name);
  EXPECT_EQ(Announced(word), 3u);
  // An announced thread's swap keeps the others' announcements and
  // withdraws its own; an unlock frees the tail and keeps them all.
  const uint64_t mine = NodeName({0, 1});
  EXPECT_EQ(((word & ~kNameMask) - kAnnounceOne) | mine, 2 * kAnnounceOne + mine);
  EXPECT_EQ(word & ~kNameMask, 3 * kAnnounceOne);
  EXPECT_EQ(Announced(word + (uint64_t{0} - kAnnounceOne)), 2u);  // a withdrawal by FETCH_ADD
  // The largest count fits: 2^20 - 1 threads.
  EXPECT_EQ(Announced(~kNameMask), (uint64_t{1} << 20) - 1);
}

TEST(QueueLockTest, GrantWordIsNeverZeroInItsLowHalf) {
  for (uint64_t tail : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 31, (uint64_t{1} << 62) + 5}) {
    EXPECT_NE(GrantWord(tail) & 0xffffffffu, 0u);
    EXPECT_EQ(GrantValue(GrantWord(tail)), tail);
  }
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

// The tcp backend's remote keys: 64 random bits per registration, and
// nothing but the exact key of a live region opens it.
#include "transport/tcp_region_table.h"

#include <cstdint>
#include <set>

#include "gtest/gtest.h"

namespace gasp {
namespace transport {
namespace tcp {
namespace {

TEST(RegionTableTest, KeysAreSixtyFourRandomBitsAndNeverRepeat) {
  RegionTable table(8);
  uint64_t word = 0;
  std::set<uint64_t> keys;
  uint64_t high_bits_seen = 0, low_bits_seen = 0;
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<Region> r = table.Register(&word, sizeof(word), kRemoteAll);
    ASSERT_TRUE(r.ok()) << r.status();
    keys.insert(r->rkey.packed);
    high_bits_seen |= r->rkey.packed >> 32;
    low_bits_seen |= r->rkey.packed & 0xffffffffu;
    ASSERT_TRUE(table.Deregister(*r, absl::Now(), true).ok());
  }
  EXPECT_EQ(keys.size(), 200u) << "re-registering the same memory must give a fresh key";
  // Slot ids no longer show in the key: the upper half is as random as the lower.
  EXPECT_EQ(high_bits_seen, 0xffffffffu);
  EXPECT_EQ(low_bits_seen, 0xffffffffu);
}

TEST(RegionTableTest, OnlyTheExactKeyOfALiveRegionOpensIt) {
  RegionTable table(4);
  uint64_t word = 7;
  const uint64_t addr = reinterpret_cast<uint64_t>(&word);
  absl::StatusOr<Region> r = table.Register(&word, sizeof(word), kRemoteAll);
  ASSERT_TRUE(r.ok());
  uint8_t* p = nullptr;
  uint32_t pin = 0;
  ASSERT_EQ(table.Pin(r->rkey.packed, addr, 8, kRemoteRead, &p, &pin), CompletionCode::kSuccess);
  EXPECT_EQ(p, reinterpret_cast<uint8_t*>(&word));
  table.Unpin(pin);
  for (int bit = 0; bit < 64; ++bit) {
    const uint64_t wrong = r->rkey.packed ^ (uint64_t{1} << bit);
    EXPECT_EQ(table.Pin(wrong, addr, 8, kRemoteRead, &p, &pin), CompletionCode::kRemoteAccessError)
        << "bit " << bit;
    uint64_t old = 0;
    EXPECT_EQ(table.Atomic(OpType::kFetchAdd, wrong, addr, 0, 1, &old),
              CompletionCode::kRemoteAccessError);
  }
  EXPECT_EQ(word, 7u);
  ASSERT_TRUE(table.Deregister(*r, absl::Now(), true).ok());
  EXPECT_EQ(table.Pin(r->rkey.packed, addr, 8, kRemoteRead, &p, &pin),
            CompletionCode::kRemoteAccessError)
      << "a deregistered region's key must be refused";
  EXPECT_FALSE(table.Deregister(*r, absl::Now(), true).ok()) << "twice";
}

TEST(RegionTableTest, PinsHoldDeregistrationUntilReleased) {
  RegionTable table(2);
  uint64_t word = 0;
  absl::StatusOr<Region> r = table.Register(&word, sizeof(word), kRemoteAll);
  ASSERT_TRUE(r.ok());
  uint8_t* p = nullptr;
  uint32_t pin = 0;
  ASSERT_EQ(table.Pin(r->rkey.packed, reinterpret_cast<uint64_t>(&word), 8, kRemoteWrite, &p, &pin),
            CompletionCode::kSuccess);
  absl::Status s = table.Deregister(*r, absl::Now() + absl::Milliseconds(50), true);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  table.Unpin(pin);
}

}  // namespace
}  // namespace tcp
}  // namespace transport
}  // namespace gasp

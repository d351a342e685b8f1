#include "base/crypto.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace gasp {
namespace {

absl::Span<const uint8_t> Bytes(absl::string_view s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// RFC 4231, test case 2.
TEST(HmacSha256, MatchesRfc4231) {
  Mac m = HmacSha256(Bytes("Jefe"), {"what do ya want ", "for nothing?"});
  EXPECT_EQ(HexOf(m), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 4231, test case 6: a key longer than the block size is hashed first.
TEST(HmacSha256, LongKey) {
  std::string key(131, '\xaa');
  Mac m = HmacSha256(Bytes(key), {"Test Using Larger Than Block-Size Key - Hash Key First"});
  EXPECT_EQ(HexOf(m), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256, KeyAndDataMatter) {
  Mac a = HmacSha256(Bytes("k1"), {"data"});
  EXPECT_FALSE(MacEqual(a.data(), HmacSha256(Bytes("k2"), {"data"}).data()));
  EXPECT_FALSE(MacEqual(a.data(), HmacSha256(Bytes("k1"), {"datb"}).data()));
  EXPECT_TRUE(MacEqual(a.data(), HmacSha256(Bytes("k1"), {"da", "ta"}).data()));
}

TEST(MacEqual, EveryByteCounts) {
  Mac a = HmacSha256(Bytes("k"), {"x"});
  for (size_t i = 0; i < kMacBytes; ++i) {
    Mac b = a;
    b[i] ^= 0x80;
    EXPECT_FALSE(MacEqual(a.data(), b.data())) << i;
  }
}

TEST(Random, DistinctValues) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(RandomU64());
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Le64, LittleEndian) {
  EXPECT_EQ(Le64(0x0102030405060708ull), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
}

}  // namespace
}  // namespace gasp

#include "runtime/key_grant.h"

#include "gtest/gtest.h"

namespace gasp {
namespace rt {
namespace {

KeyGrant Sample() {
  KeyGrant g;
  g.epoch = 7;
  g.domain = 3;
  g.access = 1;
  g.entries = {{0x1000, 0xabcdef0012345678ull}, {0x200000, 0}};
  return g;
}

TEST(KeyGrant, RoundTrip) {
  std::vector<uint8_t> b = EncodeKeyGrant(Sample());
  EXPECT_EQ(b.size(), kKeyGrantHeaderBytes + 2 * 16);
  absl::StatusOr<KeyGrant> g = DecodeKeyGrant(b);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->epoch, 7u);
  EXPECT_EQ(g->domain, 3u);
  EXPECT_EQ(g->access, 1);
  ASSERT_EQ(g->entries.size(), 2u);
  EXPECT_EQ(g->entries[0].key, 0xabcdef0012345678ull);
  EXPECT_EQ(g->entries[1].segment_offset, 0x200000u);
}

TEST(KeyGrant, RejectsEveryTruncationAndCorruption) {
  const std::vector<uint8_t> good = EncodeKeyGrant(Sample());
  for (size_t n = 0; n < good.size(); ++n) {
    absl::StatusOr<KeyGrant> g = DecodeKeyGrant(absl::MakeConstSpan(good.data(), n));
    EXPECT_EQ(g.status().code(), absl::StatusCode::kDataLoss) << "truncated to " << n;
  }
  auto corrupt = [&](size_t at, uint8_t v) {
    std::vector<uint8_t> b = good;
    b[at] = v;
    return DecodeKeyGrant(b).status();
  };
  EXPECT_EQ(corrupt(0, 'X').code(), absl::StatusCode::kDataLoss) << "magic";
  EXPECT_EQ(corrupt(4, 9).code(), absl::StatusCode::kDataLoss) << "version";
  EXPECT_EQ(corrupt(6, 1).code(), absl::StatusCode::kDataLoss) << "reserved";
  EXPECT_EQ(corrupt(20, 2).code(), absl::StatusCode::kDataLoss) << "access";
  EXPECT_EQ(corrupt(22, 1).code(), absl::StatusCode::kDataLoss) << "reserved";
  EXPECT_EQ(corrupt(24, 3).code(), absl::StatusCode::kDataLoss) << "count vs size";
  EXPECT_EQ(corrupt(kKeyGrantHeaderBytes, 1).code(), absl::StatusCode::kDataLoss) << "alignment";
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_EQ(DecodeKeyGrant(longer).status().code(), absl::StatusCode::kDataLoss);
  std::vector<uint8_t> huge = good;
  huge[27] = 0x7f;  // count far above the limit
  EXPECT_EQ(DecodeKeyGrant(huge).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace rt
}  // namespace gasp

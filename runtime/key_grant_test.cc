#include "runtime/key_grant.h"

#include <string>

#include "gtest/gtest.h"

namespace gasp {
namespace rt {
namespace {

KeyGrant Sample() {
  KeyGrant g = MakeKeyGrant(7, 3, 1);
  KeyGrantEntry* e = g.add_entries();
  e->set_segment_offset(0x1000);
  e->set_key(0xabcdef0012345678ull);
  e = g.add_entries();
  e->set_segment_offset(0x200000);
  e->set_key(0);
  return g;
}

absl::StatusCode DecodeCode(const KeyGrant& g) {
  return DecodeKeyGrant(EncodeKeyGrant(g)).status().code();
}

TEST(KeyGrant, RoundTrip) {
  absl::StatusOr<KeyGrant> g = DecodeKeyGrant(EncodeKeyGrant(Sample()));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->epoch(), 7u);
  EXPECT_EQ(g->domain(), 3u);
  EXPECT_EQ(g->access(), 1u);
  ASSERT_EQ(g->entries_size(), 2);
  EXPECT_EQ(g->entries(0).key(), 0xabcdef0012345678ull);
  EXPECT_EQ(g->entries(1).segment_offset(), 0x200000u);
}

TEST(KeyGrant, RejectsGarbageAndCorruption) {
  const std::vector<uint8_t> good = EncodeKeyGrant(Sample());
  // Cut inside the magic, and inside the last entry: never a valid message.
  EXPECT_EQ(DecodeKeyGrant(absl::MakeConstSpan(good.data(), 3)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeKeyGrant(absl::MakeConstSpan(good.data(), good.size() - 1)).status().code(),
            absl::StatusCode::kDataLoss);
  std::vector<uint8_t> longer = good;
  longer.push_back(0xff);  // a tag without its value
  EXPECT_EQ(DecodeKeyGrant(longer).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeKeyGrant({}).status().code(), absl::StatusCode::kDataLoss) << "no magic";

  KeyGrant g = Sample();
  g.set_magic(0x12345678);
  EXPECT_EQ(DecodeCode(g), absl::StatusCode::kDataLoss) << "magic";
  g = Sample();
  g.set_version(1);
  EXPECT_EQ(DecodeCode(g), absl::StatusCode::kDataLoss) << "version";
  g = Sample();
  g.set_access(2);
  EXPECT_EQ(DecodeCode(g), absl::StatusCode::kDataLoss) << "access";
  g = Sample();
  g.mutable_entries(1)->set_segment_offset(0x200001);
  EXPECT_EQ(DecodeCode(g), absl::StatusCode::kDataLoss) << "alignment";
  g = Sample();
  for (int i = 0; i < kMaxKeyGrantEntries; ++i) g.add_entries();
  EXPECT_EQ(DecodeCode(g), absl::StatusCode::kDataLoss) << "count";
}

}  // namespace
}  // namespace rt
}  // namespace gasp

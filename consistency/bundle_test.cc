#include "consistency/bundle.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

std::string Sample() {
  std::vector<uint8_t> a(kBundlePageBytes, 0), b(kBundlePageBytes, 0);
  a[0] = 1;
  a[4095] = 2;
  BundleWriter w;
  w.Add(3, a.data());
  w.Add(4, b.data());  // zero page
  w.Add(100, a.data());
  EXPECT_EQ(w.pages(), 3u);
  return w.Finish();
}

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(Bundle, RoundTripWithZeroPages) {
  const std::string b = Sample();
  EXPECT_EQ(b.size(), 16 + 3 * 16 + 2 * kBundlePageBytes) << "the zero page carries no bytes";
  auto pages = DecodeBundle(Bytes(b));
  ASSERT_TRUE(pages.ok()) << pages.status();
  ASSERT_EQ(pages->size(), 3u);
  EXPECT_EQ((*pages)[0].page, 3u);
  ASSERT_NE((*pages)[0].data, nullptr);
  EXPECT_EQ((*pages)[0].data[0], 1);
  EXPECT_EQ((*pages)[0].data[4095], 2);
  EXPECT_EQ((*pages)[1].data, nullptr);
  EXPECT_EQ((*pages)[2].page, 100u);
  BundleWriter empty;
  auto none = DecodeBundle(Bytes(empty.Finish()));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(Bundle, UnchangedPagesCarryOnlyTheirHash) {
  std::vector<uint8_t> a(kBundlePageBytes, 3);
  BundleWriter w;
  w.Add(1, a.data());
  w.AddUnchanged(2, PageHash(a.data()));
  std::string b = w.Finish();
  EXPECT_EQ(b.size(), 16 + 16 + kBundlePageBytes + 16 + 8);
  auto pages = DecodeBundle(Bytes(b));
  ASSERT_TRUE(pages.ok()) << pages.status();
  ASSERT_EQ(pages->size(), 2u);
  EXPECT_FALSE((*pages)[0].unchanged);
  EXPECT_TRUE((*pages)[1].unchanged);
  EXPECT_EQ((*pages)[1].hash, PageHash(a.data()));
  EXPECT_EQ((*pages)[1].data, nullptr);
  std::string bad = b;
  bad[bad.size() - 8 - 4] = 9;  // length of the unchanged entry
  EXPECT_EQ(DecodeBundle(Bytes(bad)).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Bundle, PageHashSeesEveryByte) {
  std::vector<uint8_t> a(kBundlePageBytes, 0);
  const uint64_t h0 = PageHash(a.data());
  EXPECT_EQ(h0, PageHash(a.data())) << "deterministic";
  for (size_t at : {size_t{0}, size_t{7}, size_t{4095}, size_t{2048}}) {
    a[at] ^= 1;
    EXPECT_NE(PageHash(a.data()), h0) << "byte " << at;
    a[at] ^= 1;
  }
}

TEST(Bundle, RejectsEveryTruncation) {
  const std::string b = Sample();
  for (size_t n = 0; n < b.size(); n += (n < 64 ? 1 : 509)) {
    EXPECT_EQ(DecodeBundle(Bytes(b.substr(0, n))).status().code(), absl::StatusCode::kDataLoss)
        << "truncated to " << n;
  }
  EXPECT_EQ(DecodeBundle(Bytes(b + "x")).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Bundle, RejectsCorruption) {
  const std::string good = Sample();
  auto corrupt = [&](size_t at, char v) {
    std::string b = good;
    b[at] = v;
    return DecodeBundle(Bytes(b)).status().code();
  };
  EXPECT_EQ(corrupt(0, 'X'), absl::StatusCode::kDataLoss) << "magic";
  EXPECT_EQ(corrupt(4, 2), absl::StatusCode::kDataLoss) << "version";
  EXPECT_EQ(corrupt(8, 9), absl::StatusCode::kDataLoss) << "count";
  EXPECT_EQ(corrupt(11, 0x7f), absl::StatusCode::kDataLoss) << "huge count";
  EXPECT_EQ(corrupt(16, 5), absl::StatusCode::kDataLoss) << "page order (5 > 4 next)";
  EXPECT_EQ(corrupt(24, 7), absl::StatusCode::kDataLoss) << "kind";
  EXPECT_EQ(corrupt(28, 1), absl::StatusCode::kDataLoss) << "length";
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

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
  EXPECT_EQ((*pages)[1].kind, BundleKind::kZeros);
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
  EXPECT_EQ((*pages)[0].kind, BundleKind::kFull);
  EXPECT_EQ((*pages)[1].kind, BundleKind::kUnchanged);
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

TEST(Bundle, PageHashIsTheSameWithAndWithoutAvx2) {
  // Ranks on CPUs with and without AVX2 must agree on every hash.
  std::vector<uint8_t> a(kBundlePageBytes);
  uint64_t x = 1;
  for (int round = 0; round < 200; ++round) {
    for (auto& c : a) c = static_cast<uint8_t>((x = x * 6364136223846793005ull + 1) >> 56);
    if (round % 3 == 0) std::fill(a.begin() + round * 7, a.end(), round % 2 ? 0xff : 0);
    ASSERT_EQ(PageHash(a.data()), PageHashPortable(a.data())) << "round " << round;
  }
  // Fixed values: a PageHash that changes makes ranks of two builds
  // refuse each other's unchanged pages and diffs (safe, but slower).
  std::vector<uint8_t> zeros(kBundlePageBytes, 0), ramp(kBundlePageBytes);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<uint8_t>(i * 7 + 3);
  EXPECT_EQ(PageHash(zeros.data()), 0x9c477779dfb57f1bull);
  EXPECT_EQ(PageHash(ramp.data()), 0x3ca26c801d22d839ull);
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

std::vector<uint8_t> Pattern(uint8_t seed) {
  std::vector<uint8_t> p(kBundlePageBytes);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 5));
  return p;
}

// A bundle with one diff of `now` against `base`.
std::string DiffBundle(uint64_t page, const std::vector<uint8_t>& base,
                       const std::vector<uint8_t>& now) {
  BundleWriter w;
  EXPECT_TRUE(w.AddDiff(page, base.data(), PageHash(base.data()), now.data(), PageHash(now.data())));
  return w.Finish();
}

TEST(BundleDiff, RoundTripIsByteExact) {
  const std::vector<uint8_t> base = Pattern(1);
  std::vector<uint8_t> now = base;
  // A 10k-node tree's change: one byte in each 32-byte node.
  for (size_t i = 8; i < kBundlePageBytes; i += 32) now[i] += 1;
  now[0] ^= 0xff;                     // first byte of the page
  now[kBundlePageBytes - 1] ^= 0x01;  // last byte
  for (size_t i = 2000; i < 2300; ++i) now[i] = static_cast<uint8_t>(~now[i]);  // a long run
  const std::string b = DiffBundle(9, base, now);
  EXPECT_LT(b.size(), 16 + 16 + kBundlePageBytes / 2) << "much smaller than the page";
  auto pages = DecodeBundle(Bytes(b));
  ASSERT_TRUE(pages.ok()) << pages.status();
  ASSERT_EQ(pages->size(), 1u);
  const BundledPage& p = (*pages)[0];
  EXPECT_EQ(p.kind, BundleKind::kDiff);
  EXPECT_EQ(p.page, 9u);
  EXPECT_EQ(p.base_hash, PageHash(base.data()));
  EXPECT_EQ(p.hash, PageHash(now.data()));
  std::vector<uint8_t> out(kBundlePageBytes);
  ASSERT_TRUE(PatchedPage(p, base.data(), out.data()));
  EXPECT_EQ(out, now) << "every byte";
  // Only the changed bytes travel: the runs are exactly where the pages differ.
  std::vector<uint8_t> patched = base;
  std::vector<DiffRun> runs;
  ApplyBundleDiff(p, patched.data(), &runs);
  EXPECT_EQ(patched, now);
  size_t carried = 0;
  for (const DiffRun& r : runs) {
    carried += r.length;
    for (uint32_t k = 0; k < r.length; ++k) EXPECT_NE(base[r.offset + k], now[r.offset + k]);
  }
  size_t differing = 0;
  for (size_t i = 0; i < kBundlePageBytes; ++i) differing += base[i] != now[i];
  EXPECT_EQ(carried, differing);
}

TEST(BundleDiff, NotSentWhenNotSmallerOrNothingChanged) {
  const std::vector<uint8_t> base = Pattern(1);
  std::vector<uint8_t> every = base, alternate = base;
  for (auto& c : every) c ^= 0x80;
  for (size_t i = 0; i < kBundlePageBytes; i += 2) alternate[i] ^= 1;  // 2048 one-byte runs
  BundleWriter w;
  EXPECT_FALSE(w.AddDiff(1, base.data(), PageHash(base.data()), every.data(), 0));
  EXPECT_FALSE(w.AddDiff(2, base.data(), PageHash(base.data()), alternate.data(), 0));
  EXPECT_FALSE(w.AddDiff(3, base.data(), PageHash(base.data()), base.data(), 0));
  EXPECT_EQ(w.pages(), 0u) << "nothing added";
  w.Add(1, every.data());
  auto pages = DecodeBundle(Bytes(w.Finish()));
  ASSERT_TRUE(pages.ok());
  EXPECT_EQ((*pages)[0].kind, BundleKind::kFull);
}

TEST(BundleDiff, ReceiverRefusesAnotherCopyOrAWrongResult) {
  const std::vector<uint8_t> base = Pattern(1);
  std::vector<uint8_t> now = base;
  now[77] ^= 4;
  const std::string b = DiffBundle(4, base, now);
  auto pages = DecodeBundle(Bytes(b));
  ASSERT_TRUE(pages.ok());
  std::vector<uint8_t> out(kBundlePageBytes);
  // The receiver's copy is not the one the diff was made against (it
  // fetched a newer page from the home, say): refused, to be dropped.
  std::vector<uint8_t> other = base;
  other[3000] ^= 1;
  EXPECT_FALSE(PatchedPage((*pages)[0], other.data(), out.data()));
  // The result does not hash to the new hash (a corrupted run byte, or a
  // sender that got it wrong): refused.
  std::string corrupt = b;
  corrupt[corrupt.size() - 1] ^= 0x10;  // the last (only) changed byte
  auto bad = DecodeBundle(Bytes(corrupt));
  ASSERT_TRUE(bad.ok()) << "well formed, only wrong";
  EXPECT_FALSE(PatchedPage((*bad)[0], base.data(), out.data()));
  std::string wrong_hash = b;
  wrong_hash[16 + 16 + 8] ^= 1;  // new hash
  EXPECT_FALSE(PatchedPage((*DecodeBundle(Bytes(wrong_hash)))[0], base.data(), out.data()));
  EXPECT_TRUE(PatchedPage((*pages)[0], base.data(), out.data()));
  EXPECT_EQ(out, now);
  // A copy that already has the new contents (the receiver wrote them
  // itself and released them home) is kept as it is.
  std::fill(out.begin(), out.end(), 0);
  EXPECT_TRUE(PatchedPage((*pages)[0], now.data(), out.data()));
  EXPECT_EQ(out, now);
}

// Encoded entry of one diff with the given run bytes (after the hashes).
std::string RawDiff(const std::string& runs) {
  std::string b(16, '\0');
  b[0] = 0x47, b[1] = 0x50, b[2] = 0x47, b[3] = 0x42;  // "GPGB"
  b[4] = 1;                                           // version
  b[8] = 1;                                           // one page
  std::string e(16, '\0');
  e[0] = 5;  // page
  e[8] = 3;  // kind
  const uint32_t length = static_cast<uint32_t>(16 + runs.size());
  std::memcpy(&e[12], &length, 4);
  return b + e + std::string(16, 'h') + runs;
}

TEST(BundleDiff, DecoderIsStrict) {
  using S = std::string;
  auto code = [](const S& runs) { return DecodeBundle(Bytes(RawDiff(runs))).status().code(); };
  struct Case {
    S runs;
    bool ok;
    const char* what;
  };
  const Case cases[] = {
      {S("\x00\x01\x07", 3), true, "one byte at offset 0"},
      {S("\x05\x02pq\x01\x01r", 7), true, "two runs apart"},
      {S("\xff\x1f\x01z", 4), true, "last byte (skip 4095)"},
      {S("", 0), false, "no runs"},
      {S("\x00\x00", 2), false, "empty run"},
      {S("\x05\x02pq\x00\x01r", 7), false, "adjacent runs"},
      {S("\x00\x03pq", 4), false, "truncated run"},
      {S("\x00\x01y\x05", 4), false, "truncated header"},
      {S("\x80\x00\x01y", 4), false, "overlong varint"},
      {S("\x80\x80\x01\x01y", 5), false, "3-byte varint"},
      {S("\x80\x20\x01y", 4), false, "skip 4096: outside"},
      {S("\xff\x1f\x02pq", 5), false, "past the page end"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(code(c.runs), c.ok ? absl::StatusCode::kOk : absl::StatusCode::kDataLoss) << c.what;
  }
  // Not smaller than a page: refused (the writer sends the page instead).
  S big;
  for (int i = 0; i < 2048; ++i) big += S(i == 0 ? "\x00\x01x" : "\x01\x01x", 3);
  EXPECT_EQ(code(big.substr(0, 3 * 1359)), absl::StatusCode::kOk) << "4093 bytes";
  EXPECT_EQ(code(big.substr(0, 3 * 1360)), absl::StatusCode::kDataLoss) << "4096 bytes";
  // Every truncation of a good diff bundle is refused.
  std::vector<uint8_t> base = Pattern(2), now = Pattern(2);
  for (size_t i = 0; i < kBundlePageBytes; i += 100) now[i] ^= 0x11;
  const std::string good = DiffBundle(3, base, now);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_EQ(DecodeBundle(Bytes(good.substr(0, n))).status().code(), absl::StatusCode::kDataLoss)
        << "truncated to " << n;
  }
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

#include "rpcgen/sent_pages.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace gasp {
namespace rpc {
namespace {

using consistency::BundledPage;
using consistency::BundleKind;
using consistency::BundleWriter;
using consistency::kBundlePageBytes;
using consistency::PageHash;
using Sent = SentPages::Sent;

std::vector<uint8_t> Page(uint64_t seed) {
  std::vector<uint8_t> p(kBundlePageBytes);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(seed * 31 + i * 7 + (i >> 6));
  return p;
}

// Sends one page through `s` and returns what went, decoded.
struct OnePage {
  Sent sent;
  BundledPage decoded;
  std::string bytes;  // owns what `decoded` points into
};
OnePage Send(SentPages* s, int rank, uint64_t page, const std::vector<uint8_t>& data) {
  OnePage o;
  BundleWriter w;
  o.sent = s->Add(rank, page, data.data(), &w);
  EXPECT_EQ(w.pages(), 1u);
  o.bytes = w.Finish();
  auto pages = consistency::DecodeBundle(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(o.bytes.data()), o.bytes.size()));
  EXPECT_TRUE(pages.ok()) << pages.status();
  if (pages.ok() && pages->size() == 1) o.decoded = (*pages)[0];
  return o;
}

TEST(SentPagesTest, FullThenUnchangedThenDiffPerRankAndPage) {
  SentPages s;
  std::vector<uint8_t> a = Page(1);
  OnePage first = Send(&s, 1, 10, a);
  EXPECT_EQ(first.sent, Sent::kFull);
  EXPECT_EQ(first.decoded.kind, BundleKind::kFull);
  OnePage again = Send(&s, 1, 10, a);
  EXPECT_EQ(again.sent, Sent::kUnchanged);
  EXPECT_EQ(again.decoded.hash, PageHash(a.data()));
  EXPECT_EQ(Send(&s, 2, 10, a).sent, Sent::kFull) << "another rank has not seen it";
  // A few bytes change: sent as a diff against what rank 1 holds.
  std::vector<uint8_t> b = a;
  b[100] ^= 1;
  b[4000] ^= 2;
  OnePage diff = Send(&s, 1, 10, b);
  ASSERT_EQ(diff.sent, Sent::kDiff);
  EXPECT_EQ(diff.decoded.base_hash, PageHash(a.data()));
  EXPECT_EQ(diff.decoded.hash, PageHash(b.data()));
  std::vector<uint8_t> out(kBundlePageBytes);
  ASSERT_TRUE(consistency::PatchedPage(diff.decoded, a.data(), out.data()));
  EXPECT_EQ(out, b);
  EXPECT_EQ(Send(&s, 1, 10, b).sent, Sent::kUnchanged);
  // Every byte changes: the diff would not be smaller, the page goes in full.
  std::vector<uint8_t> c = b;
  for (auto& x : c) x ^= 0x55;
  EXPECT_EQ(Send(&s, 1, 10, c).sent, Sent::kFull);
  // ... and the next small change is a diff against that page.
  std::vector<uint8_t> d = c;
  d[0] ^= 1;
  OnePage after = Send(&s, 1, 10, d);
  ASSERT_EQ(after.sent, Sent::kDiff);
  ASSERT_TRUE(consistency::PatchedPage(after.decoded, c.data(), out.data()));
  EXPECT_EQ(out, d);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.copies(), 2u);
}

TEST(SentPagesTest, ZeroPagesAndZeroHashes) {
  SentPages s;
  std::vector<uint8_t> zeros(kBundlePageBytes, 0);
  EXPECT_EQ(Send(&s, 1, 3, zeros).decoded.kind, BundleKind::kZeros);
  EXPECT_EQ(Send(&s, 1, 3, zeros).sent, Sent::kUnchanged);
  std::vector<uint8_t> one = zeros;
  one[9] = 9;
  OnePage diff = Send(&s, 1, 3, one);
  ASSERT_EQ(diff.sent, Sent::kDiff);
  std::vector<uint8_t> out(kBundlePageBytes);
  EXPECT_TRUE(consistency::PatchedPage(diff.decoded, zeros.data(), out.data()));
  EXPECT_EQ(out, one);
}

TEST(SentPagesTest, WithoutCopiesChangedPagesGoInFull) {
  SentPages s(SentPages::kDefaultCapacity, /*copy_pages=*/0);
  std::vector<uint8_t> a = Page(1), b = Page(1);
  b[5] ^= 1;
  EXPECT_EQ(Send(&s, 1, 7, a).sent, Sent::kFull);
  EXPECT_EQ(Send(&s, 1, 7, a).sent, Sent::kUnchanged) << "hashes still work";
  EXPECT_EQ(Send(&s, 1, 7, b).sent, Sent::kFull);
  EXPECT_EQ(s.copies(), 0u);
}

TEST(SentPagesTest, CopiesAreBoundedAndTheLeastRecentGoesFirst) {
  SentPages s(SentPages::kDefaultCapacity, /*copy_pages=*/3);
  std::vector<std::vector<uint8_t>> pages;
  for (uint64_t p = 0; p < 4; ++p) pages.push_back(Page(p));
  for (uint64_t p = 0; p < 3; ++p) EXPECT_EQ(Send(&s, 1, p, pages[p]).sent, Sent::kFull);
  EXPECT_EQ(s.copies(), 3u);
  // Page 3 needs a copy: one of 0..2 gives its up.
  EXPECT_EQ(Send(&s, 1, 3, pages[3]).sent, Sent::kFull);
  EXPECT_EQ(s.copies(), 3u);
  int lost = 0;
  for (uint64_t p = 0; p < 3; ++p) {
    std::vector<uint8_t> changed = pages[p];
    changed[p + 1] ^= 1;
    const Sent how = Send(&s, 1, p, changed).sent;
    EXPECT_NE(how, Sent::kUnchanged);
    lost += how == Sent::kFull;
    pages[p] = changed;
  }
  EXPECT_GE(lost, 1) << "one page had no copy left to diff against";
  EXPECT_EQ(s.copies(), 3u) << "never more than the bound";
  // Unchanged pages are found by their hash even without a copy.
  for (uint64_t p = 0; p < 4; ++p) EXPECT_EQ(Send(&s, 1, p, pages[p]).sent, Sent::kUnchanged);
  for (int round = 0; round < 50; ++round) {
    for (uint64_t p = 0; p < 4; ++p) {
      pages[p][round] ^= 0x10;
      Send(&s, 1 + round % 3, p, pages[p]);
      ASSERT_LE(s.copies(), 3u);
    }
  }
}

TEST(SentPagesTest, HashesBoundedByForgettingTheGrowingRank) {
  SentPages s(/*capacity=*/4, /*copy_pages=*/2);
  std::vector<uint8_t> a = Page(1);
  for (uint64_t p = 0; p < 3; ++p) EXPECT_EQ(Send(&s, 1, p, a).sent, Sent::kFull);
  EXPECT_EQ(Send(&s, 2, 0, a).sent, Sent::kFull);
  EXPECT_EQ(s.size(), 4u);
  // Rank 2 grows past the capacity: its own table goes, rank 1's stays.
  EXPECT_EQ(Send(&s, 2, 1, a).sent, Sent::kFull);
  EXPECT_LE(s.size(), 4u);
  EXPECT_EQ(Send(&s, 2, 0, a).sent, Sent::kFull) << "forgotten: sent in full again";
  for (uint64_t p = 0; p < 3; ++p) EXPECT_EQ(Send(&s, 1, p, a).sent, Sent::kUnchanged);
  // However many pages go out, to however many ranks, both stay bounded.
  for (uint64_t p = 0; p < 1000; ++p) {
    std::vector<uint8_t> x = Page(p);
    Send(&s, 3 + static_cast<int>(p % 7), p % 13, x);
    ASSERT_LE(s.size(), 4u);
    ASSERT_LE(s.copies(), 2u);
  }
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

#include "consistency/diff.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

// Reference: byte-by-byte maximal runs.
std::vector<DiffRun> Slow(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  std::vector<DiffRun> out;
  for (size_t i = 0; i < a.size();) {
    if (a[i] == b[i]) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < a.size() && a[j] != b[j]) ++j;
    out.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(j - i)});
    i = j;
  }
  return out;
}

TEST(DiffTest, IdenticalPagesHaveNoRuns) {
  std::vector<uint8_t> a(4096, 7), b(4096, 7);
  DiffRun runs[4];
  EXPECT_EQ(ComputeDiff(a.data(), b.data(), 4096, runs, 4), 0u);
}

TEST(DiffTest, NeverIncludesUnchangedNeighbourBytes) {
  std::vector<uint8_t> twin(4096, 0), page(4096, 0);
  page[9] = 1;   // one byte inside a word
  page[11] = 1;  // same word, byte 9 and 11 changed, 10 not
  page[4095] = 5;
  DiffRun runs[8];
  size_t n = ComputeDiff(page.data(), twin.data(), 4096, runs, 8);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(runs[0].offset, 9u);
  EXPECT_EQ(runs[0].length, 1u);
  EXPECT_EQ(runs[1].offset, 11u);
  EXPECT_EQ(runs[1].length, 1u);
  EXPECT_EQ(runs[2].offset, 4095u);
}

TEST(DiffTest, RunsSpanWordBoundaries) {
  std::vector<uint8_t> twin(4096, 0), page(4096, 0);
  for (int i = 5; i < 30; ++i) page[i] = 9;
  DiffRun runs[4];
  ASSERT_EQ(ComputeDiff(page.data(), twin.data(), 4096, runs, 4), 1u);
  EXPECT_EQ(runs[0].offset, 5u);
  EXPECT_EQ(runs[0].length, 25u);
}

TEST(DiffTest, MatchesByteReferenceOnRandomPages) {
  std::mt19937 rng(42);
  for (int iter = 0; iter < 500; ++iter) {
    std::vector<uint8_t> twin(4096), page;
    for (auto& b : twin) b = static_cast<uint8_t>(rng());
    page = twin;
    int changes = static_cast<int>(rng() % 200);
    for (int c = 0; c < changes; ++c) {
      size_t pos = rng() % 4096, len = 1 + rng() % 16;
      for (size_t i = pos; i < std::min<size_t>(4096, pos + len); ++i) page[i] ^= 1 + rng() % 255;
    }
    std::vector<DiffRun> want = Slow(page, twin);
    std::vector<DiffRun> got(MaxDiffRuns(4096));
    size_t n = ComputeDiff(page.data(), twin.data(), 4096, got.data(), got.size());
    ASSERT_EQ(n, want.size());
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(got[i].offset, want[i].offset);
      EXPECT_EQ(got[i].length, want[i].length);
    }
  }
}

TEST(DiffTest, MatchesByteReferenceAtAnyLengthAndDensity) {
  // Lengths that are not a multiple of the 64-byte blocks, and changes
  // from sparse single bytes to whole blocks, so runs start, end and cross
  // block and word boundaries everywhere.
  std::mt19937 rng(7);
  for (size_t length : {size_t{8}, size_t{56}, size_t{64}, size_t{72}, size_t{200}, size_t{4088},
                        size_t{4096}}) {
    for (int iter = 0; iter < 200; ++iter) {
      std::vector<uint8_t> twin(length), page;
      for (auto& b : twin) b = static_cast<uint8_t>(rng());
      page = twin;
      const int density = static_cast<int>(rng() % 5);  // 0: few bytes .. 4: most bytes
      for (size_t i = 0; i < length; ++i) {
        if (static_cast<int>(rng() % 8) < density * 2 - (iter % 2)) page[i] ^= 1 + rng() % 255;
      }
      if (iter % 7 == 0) {  // a long run across several blocks
        const size_t pos = rng() % length, len = rng() % 300;
        for (size_t i = pos; i < std::min(length, pos + len); ++i) page[i] = ~twin[i];
      }
      std::vector<DiffRun> want = Slow(page, twin);
      std::vector<DiffRun> got(MaxDiffRuns(length));
      const size_t n = ComputeDiff(page.data(), twin.data(), length, got.data(), got.size());
      ASSERT_EQ(n, want.size()) << "length " << length << " iter " << iter;
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i].offset, want[i].offset) << "length " << length << " run " << i;
        ASSERT_EQ(got[i].length, want[i].length) << "length " << length << " run " << i;
      }
    }
  }
}

TEST(DiffTest, WorstCaseAlternatingBytesAndTruncation) {
  std::vector<uint8_t> twin(4096, 0), page(4096, 0);
  for (size_t i = 0; i < 4096; i += 2) page[i] = 1;
  std::vector<DiffRun> runs(MaxDiffRuns(4096));
  EXPECT_EQ(ComputeDiff(page.data(), twin.data(), 4096, runs.data(), runs.size()), 2048u);
  DiffRun few[3];
  EXPECT_EQ(ComputeDiff(page.data(), twin.data(), 4096, few, 3), 2048u);  // count, 3 written
  EXPECT_EQ(few[2].offset, 4u);
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

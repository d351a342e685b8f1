#include "consistency/diff_wire.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

constexpr uint64_t kRange = 16 * 4096;

// Applies every record of `msg` to a copy of `before`.
std::vector<uint8_t> Apply(absl::Span<const uint8_t> msg, std::vector<uint8_t> before) {
  auto m = DecodeDiff(msg, kRange);
  EXPECT_TRUE(m.ok()) << m.status();
  if (m.ok()) {
    for (const DiffRecord& r : m->records) ApplyRecord(r, before.data());
  }
  return before;
}

// A page where `changed(i)` bytes differ from the twin; the diff of it,
// applied to a home that holds other ranks' bytes everywhere else, must
// write exactly the changed bytes.
void CheckPage(bool (*changed)(size_t)) {
  std::vector<uint8_t> twin(4096), page(4096);
  for (size_t i = 0; i < 4096; ++i) {
    twin[i] = static_cast<uint8_t>(i * 7);
    page[i] = changed(i) ? static_cast<uint8_t>(~twin[i]) : twin[i];
  }
  std::vector<DiffRun> runs(MaxDiffRuns(4096));
  runs.resize(ComputeDiff(page.data(), twin.data(), 4096, runs.data(), runs.size()));
  DiffWriter w;
  w.Start(77, 0xabc);
  w.AddPage(3 * 4096, page.data(), runs);
  std::vector<uint8_t> home(kRange, 0x55);
  std::vector<uint8_t> after = Apply(w.Finish(), home);
  for (size_t i = 0; i < kRange; ++i) {
    const bool in_page = i >= 3 * 4096 && i < 4 * 4096;
    const uint8_t want = in_page && changed(i - 3 * 4096) ? page[i - 3 * 4096] : 0x55;
    ASSERT_EQ(after[i], want) << "byte " << i;
  }
}

// The same through word masks: identical effect at the home, and the
// summary agrees with ComputeDiff.
void CheckPageMasks(bool (*changed)(size_t)) {
  std::vector<uint8_t> twin(4096), page(4096);
  for (size_t i = 0; i < 4096; ++i) {
    twin[i] = static_cast<uint8_t>(i * 7);
    page[i] = changed(i) ? static_cast<uint8_t>(~twin[i]) : twin[i];
  }
  std::vector<DiffRun> runs(MaxDiffRuns(4096));
  runs.resize(ComputeDiff(page.data(), twin.data(), 4096, runs.data(), runs.size()));
  uint8_t masks[512];
  const WordMaskSummary sum = ComputeWordMasks(page.data(), twin.data(), 4096, masks);
  size_t changed_bytes = 0;
  for (const DiffRun& r : runs) changed_bytes += r.length;
  EXPECT_EQ(sum.runs, runs.size());
  EXPECT_EQ(sum.changed_bytes, changed_bytes);
  std::vector<DiffRun> again(MaxDiffRuns(4096));
  again.resize(RunsFromWordMasks(masks, 512, again.data(), again.size()));
  ASSERT_EQ(again.size(), runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(again[i].offset, runs[i].offset);
    EXPECT_EQ(again[i].length, runs[i].length);
  }
  DiffWriter w;
  w.Start(5, 6);
  w.AddPageMasks(2 * 4096, page.data(), masks, sum);
  std::vector<uint8_t> home(kRange, 0x55);
  std::vector<uint8_t> after = Apply(w.Finish(), home);
  for (size_t i = 0; i < kRange; ++i) {
    const bool in_page = i >= 2 * 4096 && i < 3 * 4096;
    const uint8_t want = in_page && changed(i - 2 * 4096) ? page[i - 2 * 4096] : 0x55;
    ASSERT_EQ(after[i], want) << "byte " << i;
  }
}

TEST(DiffWireTest, WordMasksRoundTrip) {
  CheckPageMasks([](size_t i) { return i % 700 == 3; });         // sparse: run records
  CheckPageMasks([](size_t i) { return i % 8 < 6; });            // x[i] += small: masked
  CheckPageMasks([](size_t i) { return i % 2 == 1; });           // alternate bytes
  CheckPageMasks([](size_t i) { return i >= 100 && i < 4000; }); // one long run
  CheckPageMasks([](size_t i) { return i == 0 || i == 4095; });  // the page's edges
  CheckPageMasks([](size_t i) { return (i * 2654435761u) % 5 == 0; });
}

TEST(DiffWireTest, SparseRunsRoundTrip) {
  CheckPage([](size_t i) { return i % 700 == 3; });
}

TEST(DiffWireTest, DenseSmallRunsUseAMaskAndRoundTrip) {
  // x[i] += small on doubles: 6 of every 8 bytes change.
  CheckPage([](size_t i) { return i % 8 < 6; });
  std::vector<uint8_t> twin(4096, 0), page(4096, 0);
  for (size_t i = 0; i < 4096; ++i) page[i] = i % 8 < 6 ? 1 : 0;
  std::vector<DiffRun> runs(MaxDiffRuns(4096));
  runs.resize(ComputeDiff(page.data(), twin.data(), 4096, runs.data(), runs.size()));
  DiffWriter w;
  w.Start(1, 1);
  w.AddPage(0, page.data(), runs);
  EXPECT_EQ(w.records(), 1u);                       // one masked record
  EXPECT_LT(w.size(), 24u + 12u + 512u + 3072u + 1u);  // not 512 run records
}

TEST(DiffWireTest, WholePageAndSubWordNeighbours) {
  CheckPage([](size_t) { return true; });
  CheckPage([](size_t i) { return i % 2 == 1; });  // every other byte: neighbours untouched
}

TEST(DiffWireTest, HeaderFields) {
  DiffWriter w;
  w.Start(12345, 0xfeed);
  auto m = DecodeDiff(w.Finish(), kRange);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->sequence, 12345u);
  EXPECT_EQ(m->rkey, 0xfeedu);
  EXPECT_TRUE(m->records.empty());
}

std::vector<uint8_t> OneRecord(uint64_t offset, uint16_t length, uint8_t kind, uint8_t pad,
                               size_t data) {
  DiffWriter w;
  w.Start(1, 2);
  std::vector<uint8_t> out(w.Finish().begin(), w.Finish().end());
  const uint32_t one = 1;
  std::memcpy(out.data() + 4, &one, 4);
  const size_t at = out.size();
  out.resize(at + 12 + data, 0xff);
  std::memcpy(out.data() + at, &offset, 8);
  std::memcpy(out.data() + at + 8, &length, 2);
  out[at + 10] = kind;
  out[at + 11] = pad;
  return out;
}

TEST(DiffWireTest, RefusesBadInput) {
  EXPECT_TRUE(DecodeDiff(OneRecord(0, 8, 0, 0, 8), kRange).ok());
  EXPECT_FALSE(DecodeDiff(OneRecord(0, 8, 0, 0, 7), kRange).ok());        // truncated
  EXPECT_FALSE(DecodeDiff(OneRecord(0, 8, 0, 0, 9), kRange).ok());        // trailing
  EXPECT_FALSE(DecodeDiff(OneRecord(0, 8, 2, 0, 8), kRange).ok());        // kind
  EXPECT_FALSE(DecodeDiff(OneRecord(0, 8, 0, 1, 8), kRange).ok());        // pad
  EXPECT_FALSE(DecodeDiff(OneRecord(0, 0, 0, 0, 0), kRange).ok());        // empty
  EXPECT_FALSE(DecodeDiff(OneRecord(4090, 8, 0, 0, 8), kRange).ok());     // crosses a page
  EXPECT_FALSE(DecodeDiff(OneRecord(kRange, 8, 0, 0, 8), kRange).ok());   // outside
  EXPECT_FALSE(DecodeDiff(OneRecord(~uint64_t{0} - 3, 8, 0, 0, 8), kRange).ok());  // wraps
  // Masked: 4 bytes -> 1 mask byte 0xff has bits past the length.
  EXPECT_FALSE(DecodeDiff(OneRecord(0, 4, 1, 0, 1 + 8), kRange).ok());
  std::vector<uint8_t> bad = OneRecord(0, 8, 0, 0, 8);
  bad[0] ^= 1;
  EXPECT_FALSE(DecodeDiff(bad, kRange).ok());  // magic
  for (size_t n = 0; n < OneRecord(0, 8, 0, 0, 8).size(); ++n) {
    std::vector<uint8_t> t = OneRecord(0, 8, 0, 0, 8);
    t.resize(n);
    EXPECT_FALSE(DecodeDiff(t, kRange).ok()) << n;
  }
}

TEST(DiffWireTest, AckRoundTrip) {
  auto a = DecodeDiffAck(EncodeDiffAck(9, 3, "refused: key"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->sequence, 9u);
  EXPECT_EQ(a->status, 3u);
  EXPECT_EQ(a->reason, "refused: key");
  EXPECT_FALSE(DecodeDiffAck(std::vector<uint8_t>(8, 0)).ok());
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

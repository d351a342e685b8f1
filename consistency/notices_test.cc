#include "consistency/notices.h"

#include <cmath>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

TEST(NoticesTest, AppendPageMergesAscendingPages) {
  std::vector<PageRun> runs;
  for (uint64_t p : {3, 4, 5, 9, 10, 12}) AppendPage(p, &runs);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0], (PageRun{3, 3}));
  EXPECT_EQ(runs[1], (PageRun{9, 2}));
  EXPECT_EQ(runs[2], (PageRun{12, 1}));
}

BarrierMessage Sample() {
  BarrierMessage m;
  m.epoch = 42;
  m.distance = 2;
  m.stamp.Note("CoAlloc(4096 bytes, block)");
  m.contributions.push_back({1, {{0, 3}, {10, 1}}, {2.5, -0.0}});
  m.contributions.push_back({3, {}});
  m.contributions.push_back({0, {{99, 1}}});
  return m;
}

TEST(NoticesTest, BarrierMessageRoundTrips) {
  const std::vector<uint8_t> bytes = EncodeBarrierMessage(Sample());
  auto m = DecodeBarrierMessage(bytes, 4, 100);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->epoch, 42u);
  EXPECT_EQ(m->distance, 2u);
  ASSERT_EQ(m->contributions.size(), 3u);
  EXPECT_EQ(m->contributions[0].origin, 1);
  EXPECT_EQ(m->contributions[0].runs, (std::vector<PageRun>{{0, 3}, {10, 1}}));
  EXPECT_TRUE(m->contributions[1].runs.empty());
  EXPECT_EQ(m->contributions[2].runs, (std::vector<PageRun>{{99, 1}}));
  ASSERT_EQ(m->contributions[0].values.size(), 2u);
  EXPECT_EQ(m->contributions[0].values[0], 2.5);
  EXPECT_TRUE(std::signbit(m->contributions[0].values[1]));  // bit-exact
  EXPECT_TRUE(m->contributions[1].values.empty());
  EXPECT_EQ(m->stamp.seq, 1u);
  EXPECT_EQ(m->stamp.last, "CoAlloc(4096 bytes, block)");
  EXPECT_TRUE(CompareStamps(m->stamp, Sample().stamp, 0, "rank 1").ok());
}

TEST(NoticesTest, StampsNameBothCalls) {
  CollectiveStamp a, b;
  for (int i = 0; i < 6; ++i) {
    a.Note("Barrier()");
    b.Note("Barrier()");
  }
  a.Note("CoAlloc(8192 bytes, block)");
  b.Note("CoAlloc(4096 bytes, block)");
  absl::Status s = CompareStamps(a, b, 0, "rank 1 (h:1)");
  EXPECT_TRUE(absl::IsFailedPrecondition(s));
  EXPECT_NE(s.message().find("rank 1 (h:1) called CoAlloc(4096 bytes, block) where this rank "
                             "(rank 0) called CoAlloc(8192 bytes, block) (collective #7)"),
            std::string::npos)
      << s;
  // An earlier difference is still caught by the running signature.
  CollectiveStamp c, d;
  c.Note("CoNewDomain(\"x\")");
  d.Note("CoNewDomain(\"y\")");
  c.Note("Barrier()");
  d.Note("Barrier()");
  EXPECT_FALSE(CompareStamps(c, d, 0, "rank 1").ok());
  // Barrier against Finalize.
  CollectiveStamp e, f;
  e.Note("Barrier()");
  f.Note("Finalize()");
  EXPECT_NE(CompareStamps(e, f, 0, "rank 1").message().find("called Finalize()"),
            std::string::npos);
}

TEST(NoticesTest, BarrierMessageRefusesBadInput) {
  const std::vector<uint8_t> good = EncodeBarrierMessage(Sample());
  // Every truncation is refused.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeBarrierMessage(absl::MakeConstSpan(good.data(), n), 4, 100).ok()) << n;
  }
  // Trailing bytes.
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_FALSE(DecodeBarrierMessage(longer, 4, 100).ok());
  // Origin out of range for a 3-rank job; pages out of a 99-page range.
  EXPECT_FALSE(DecodeBarrierMessage(good, 3, 100).ok());
  EXPECT_FALSE(DecodeBarrierMessage(good, 4, 99).ok());
  // Repeated origin, empty run, huge count that would wrap.
  BarrierMessage m = Sample();
  m.contributions[1].origin = 1;
  EXPECT_FALSE(DecodeBarrierMessage(EncodeBarrierMessage(m), 4, 100).ok());
  m = Sample();
  m.contributions[0].runs[0].count = 0;
  EXPECT_FALSE(DecodeBarrierMessage(EncodeBarrierMessage(m), 4, 100).ok());
  m = Sample();
  m.contributions[0].runs[0] = {5, ~uint64_t{0}};
  EXPECT_FALSE(DecodeBarrierMessage(EncodeBarrierMessage(m), 4, 100).ok());
  // Too many reduction values.
  m = Sample();
  m.contributions[2].values.assign(kMaxReduceValues + 1, 1.0);
  EXPECT_FALSE(DecodeBarrierMessage(EncodeBarrierMessage(m), 4, 100).ok());
  m.contributions[2].values.resize(kMaxReduceValues);
  EXPECT_TRUE(DecodeBarrierMessage(EncodeBarrierMessage(m), 4, 100).ok());
}

TEST(NoticesTest, LogEntriesRoundTripAndSplitLongRuns) {
  std::vector<LogEntry> out;
  const PageRun runs[] = {{7, 2}, {100, kMaxLogRunPages + 5}};
  AppendLogEntries(3, runs, &out);
  for (LogEntry& e : out) SealLogEntry(9, &e);
  ASSERT_EQ(out.size(), 3u);
  const uint64_t pages = 100 + kMaxLogRunPages + 5;
  int origin = -1;
  PageRun r;
  ASSERT_EQ(DecodeLogEntry(out[0], 9, 4, pages, &origin, &r), EntryState::kValid);
  EXPECT_EQ(origin, 3);
  EXPECT_EQ(r, (PageRun{7, 2}));
  ASSERT_EQ(DecodeLogEntry(out[1], 9, 4, pages, &origin, &r), EntryState::kValid);
  EXPECT_EQ(r, (PageRun{100, kMaxLogRunPages}));
  ASSERT_EQ(DecodeLogEntry(out[2], 9, 4, pages, &origin, &r), EntryState::kValid);
  EXPECT_EQ(r, (PageRun{100 + kMaxLogRunPages, 5}));
}

TEST(NoticesTest, LogEntryOfAnotherLapOrTornIsNotYetWritten) {
  std::vector<LogEntry> out;
  const PageRun runs[] = {{7, 2}};
  AppendLogEntries(3, runs, &out);
  SealLogEntry(9, &out[0]);
  int origin;
  PageRun r;
  EXPECT_EQ(DecodeLogEntry(out[0], 11, 4, 100, &origin, &r), EntryState::kNotYet);  // another lap
  EXPECT_EQ(DecodeLogEntry(LogEntry{}, 9, 4, 100, &origin, &r), EntryState::kNotYet);  // zeros
  LogEntry torn = out[0];
  torn.run = (uint64_t{8} << 20) | 2;  // run word of another entry
  EXPECT_EQ(DecodeLogEntry(torn, 9, 4, 100, &origin, &r), EntryState::kNotYet);
  torn = out[0];
  torn.tag ^= 1;  // origin word of another entry
  EXPECT_EQ(DecodeLogEntry(torn, 9, 4, 100, &origin, &r), EntryState::kNotYet);
  // A well-formed entry naming a rank or pages that do not exist.
  EXPECT_EQ(DecodeLogEntry(out[0], 9, 3, 100, &origin, &r), EntryState::kCorrupt);
  EXPECT_EQ(DecodeLogEntry(out[0], 9, 4, 8, &origin, &r), EntryState::kCorrupt);
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

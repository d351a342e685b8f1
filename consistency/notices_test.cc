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

TEST(NoticesTest, MergeAndSubtractRuns) {
  std::vector<PageRun> runs = {{10, 2}, {0, 3}, {12, 1}, {3, 1}, {20, 5}, {22, 1}};
  MergeRuns(&runs);
  EXPECT_EQ(runs, (std::vector<PageRun>{{0, 4}, {10, 3}, {20, 5}}));
  std::vector<PageRun> out;
  const PageRun minus[] = {{1, 1}, {9, 2}, {21, 2}, {30, 4}};
  SubtractRuns(runs, minus, &out);
  EXPECT_EQ(out, (std::vector<PageRun>{{0, 1}, {2, 2}, {11, 2}, {20, 1}, {23, 2}}));
  out.clear();
  SubtractRuns(runs, {}, &out);
  EXPECT_EQ(out, runs);
  out.clear();
  const PageRun all[] = {{0, 100}};
  SubtractRuns(runs, all, &out);
  EXPECT_TRUE(out.empty());
}

std::vector<Contribution> TwoOrigins() {
  return {{2, {{0, 4}, {100, 1}}, {}}, {5, {{7, 9}}, {}}};
}

TEST(NoticesTest, CarriedNoticesRoundTrip) {
  const std::vector<Contribution> c = TwoOrigins();
  const std::vector<uint8_t> bytes = EncodeCarriedNotices(c);
  EXPECT_EQ(bytes.size(), 4u + 2 * 8 + 3 * 16);
  absl::StatusOr<std::vector<Contribution>> back = DecodeCarriedNotices(bytes, 8, 200);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].origin, 2);
  EXPECT_EQ((*back)[0].runs, c[0].runs);
  EXPECT_EQ((*back)[1].origin, 5);
  EXPECT_EQ((*back)[1].runs, c[1].runs);
  // Nothing to carry is no bytes at all.
  EXPECT_TRUE(EncodeCarriedNotices({}).empty());
  absl::StatusOr<std::vector<Contribution>> none = DecodeCarriedNotices({}, 8, 200);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(NoticesTest, CarriedNoticesDefectsAreNamed) {
  const std::vector<uint8_t> good = EncodeCarriedNotices(TwoOrigins());
  auto expect_error = [](const std::vector<uint8_t>& b, int ranks, uint64_t pages,
                         const std::string& words) {
    SCOPED_TRACE(words);
    absl::StatusOr<std::vector<Contribution>> d = DecodeCarriedNotices(b, ranks, pages);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find(words), std::string::npos) << d.status();
  };
  expect_error({good.begin(), good.end() - 1}, 8, 200, "truncated");
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  expect_error(longer, 8, 200, "trailing");
  expect_error(good, 5, 200, "contribution");  // rank 5 of 5 ranks
  expect_error(good, 8, 100, "outside the range");
  expect_error(EncodeCarriedNotices({{2, {{0, 4}}, {}}, {2, {{9, 1}}, {}}}), 8, 200,
               "repeated");
  expect_error(EncodeCarriedNotices({{2, {}, {}}}), 8, 200, "empty");
  expect_error(EncodeCarriedNotices({{2, {{9, 1}, {0, 4}}, {}}}), 8, 200, "not ascending");
  expect_error(EncodeCarriedNotices({{2, {{0, 4}, {4, 1}}, {}}}), 8, 200, "not ascending");
  expect_error(EncodeCarriedNotices({{2, {{0, 0}}, {}}}), 8, 200, "outside the range");
  std::vector<Contribution> many(1);
  many[0].origin = 1;
  for (uint64_t i = 0; i <= kMaxCarriedRuns; ++i) many[0].runs.push_back({2 * i, 1});
  expect_error(EncodeCarriedNotices(many), 8, 1 << 20, "more than");
  many[0].runs.pop_back();
  EXPECT_TRUE(DecodeCarriedNotices(EncodeCarriedNotices(many), 8, 1 << 20).ok());
  // A count of contributions no message could hold.
  const std::vector<uint8_t> huge = {0xff, 0xff, 0xff, 0xff};
  expect_error(huge, 8, 200, "contributions");
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

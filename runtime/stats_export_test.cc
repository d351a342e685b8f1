#include "runtime/stats_export.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/stats.h"
#include "gasp/gasp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace rt {
namespace {

using ::testing::HasSubstr;

const StatsIdentity kId{3, 4, "node7", 4242};

// A fresh directory under the test's temporary directory.
std::string NewDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name);
  mkdir(dir.c_str(), 0755);
  return dir;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  closedir(d);
  return names;
}

TEST(StatsPatternTest, ExpandsEveryEscape) {
  EXPECT_EQ(*ExpandStatsPattern("/d/s.%r.%h.%p.json", kId), "/d/s.3.node7.4242.json");
  EXPECT_EQ(*ExpandStatsPattern("100%%-%r", kId), "100%-3");
  EXPECT_EQ(*ExpandStatsPattern("%%r", kId), "%r");  // a literal, not the rank
  EXPECT_EQ(*ExpandStatsPattern("plain", kId), "plain");
}

TEST(StatsPatternTest, UnknownEscapesAreErrors) {
  for (const char* bad : {"s.%d.json", "s.json%", "%R"}) {
    absl::StatusOr<std::string> p = ExpandStatsPattern(bad, kId);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("GASP_STATS_FILE"));
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("%r"));
  }
}

TEST(StatsPatternTest, SeveralRanksNeedRankInTheName) {
  const std::string dir = NewDir("pattern");
  absl::Status st = CheckStatsPattern(dir + "/s.json", kId);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("GASP_STATS_FILE"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("overwrite"));
  // %%r is a literal "%r": still one file for all ranks.
  EXPECT_FALSE(CheckStatsPattern(dir + "/s.%%r.json", kId).ok());
  EXPECT_TRUE(CheckStatsPattern(dir + "/s.%r.json", kId).ok());
  EXPECT_TRUE(CheckStatsPattern(dir + "/s.json", StatsIdentity{0, 1, "h", 1}).ok());
}

TEST(StatsPatternTest, MissingDirectoryIsNamed) {
  const std::string dir = NewDir("missing") + "/no/such/dir";
  absl::Status st = CheckStatsPattern(dir + "/s.%r.json", kId);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("GASP_STATS_FILE"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("'" + dir + "' does not exist"));
  // The directory part may use the escapes too.
  const std::string base = NewDir("byhost");
  mkdir((base + "/node7").c_str(), 0755);
  EXPECT_TRUE(CheckStatsPattern(base + "/%h/s.%r.json", kId).ok());
  EXPECT_FALSE(CheckStatsPattern(base + "/%p/s.%r.json", kId).ok());
}

TEST(StatsPatternTest, DirectoriesAreNotFiles) {
  const std::string dir = NewDir("dirs");
  EXPECT_FALSE(CheckStatsPattern(dir + "/", StatsIdentity{0, 1, "h", 1}).ok());
  mkdir((dir + "/3").c_str(), 0755);
  absl::Status st = CheckStatsPattern(dir + "/%r", kId);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("is a directory"));
}

TEST(StatsJsonTest, EscapesStrings) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("l1\nl2\tx"), "\"l1\\nl2\\tx\"");
  EXPECT_EQ(JsonString(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(JsonString("h\xc3\xa9te"), "\"h\xc3\xa9te\"");  // UTF-8 as is
}

TEST(StatsJsonTest, Document) {
  EXPECT_EQ(StatsJson({1, 2, "n\"1", 77}, 1.5, true, 4, {{"read_faults", 3}, {"lock_wait_ns", 0}}),
            "{\"rank\":1,\"size\":2,\"host\":\"n\\\"1\",\"pid\":77,\"elapsed_s\":1.500,"
            "\"final\":true,\"dump\":4,\"counters\":{\"read_faults\":3,\"lock_wait_ns\":0}}\n");
  EXPECT_THAT(StatsJson(kId, 0, false, 1, {}),
              HasSubstr("\"final\":false,\"dump\":1,\"counters\":{}}"));
}

TEST(ReplaceFileTest, ReplacesWholeAndLeavesNoTemporary) {
  const std::string dir = NewDir("replace");
  const std::string path = dir + "/s.json";
  ASSERT_TRUE(ReplaceFile(path, "old").ok());
  std::ifstream old_reader(path);  // opened before the replace
  ASSERT_TRUE(ReplaceFile(path, "new").ok());
  EXPECT_EQ(Read(path), "new");
  // A new file took the name: a reader of the old one still reads it whole.
  std::string seen;
  old_reader >> seen;
  EXPECT_EQ(seen, "old");
  EXPECT_THAT(List(dir), ::testing::ElementsAre("s.json"));
}

TEST(ReplaceFileTest, ConcurrentReadersNeverSeeAPart) {
  const std::string path = NewDir("readers") + "/s.json";
  const std::string a(256 << 10, 'a'), b(256 << 10, 'b');
  ASSERT_TRUE(ReplaceFile(path, a).ok());
  std::atomic<bool> done{false};
  int torn = 0, reads = 0;
  std::thread reader([&] {
    while (!done.load()) {
      const std::string s = Read(path);
      ++reads;
      if (s != a && s != b) ++torn;
    }
  });
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(ReplaceFile(path, i % 2 ? a : b).ok());
  done = true;
  reader.join();
  EXPECT_GT(reads, 0);
  EXPECT_EQ(torn, 0) << "of " << reads << " reads";
}

TEST(ReplaceFileTest, FailureLeavesNothing) {
  const std::string dir = NewDir("fail");
  absl::Status st = ReplaceFile(dir + "/gone/s.json", "x");
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr(dir + "/gone/s.json"));
  EXPECT_TRUE(List(dir).empty());
}

TEST(StatsTest, NamesInEnumOrderWithValues) {
  StatsReset();
  StatAdd(Counter::kLockAcquires, 5);
  std::vector<std::pair<std::string, uint64_t>> s = Stats();
  ASSERT_EQ(s.size(), static_cast<size_t>(Counter::kCount));
  EXPECT_EQ(s.front().first, "read_faults");
  for (int i = 0; i < static_cast<int>(Counter::kCount); ++i) {
    EXPECT_EQ(s[i].first, CounterName(static_cast<Counter>(i)));
  }
  EXPECT_EQ(s[static_cast<int>(Counter::kLockAcquires)].second, 5u);
}

TEST(StatsExporterTest, NoPatternNoExporter) {
  absl::StatusOr<std::unique_ptr<StatsExporter>> e =
      StatsExporter::Create("", absl::ZeroDuration(), kId);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, nullptr);
  EXPECT_FALSE(StatsExporter::Create("s.json", absl::ZeroDuration(), kId).ok());  // 4 ranks
}

TEST(StatsExporterTest, PeriodicDumpsThenFinal) {
  const std::string dir = NewDir("periodic");
  auto e = StatsExporter::Create(dir + "/s.%r.json", absl::Milliseconds(20), kId);
  ASSERT_TRUE(e.ok()) << e.status();
  (*e)->Start();
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while ((*e)->dumps() < 3 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_GE((*e)->dumps(), 3u);
  EXPECT_THAT(Read(dir + "/s.3.json"), HasSubstr("\"final\":false"));
  ASSERT_TRUE((*e)->Finish().ok());
  const std::string last = Read(dir + "/s.3.json");
  EXPECT_THAT(last, HasSubstr("\"final\":true"));
  EXPECT_THAT(last, HasSubstr(absl::StrCat("\"dump\":", (*e)->dumps(), ",")));
  EXPECT_THAT(last, HasSubstr("\"host\":\"node7\",\"pid\":4242"));
  EXPECT_THAT(List(dir), ::testing::ElementsAre("s.3.json"));
}

TEST(StatsExporterTest, FinishDoesNotWaitForTheInterval) {
  const std::string dir = NewDir("prompt");
  auto e = StatsExporter::Create(dir + "/s.%r.json", absl::Hours(1), kId);
  ASSERT_TRUE(e.ok()) << e.status();
  (*e)->Start();
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE((*e)->Finish().ok());
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  EXPECT_EQ((*e)->dumps(), 1u);  // the final one only
  EXPECT_THAT(Read(dir + "/s.3.json"), HasSubstr("\"final\":true,\"dump\":1,"));
}

TEST(StatsExporterTest, WriteFailureIsAnErrorNamingTheSetting) {
  const std::string dir = NewDir("vanish") + "/sub";
  mkdir(dir.c_str(), 0755);
  auto e = StatsExporter::Create(dir + "/s.%r.json", absl::ZeroDuration(), kId);
  ASSERT_TRUE(e.ok()) << e.status();
  rmdir(dir.c_str());  // gone between Init and Finalize
  absl::Status st = (*e)->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("GASP_STATS_FILE"));
  EXPECT_THAT(std::string(st.message()), HasSubstr(dir + "/s.3.json"));
}

}  // namespace
}  // namespace rt
}  // namespace gasp

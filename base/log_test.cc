#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(LogTest, ParseLevels) {
  LogLevel l;
  ASSERT_TRUE(ParseLogLevel("DEBUG", &l).ok());
  EXPECT_EQ(l, LogLevel::kDebug);
  absl::Status s = ParseLogLevel("loud", &l);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("error|warn|info|debug|trace"));
}

TEST(LogTest, FilePatternExpandsRankAndFiltersByLevel) {
  std::string dir = ::testing::TempDir();
  std::string pattern = dir + "/gasp-%r-%p.log";
  ASSERT_TRUE(ConfigureLogging(LogLevel::kInfo, pattern).ok());
  SetLogRank(3, 8);
  EXPECT_THAT(LogPrefix(), HasSubstr("[gasp r3/8 "));
  GASP_LOG(Info) << "hello " << 42;
  GASP_LOG(Debug) << "hidden";
  LogRawSignalSafe(LogLevel::kError, "raw line");
  std::string path = dir + "/gasp-3-" + std::to_string(getpid()) + ".log";
  std::string text = ReadFile(path);
  EXPECT_THAT(text, HasSubstr("[gasp r3/8 "));
  EXPECT_THAT(text, HasSubstr("I log_test.cc:"));
  EXPECT_THAT(text, HasSubstr("hello 42"));
  EXPECT_THAT(text, HasSubstr("E raw line"));
  EXPECT_THAT(text, Not(HasSubstr("hidden")));
  ASSERT_TRUE(ConfigureLogging(LogLevel::kWarn, "").ok());
}

TEST(LogTest, UnwritableFileIsAnError) {
  absl::Status s = ConfigureLogging(LogLevel::kWarn, "/nonexistent-dir/x.log");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("GASP_LOG_FILE"));
}

}  // namespace
}  // namespace gasp

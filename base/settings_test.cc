#include "base/settings.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<Config> Load(std::map<std::string, std::string> env,
                            std::map<std::string, std::string> overrides = {}) {
  return LoadConfig(overrides, [env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(SettingsTest, DefaultsParse) {
  absl::StatusOr<Config> c = Load({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->base, 0x200000000000ull);
  EXPECT_EQ(c->size_bytes, 64ull << 30);
  EXPECT_EQ(c->timeout, absl::Seconds(60));
  EXPECT_EQ(c->transport, "auto");
  EXPECT_FALSE(c->stats);
  EXPECT_EQ(c->prefetch_pages, 4);
}

TEST(SettingsTest, EnvThenOverridesTakePrecedence) {
  absl::StatusOr<Config> c =
      Load({{"GASP_SIZE", "16G"}, {"GASP_TIMEOUT", "500ms"}, {"GASP_STATS", "yes"}},
           {{"GASP_SIZE", "32G"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->size_bytes, 32ull << 30);
  EXPECT_EQ(c->timeout, absl::Milliseconds(500));
  EXPECT_TRUE(c->stats);
}

TEST(SettingsTest, MalformedValuesNameTheVariable) {
  struct Case {
    const char* name;
    const char* value;
    const char* expect;
  } cases[] = {
      {"GASP_SIZE", "lots", "GASP_SIZE=lots"},
      {"GASP_SIZE", "1k", "must be in"},
      {"GASP_BASE", "0x200000000801", "multiple of the 4 KiB"},
      {"GASP_TIMEOUT", "-3s", "GASP_TIMEOUT"},
      {"GASP_TIMEOUT", "soon", "expected a duration"},
      {"GASP_STATS", "maybe", "GASP_STATS"},
      {"GASP_TRANSPORT", "carrier-pigeon", "auto|tcp|verbs|shm"},
      {"GASP_PREFETCH_PAGES", "5000", "[0, 1024]"},
      {"GASP_PREFETCH_PAGES", "7x", "expected an integer"},
  };
  for (const Case& k : cases) {
    absl::StatusOr<Config> c = Load({{k.name, k.value}});
    ASSERT_FALSE(c.ok()) << k.name << "=" << k.value;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(k.expect)) << k.name;
  }
}

TEST(SettingsTest, CrossChecks) {
  absl::StatusOr<Config> c = Load({{"GASP_SIZE", "1G"}, {"GASP_HEAP_SIZE", "1G"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("GASP_HEAP_SIZE"));
  c = Load({{"GASP_BASE", "0x7e0000000000"}, {"GASP_SIZE", "32T"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("lower GASP_BASE"));
  c = Load({}, {{"GASP_NO_SUCH", "1"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("GASP_NO_SUCH"));
}

TEST(SettingsTest, StatsFileAndInterval) {
  absl::StatusOr<Config> c = Load({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->stats_interval, absl::ZeroDuration());  // off
  EXPECT_EQ(FormatSetting(*c, *FindSetting("GASP_STATS_INTERVAL")), "0");
  c = Load({{"GASP_STATS_FILE", "/tmp/s.%r.json"}, {"GASP_STATS_INTERVAL", "200ms"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->stats_file, "/tmp/s.%r.json");
  EXPECT_EQ(c->stats_interval, absl::Milliseconds(200));
  // An interval has nothing to rewrite without a file: both are named.
  c = Load({{"GASP_STATS_INTERVAL", "10s"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("GASP_STATS_INTERVAL=10s needs GASP_STATS_FILE"));
  c = Load({{"GASP_STATS_FILE", "s.json"}, {"GASP_STATS_INTERVAL", "1ms"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("below 10ms"));
  c = Load({{"GASP_STATS_INTERVAL", "-1s"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("GASP_STATS_INTERVAL=-1s"));
  // Zero means off only where the table allows it: not for GASP_TIMEOUT.
  c = Load({{"GASP_TIMEOUT", "0"}});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("GASP_TIMEOUT=0"));
}

TEST(SettingsTest, ParseSize) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("64k"), 65536u);
  EXPECT_EQ(*ParseSize("16MiB"), 16u << 20);
  EXPECT_EQ(*ParseSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseSize("0x1000"), 4096u);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("99999999999999T").ok());
}

TEST(SettingsTest, FormatRoundTrips) {
  absl::StatusOr<Config> c = Load({{"GASP_TIMEOUT", "2m"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(FormatSetting(*c, *FindSetting("GASP_TIMEOUT")), "2m");
  EXPECT_EQ(FormatSetting(*c, *FindSetting("GASP_BASE")), "0x200000000000");
  EXPECT_THAT(SettingsMarkdown(), HasSubstr("| `GASP_PREFETCH_PAGES` |"));
}

}  // namespace
}  // namespace gasp

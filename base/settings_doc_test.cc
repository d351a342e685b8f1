// docs/settings.md must equal the text generated from the settings table.
#include <fstream>
#include <sstream>

#include "base/settings.h"
#include "gtest/gtest.h"

namespace gasp {
namespace {

TEST(SettingsDocTest, DocMatchesTable) {
  std::ifstream f("docs/settings.md");
  ASSERT_TRUE(f.good()) << "docs/settings.md missing from runfiles";
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), SettingsMarkdown())
      << "docs/settings.md is stale: run\n  bazel run //tools:gasp_info -- --markdown > "
         "docs/settings.md";
}

}  // namespace
}  // namespace gasp

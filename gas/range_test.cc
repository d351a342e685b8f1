#include "gas/range.h"

#include <sys/mman.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace gas {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kBase = 0x300000000000ull;

TEST(RangeTest, ViewsShareMemory) {
  auto r = GlobalRange::Reserve(kBase, 64 << 20);
  ASSERT_TRUE(r.ok()) << r.status();
  GlobalRange& range = **r;
  EXPECT_TRUE(range.Contains(kBase));
  EXPECT_TRUE(range.Contains(kBase + (64 << 20) - 1));
  EXPECT_FALSE(range.Contains(kBase + (64 << 20)));
  EXPECT_FALSE(range.Contains(kBase - 1));
  // The system view is writable while the app view is PROT_NONE.
  range.sys(8192)[5] = 42;
  ASSERT_TRUE(range.Protect(8192, kPageSize, Prot::kRead).ok());
  EXPECT_EQ(range.app(8192)[5], 42);
  ASSERT_TRUE(range.Protect(8192, kPageSize, Prot::kReadWrite).ok());
  range.app(8192)[6] = 7;
  EXPECT_EQ(range.sys(8192)[6], 7);
  // Only touched pages use memory: one page so far out of 64 MiB.
  EXPECT_EQ(range.ResidentBytes(), kPageSize);
}

TEST(RangeTest, CollisionIsAnErrorNamingTheSetting) {
  void* blocker = mmap(reinterpret_cast<void*>(kBase + (1 << 20)), kPageSize, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ASSERT_NE(blocker, MAP_FAILED);
  auto r = GlobalRange::Reserve(kBase, 64 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("GASP_BASE=0x300000000000"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("in the way"));
  // The blocking mapping is untouched (no silent replacement).
  EXPECT_EQ(*static_cast<volatile char*>(blocker), 0);
  munmap(blocker, kPageSize);
}

TEST(RangeTest, RejectsUnalignedArguments) {
  EXPECT_FALSE(GlobalRange::Reserve(kBase + 1, 1 << 20).ok());
  EXPECT_FALSE(GlobalRange::Reserve(kBase, 0).ok());
}

}  // namespace
}  // namespace gas
}  // namespace gasp

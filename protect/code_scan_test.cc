#include "protect/code_scan.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protect/cpu_probe.h"

// A WRPKRU in this test's own code (jumped over: never executed), where a
// scan must find it, unlike gasp's gate.
extern "C" __attribute__((noinline, used)) void PlantedGadget() {
  __asm__ volatile("jmp 1f\n .byte 0x0f, 0x01, 0xef\n 1:");
}

namespace gasp {
namespace protect {
namespace {

using ::testing::HasSubstr;

std::vector<std::pair<size_t, GadgetKind>> Scan(std::vector<uint8_t> bytes) {
  std::vector<std::pair<size_t, GadgetKind>> out;
  ScanBytes(bytes, [&](size_t k, GadgetKind kind) { out.emplace_back(k, kind); });
  return out;
}

TEST(ScanBytesTest, FindsWrpkruAndXrstorAtAnyOffset) {
  // nop; WRPKRU; xrstor [rax] (0F AE 28); lfence (0F AE E8, not XRSTOR);
  // xrstor64 [rsp+8] (48 0F AE 6C 24 08); WRPKRU hidden in an immediate.
  const std::vector<uint8_t> code = {0x90, 0x0f, 0x01, 0xef, 0x0f, 0xae, 0x28, 0x0f, 0xae,
                                     0xe8, 0x48, 0x0f, 0xae, 0x6c, 0x24, 0x08, 0xb8, 0x0f,
                                     0x01, 0xef, 0x00};
  const auto hits = Scan(code);
  ASSERT_EQ(hits.size(), 4u);
  EXPECT_EQ(hits[0], std::make_pair(size_t{1}, GadgetKind::kWrpkru));
  EXPECT_EQ(hits[1], std::make_pair(size_t{4}, GadgetKind::kXrstor));
  EXPECT_EQ(hits[2], std::make_pair(size_t{11}, GadgetKind::kXrstor));
  EXPECT_EQ(hits[3], std::make_pair(size_t{17}, GadgetKind::kWrpkru));
}

TEST(ScanBytesTest, EdgesAndNothing) {
  EXPECT_TRUE(Scan({}).empty());
  EXPECT_TRUE(Scan({0x0f, 0x01}).empty());
  EXPECT_EQ(Scan({0x0f, 0x01, 0xef}).size(), 1u);
  EXPECT_TRUE(Scan({0x0f, 0x0f, 0x0f, 0x01, 0xee}).empty()) << "RDPKRU is harmless";
}

TEST(CodeScanTest, FindsThePlantedGadgetButNotGaspsGate) {
  // Reference the gate so that its section is linked in.
  volatile auto gate = &WritePkru;
  (void)gate;
  const std::vector<CodeSite> sites = ScanLoadedCode();
  bool planted = false;
  for (const CodeSite& s : sites) {
    EXPECT_THAT(s.symbol, ::testing::Not(HasSubstr("WritePkru"))) << s.Describe();
    const uintptr_t fn = reinterpret_cast<uintptr_t>(&PlantedGadget);
    if (s.address >= fn && s.address < fn + 16) {
      planted = true;
      EXPECT_EQ(s.kind, GadgetKind::kWrpkru);
      EXPECT_FALSE(s.system);
      EXPECT_THAT(s.Describe(), HasSubstr("code_scan_test+0x"));
    }
  }
  EXPECT_TRUE(planted) << "the scan missed a WRPKRU in the executable";
  absl::Status strict = CheckLoadedCode(sites, true);
  EXPECT_EQ(strict.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(strict.message(), HasSubstr("WRPKRU at code_scan_test+0x"));
  EXPECT_THAT(strict.message(), HasSubstr("GASP_PKEYS_STRICT"));
  EXPECT_TRUE(CheckLoadedCode(sites, false).ok()) << "without strict: a warning only";
}

TEST(CodeScanTest, SystemSitesAreNotRefused) {
  CodeSite libc;
  libc.kind = GadgetKind::kWrpkru;
  libc.object = "/lib/x86_64-linux-gnu/libc.so.6";
  libc.symbol = "pkey_set";
  libc.system = true;
  EXPECT_TRUE(CheckLoadedCode({libc}, true).ok());
  libc.system = false;
  EXPECT_FALSE(CheckLoadedCode({libc}, true).ok());
}

}  // namespace
}  // namespace protect
}  // namespace gasp

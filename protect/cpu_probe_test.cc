#include "protect/cpu_probe.h"

#include "gtest/gtest.h"
#include "protect/protection.h"

namespace gasp {
namespace protect {
namespace {

TEST(CpuProbe, ReportsAndIsConsistent) {
  const PkuProbe& p = ProbePku();
  std::printf("PKU probe: cpuid pku=%d ospke=%d pkey_alloc=%d xsave-offset=%zu usable=%d %s\n",
              p.cpuid_pku, p.cpuid_ospke, p.pkey_alloc_ok, p.pkru_xsave_offset, p.usable(),
              p.reason.c_str());
  EXPECT_EQ(p.usable(), p.reason.empty());
  if (p.usable()) {
    EXPECT_GT(p.pkru_xsave_offset, 576u);
    uint32_t v = ReadPkru();  // legal only now
    WritePkru(v);
    EXPECT_EQ(ReadPkru(), v);
  }
}

TEST(ParseBackend, Values) {
  BackendKind k;
  ASSERT_TRUE(ParseBackend("auto", &k).ok());
  EXPECT_EQ(k, BackendKind::kAuto);
  ASSERT_TRUE(ParseBackend("PKEYS", &k).ok());
  EXPECT_EQ(k, BackendKind::kPkeys);
  ASSERT_TRUE(ParseBackend("mprotect", &k).ok());
  EXPECT_EQ(k, BackendKind::kMprotect);
  EXPECT_FALSE(ParseBackend("mpk2", &k).ok());
}

TEST(Create, AutoFollowsTheProbeAndPkeysFailsWithoutPku) {
  ProtectionOptions o;
  auto p = Protection::Create(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->backend(), ProbePku().usable() ? BackendKind::kPkeys : BackendKind::kMprotect);
  std::printf("auto -> %s (%s)\n", BackendName((*p)->backend()), (*p)->backend_reason().c_str());
  EXPECT_EQ(Protection::Create(o).status().code(), absl::StatusCode::kAlreadyExists);
  p->reset();
  if (!ProbePku().usable()) {
    o.backend = BackendKind::kPkeys;
    auto q = Protection::Create(o);
    EXPECT_EQ(q.status().code(), absl::StatusCode::kFailedPrecondition) << q.status();
  }
}

}  // namespace
}  // namespace protect
}  // namespace gasp

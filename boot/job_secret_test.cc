// Where the job secret comes from: gasprun's memfd, rank 0 through the
// bootstrap's allgather (tcp rendezvous, ranks as threads), a single rank.
#include "boot/job_secret.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/settings.h"
#include "boot/bootstrap_internal.h"
#include "boot/coordinator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace boot {
namespace {

using ::testing::HasSubstr;
using Vars = std::map<std::string, std::string>;

GetenvFn EnvOf(const Vars* vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars->find(name);
    return it == vars->end() ? nullptr : it->second.c_str();
  };
}

Config MakeConfig(const Vars& settings) {
  absl::StatusOr<Config> c = LoadConfig(settings, [](const char*) { return nullptr; });
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(JobSecretTest, DrawnSecretsDiffer) {
  auto a = DrawJobSecret("a");
  auto b = DrawJobSecret("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->bytes, b->bytes);
  EXPECT_NE(a->bytes, (std::array<uint8_t, kJobSecretBytes>{}));
}

TEST(JobSecretTest, MemfdRoundTripClosesTheDescriptorAndIsSealed) {
  auto s = DrawJobSecret("gasprun");
  ASSERT_TRUE(s.ok());
  auto fd = JobSecretToFd(*s);
  ASSERT_TRUE(fd.ok()) << fd.status();
  // Sealed: nobody holding the descriptor can change it for the others.
  EXPECT_LT(pwrite(*fd, "x", 1, 0), 0);
  EXPECT_NE(fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0)
      << "no process the launcher starts may inherit it by accident";
  InheritJobSecretFd(*fd);
  EXPECT_EQ(fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0) << "a rank's copy must survive exec";
  std::string text = absl::StrCat(*fd);
  auto back = JobSecretFromFd(text.c_str());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->bytes, s->bytes);
  EXPECT_EQ(back->source, "gasprun");
  EXPECT_LT(fcntl(*fd, F_GETFD), 0) << "the rank closes the descriptor after reading it";
}

TEST(JobSecretTest, BadDescriptorsAreNamed) {
  auto a = JobSecretFromFd("seven");
  EXPECT_THAT(a.status().message(), HasSubstr("GASP_JOB_SECRET_FD=seven is not a descriptor"));
  auto b = JobSecretFromFd("987");
  EXPECT_THAT(b.status().message(), HasSubstr("cannot read the job secret"));
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "short", 5), 5);
  auto c = JobSecretFromFd(absl::StrCat(p[0]).c_str());
  EXPECT_FALSE(c.ok());
  close(p[1]);
}

TEST(JobSecretTest, SingleRankDrawsItsOwn) {
  Vars env;
  auto b = CreateBootstrapWithEnv(MakeConfig({}), EnvOf(&env));
  ASSERT_TRUE(b.ok());
  auto s = ObtainJobSecret(**b, absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->source, "this rank (single)");
}

// Every rank ends with rank 0's secret; a second job gets another one.
TEST(JobSecretTest, TcpRanksShareRankZerosSecret) {
  constexpr int kRanks = 3;
  std::vector<std::array<uint8_t, kJobSecretBytes>> first;
  for (int job = 0; job < 2; ++job) {
    // Rank 0 hosts the coordinator at a port found free.
    int port = 0;
    {
      CoordinatorOptions o;
      o.size = 1;
      auto probe = Coordinator::Start(o);
      ASSERT_TRUE(probe.ok());
      port = (*probe)->port();
    }
    Config config = MakeConfig(
        {{"GASP_COORDINATOR", absl::StrCat("127.0.0.1:", port)}, {"GASP_TIMEOUT", "20s"}});
    std::vector<Vars> envs(kRanks);
    std::vector<std::array<uint8_t, kJobSecretBytes>> got(kRanks);
    std::vector<std::thread> threads;
    for (int r = 0; r < kRanks; ++r) {
      envs[r] = {{"PMI_RANK", absl::StrCat(r)}, {"PMI_SIZE", absl::StrCat(kRanks)}};
      threads.emplace_back([&, r] {
        auto b = CreateBootstrapWithEnv(config, EnvOf(&envs[r]));
        ASSERT_TRUE(b.ok()) << b.status();
        auto s = ObtainJobSecret(**b, absl::Now() + absl::Seconds(20));
        ASSERT_TRUE(s.ok()) << s.status();
        EXPECT_EQ(s->source, "rank 0 (tcp)");
        got[r] = s->bytes;
        // Rank 0 must keep serving until the others have finalized.
        if (r == 0) absl::SleepFor(absl::Milliseconds(200));
        EXPECT_TRUE((*b)->Finalize(absl::Now() + absl::Seconds(20)).ok());
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(got[1], got[0]);
    EXPECT_EQ(got[2], got[0]);
    if (job == 0) first = got;
    if (job == 1) {
      EXPECT_NE(got[0], first[0]) << "two jobs must not share a secret";
    }
  }
}

// Under gasprun the secret comes from its memfd, and gasprun's coordinator
// admits only HELLOs that prove it: a rank without the descriptor, or with
// another job's secret, cannot take a rank's place.
TEST(JobSecretTest, GasprunsCoordinatorAdmitsOnlyItsRanks) {
  absl::StatusOr<JobSecret> secret = DrawJobSecret("gasprun");
  ASSERT_TRUE(secret.ok());
  CoordinatorOptions o;
  o.size = 1;
  o.owner = "gasprun (test)";
  o.secret.assign(reinterpret_cast<const char*>(secret->bytes.data()), kJobSecretBytes);
  auto coord = Coordinator::Start(o);
  ASSERT_TRUE(coord.ok());
  Config config = MakeConfig({{"GASP_COORDINATOR", (*coord)->address()}, {"GASP_TIMEOUT", "5s"}});
  Vars env = {{"GASP_RANK", "0"},       {"GASP_NRANKS", "1"},         {"GASP_LOCAL_RANK", "0"},
              {"GASP_LOCAL_NRANKS", "1"}, {"GASP_LAUNCHER", "gasprun"}, {"GASP_JOB_ID", "j"}};
  auto none = CreateBootstrapWithEnv(config, EnvOf(&env));
  EXPECT_THAT(none.status().message(), HasSubstr("GASP_JOB_SECRET_FD is not set"));

  auto other_fd = JobSecretToFd(*DrawJobSecret("another job"));
  ASSERT_TRUE(other_fd.ok());
  env[kJobSecretFdVariable] = absl::StrCat(*other_fd);
  auto other = CreateBootstrapWithEnv(config, EnvOf(&env));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied) << other.status();
  EXPECT_THAT(other.status().message(), HasSubstr("is not a process gasprun (test) started"));

  auto fd = JobSecretToFd(*secret);
  ASSERT_TRUE(fd.ok());
  env[kJobSecretFdVariable] = absl::StrCat(*fd);
  auto b = CreateBootstrapWithEnv(config, EnvOf(&env));
  ASSERT_TRUE(b.ok()) << b.status();
  auto s = ObtainJobSecret(**b, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->bytes, secret->bytes);
  EXPECT_EQ(s->source, "gasprun");
  EXPECT_TRUE((*b)->Finalize(absl::Now() + absl::Seconds(5)).ok());
}

TEST(JobSecretTest, JobIdIsTheLaunchersElseDerivedFromTheSecret) {
  JobSecret a, b;
  a.bytes.fill(1);
  b.bytes.fill(2);
  EXPECT_EQ(JobIdOf("slurm-77.0", a), "slurm-77.0");
  const std::string id = JobIdOf("", a);
  EXPECT_THAT(id, ::testing::MatchesRegex("gasp-[0-9a-f]{16}"));
  EXPECT_EQ(JobIdOf("", a), id) << "every rank holds the same secret and must get the same id";
  EXPECT_NE(JobIdOf("", b), id) << "two jobs without a launcher id must differ";
}

}  // namespace
}  // namespace boot
}  // namespace gasp

// CreateBootstrap's choice of method and the tcp bootstrap in-process
// (rank 0 hosting the coordinator, ranks as threads).
#include "boot/bootstrap.h"

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/settings.h"
#include "boot/bootstrap_internal.h"
#include "boot/coordinator.h"
#include "boot/job_secret.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace boot {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using Vars = std::map<std::string, std::string>;

Config MakeConfig(const Vars& settings) {
  absl::StatusOr<Config> c = LoadConfig(settings, [](const char*) { return nullptr; });
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

GetenvFn EnvOf(const Vars* vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars->find(name);
    return it == vars->end() ? nullptr : it->second.c_str();
  };
}

int FreePort() {
  CoordinatorOptions o;
  o.size = 1;
  auto c = Coordinator::Start(o);
  EXPECT_TRUE(c.ok());
  return (*c)->port();
}

TEST(BootstrapTest, NoLauncherIsASingleRank) {
  Vars env;
  auto b = CreateBootstrapWithEnv(MakeConfig({}), EnvOf(&env));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->method(), "single");
  EXPECT_EQ((*b)->rank(), 0);
  EXPECT_EQ((*b)->size(), 1);
  auto all = (*b)->Allgather("me", absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, std::vector<std::string>{"me"});
  EXPECT_TRUE((*b)->Barrier(absl::Now()).ok());
  EXPECT_EQ((*b)->LocalAddressHint(), "");
  EXPECT_TRUE((*b)->Finalize(absl::Now()).ok());
}

TEST(BootstrapTest, SeveralRanksWithoutRendezvousIsAnError) {
  Vars env = {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "4"}};
  auto b = CreateBootstrapWithEnv(MakeConfig({}), EnvOf(&env));
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("4 ranks but no rendezvous: launch with gasprun, with PMIx (mpirun / srun "
                        "--mpi=pmix), or set GASP_COORDINATOR=host:port"));
}

TEST(BootstrapTest, MalformedLauncherVariablesAreReported) {
  Vars env = {{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}};
  auto b = CreateBootstrapWithEnv(MakeConfig({}), EnvOf(&env));
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("OMPI_COMM_WORLD_RANK='x'"));
}

TEST(BootstrapTest, ForcedPmixWithoutPmixLauncher) {
  if (std::getenv("PMIX_NAMESPACE") != nullptr) GTEST_SKIP() << "running under a PMIx launcher";
  Vars env;
  auto b = CreateBootstrapWithEnv(MakeConfig({{"GASP_BOOT", "pmix"}}), EnvOf(&env));
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              AllOf(HasSubstr("PMIX_NAMESPACE"), HasSubstr("srun --mpi=pmix")));
}

TEST(BootstrapTest, ForcedTcpNeedsACoordinator) {
  Vars env = {{"PMI_RANK", "0"}, {"PMI_SIZE", "2"}};
  auto b = CreateBootstrapWithEnv(MakeConfig({{"GASP_BOOT", "tcp"}}), EnvOf(&env));
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("GASP_COORDINATOR=host:port"));
}

TEST(BootstrapTest, ForcedSingleIgnoresTheLauncher) {
  Vars env = {{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}};
  auto b = CreateBootstrapWithEnv(MakeConfig({{"GASP_BOOT", "single"}}), EnvOf(&env));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->method(), "single");
}

TEST(BootstrapTest, BadCoordinatorSyntax) {
  Vars env = {{"GASP_RANK", "0"}, {"GASP_NRANKS", "2"}};
  auto b = CreateBootstrapWithEnv(MakeConfig({{"GASP_COORDINATOR", "nohostport"}}), EnvOf(&env));
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("GASP_COORDINATOR='nohostport'"));
}

TEST(BootstrapTest, CoordinatorNotOnRankZerosHost) {
  // 192.0.2.1 is TEST-NET-1: never an address of this machine.
  Vars env = {{"GASP_RANK", "0"}, {"GASP_NRANKS", "2"}};
  auto b =
      CreateBootstrapWithEnv(MakeConfig({{"GASP_COORDINATOR", "192.0.2.1:4567"}}), EnvOf(&env));
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              AllOf(HasSubstr("GASP_COORDINATOR=192.0.2.1:4567"),
                    HasSubstr("not an address of rank 0's host")));
}

TEST(BootstrapTest, RankZeroReportsABusyPort) {
  CoordinatorOptions o;
  o.size = 1;
  auto busy = Coordinator::Start(o);
  ASSERT_TRUE(busy.ok());
  std::string addr = absl::StrCat("127.0.0.1:", (*busy)->port());
  Vars env = {{"GASP_RANK", "0"}, {"GASP_NRANKS", "2"}};
  auto b = CreateBootstrapWithEnv(MakeConfig({{"GASP_COORDINATOR", addr}}), EnvOf(&env));
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              AllOf(HasSubstr("rank 0 cannot host the coordinator at GASP_COORDINATOR=" + addr),
                    HasSubstr("in use"), HasSubstr("free port")));
}

TEST(BootstrapTest, TcpWithRankZeroHostingTheCoordinator) {
  constexpr int kRanks = 3;
  std::string addr = absl::StrCat("127.0.0.1:", FreePort());
  Config config = MakeConfig({{"GASP_COORDINATOR", addr}, {"GASP_TIMEOUT", "20s"}});
  std::vector<Vars> envs(kRanks);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    // PMI_* gives no local ranks: the bootstrap derives them from host names.
    envs[r] = {{"PMI_RANK", absl::StrCat(r)}, {"PMI_SIZE", absl::StrCat(kRanks)}};
    threads.emplace_back([&, r] {
      auto b = CreateBootstrapWithEnv(config, EnvOf(&envs[r]));
      if (!b.ok()) {
        errors[r] = std::string(b.status().message());
        return;
      }
      EXPECT_EQ((*b)->method(), "tcp");
      EXPECT_EQ((*b)->rank(), r);
      EXPECT_EQ((*b)->size(), kRanks);
      EXPECT_EQ((*b)->local_rank(), r);  // all threads share one host name
      EXPECT_EQ((*b)->local_size(), kRanks);
      EXPECT_EQ((*b)->LocalAddressHint(), "127.0.0.1");
      auto all = (*b)->Allgather(absl::StrCat("r", r), absl::Now() + absl::Seconds(20));
      ASSERT_TRUE(all.ok()) << all.status();
      EXPECT_EQ(*all, (std::vector<std::string>{"r0", "r1", "r2"}));
      EXPECT_TRUE((*b)->Barrier(absl::Now() + absl::Seconds(20)).ok());
      // Rank 0 must keep serving until the others have finalized.
      if (r != 0) absl::SleepFor(absl::Milliseconds(200));
      absl::Status f = (*b)->Finalize(absl::Now() + absl::Seconds(20));
      EXPECT_TRUE(f.ok()) << f;
      EXPECT_EQ((*b)->LocalAddressHint(), "127.0.0.1");
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

TEST(BootstrapTest, GasprunRanksUseTheLaunchersCoordinator) {
  // gasprun hands each rank the job secret in a memfd (job_secret.h); its
  // coordinator checks the HELLOs' proofs.
  absl::StatusOr<JobSecret> secret = DrawJobSecret("gasprun");
  ASSERT_TRUE(secret.ok());
  CoordinatorOptions o;
  o.size = 2;
  o.owner = "gasprun (test)";
  o.secret.assign(reinterpret_cast<const char*>(secret->bytes.data()), kJobSecretBytes);
  auto coord = Coordinator::Start(o);
  ASSERT_TRUE(coord.ok());
  Config config = MakeConfig({{"GASP_COORDINATOR", (*coord)->address()}, {"GASP_TIMEOUT", "20s"}});
  std::vector<Vars> envs(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    envs[r] = {{"GASP_RANK", absl::StrCat(r)},       {"GASP_NRANKS", "2"},
               {"GASP_LOCAL_RANK", absl::StrCat(r)}, {"GASP_LOCAL_NRANKS", "2"},
               {"GASP_LAUNCHER", "gasprun"},         {"GASP_JOB_ID", "j"}};
    envs[r][kJobSecretFdVariable] = absl::StrCat(*JobSecretToFd(*secret));
    threads.emplace_back([&, r] {
      auto b = CreateBootstrapWithEnv(config, EnvOf(&envs[r]));
      ASSERT_TRUE(b.ok()) << b.status();
      EXPECT_EQ((*b)->method(), "gasprun");
      EXPECT_TRUE((*b)->Barrier(absl::Now() + absl::Seconds(20)).ok());
      EXPECT_TRUE((*b)->Finalize(absl::Now() + absl::Seconds(20)).ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE((*coord)->WaitAllLeft(absl::Now() + absl::Seconds(5)).ok());
}

TEST(BootstrapTest, LocalRanksFromHosts) {
  std::vector<std::string> hosts = {"a", "b", "a", "a", "b"};
  int lr, ls;
  LocalRanksFromHosts(hosts, 3, &lr, &ls);
  EXPECT_EQ(lr, 2);
  EXPECT_EQ(ls, 3);
  LocalRanksFromHosts(hosts, 4, &lr, &ls);
  EXPECT_EQ(lr, 1);
  EXPECT_EQ(ls, 2);
}

}  // namespace
}  // namespace boot
}  // namespace gasp

#include "boot/launch_env.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace boot {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class FakeEnv {
 public:
  FakeEnv(std::initializer_list<std::pair<const std::string, std::string>> vars) : vars_(vars) {}
  GetenvFn fn() const {
    return [this](const char* name) -> const char* {
      auto it = vars_.find(name);
      return it == vars_.end() ? nullptr : it->second.c_str();
    };
  }

 private:
  std::map<std::string, std::string> vars_;
};

absl::StatusOr<LaunchEnv> Detect(const FakeEnv& env) { return DetectLaunchEnv(env.fn()); }

std::string ErrorOf(const FakeEnv& env) {
  absl::StatusOr<LaunchEnv> e = Detect(env);
  EXPECT_FALSE(e.ok());
  if (e.ok()) return "";
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(e.status().message());
}

TEST(LaunchEnvTest, NoLauncherIsOneRank) {
  FakeEnv env({});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->source, "none");
  EXPECT_EQ(e->rank, 0);
  EXPECT_EQ(e->size, 1);
  EXPECT_TRUE(e->local_known);
  EXPECT_EQ(e->local_rank, 0);
  EXPECT_EQ(e->local_size, 1);
}

TEST(LaunchEnvTest, Gasprun) {
  FakeEnv env({{"GASP_RANK", "2"},
               {"GASP_NRANKS", "4"},
               {"GASP_LOCAL_RANK", "2"},
               {"GASP_LOCAL_NRANKS", "4"},
               {"GASP_LAUNCHER", "gasprun"},
               {"GASP_JOB_ID", "gasprun-vm-77"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->source, "gasprun");
  EXPECT_EQ(e->rank, 2);
  EXPECT_EQ(e->size, 4);
  EXPECT_EQ(e->local_rank, 2);
  EXPECT_EQ(e->local_size, 4);
  EXPECT_EQ(e->launcher, "gasprun");
  EXPECT_EQ(e->job_id, "gasprun-vm-77");
}

TEST(LaunchEnvTest, GasprunWithoutLocalRanksAsksTheBootstrap) {
  FakeEnv env({{"GASP_RANK", "1"}, {"GASP_NRANKS", "2"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->local_known);
  EXPECT_EQ(e->launcher, "");
}

TEST(LaunchEnvTest, OpenMpi) {
  FakeEnv env({{"OMPI_COMM_WORLD_RANK", "3"},
               {"OMPI_COMM_WORLD_SIZE", "8"},
               {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
               {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
               // Slurm variables of the allocation around mpirun do not win.
               {"SLURM_PROCID", "0"},
               {"SLURM_NTASKS", "1"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->source, "ompi");
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->size, 8);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_size, 2);
}

TEST(LaunchEnvTest, SlurmWithStepTasksPerNode) {
  FakeEnv env({{"SLURM_PROCID", "5"},
               {"SLURM_NTASKS", "7"},
               {"SLURM_LOCALID", "1"},
               {"SLURM_NODEID", "2"},
               {"SLURM_STEP_TASKS_PER_NODE", "2(x2),3"},
               {"SLURM_TASKS_PER_NODE", "99"},
               {"SLURM_JOB_ID", "42"},
               {"SLURM_STEP_ID", "0"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->source, "slurm");
  EXPECT_EQ(e->rank, 5);
  EXPECT_EQ(e->size, 7);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_size, 3);  // node 2 is the "3" after two nodes of 2
  EXPECT_EQ(e->job_id, "42.0");
}

TEST(LaunchEnvTest, SlurmFallsBackToTasksPerNode) {
  FakeEnv env({{"SLURM_PROCID", "1"},
               {"SLURM_NTASKS", "2"},
               {"SLURM_LOCALID", "1"},
               {"SLURM_TASKS_PER_NODE", "2"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_size, 2);
}

TEST(LaunchEnvTest, SlurmStepSizeWinsOverAllocationSize) {
  FakeEnv env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "8"}, {"SLURM_STEP_NUM_TASKS", "2"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->size, 2);
  EXPECT_FALSE(e->local_known);
}

TEST(LaunchEnvTest, PlainPmiHasNoLocalRanks) {
  FakeEnv env({{"PMI_RANK", "0"}, {"PMI_SIZE", "3"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->source, "pmi");
  EXPECT_EQ(e->size, 3);
  EXPECT_FALSE(e->local_known);
}

TEST(LaunchEnvTest, HydraLocalRanks) {
  FakeEnv env(
      {{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "0"}, {"MPI_LOCALNRANKS", "1"}});
  absl::StatusOr<LaunchEnv> e = Detect(env);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->local_known);
  EXPECT_EQ(e->local_size, 1);
}

TEST(LaunchEnvTest, NonNumericValuesNameTheVariable) {
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_RANK", "one"}, {"GASP_NRANKS", "2"}})),
              AllOf(HasSubstr("GASP_RANK='one'"), HasSubstr("gasprun")));
  EXPECT_THAT(ErrorOf(FakeEnv({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4x"}})),
              HasSubstr("OMPI_COMM_WORLD_SIZE='4x'"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"SLURM_PROCID", "-1"}, {"SLURM_NTASKS", "2"}})),
              HasSubstr("SLURM_PROCID='-1'"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"PMI_RANK", ""}, {"PMI_SIZE", "2"}})), HasSubstr("PMI_RANK=''"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"PMI_RANK", "0x1"}, {"PMI_SIZE", "2"}})), HasSubstr("PMI_RANK"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_RANK", "0"},
                               {"GASP_NRANKS", "2"},
                               {"GASP_LOCAL_RANK", "zero"},
                               {"GASP_LOCAL_NRANKS", "2"}})),
              HasSubstr("GASP_LOCAL_RANK='zero'"));
}

TEST(LaunchEnvTest, RankMustBeBelowSize) {
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_RANK", "2"}, {"GASP_NRANKS", "2"}})),
              AllOf(HasSubstr("GASP_RANK=2"), HasSubstr("GASP_NRANKS=2")));
  EXPECT_THAT(ErrorOf(FakeEnv({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "4"}})),
              HasSubstr("OMPI_COMM_WORLD_RANK=5"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "3"}})),
              HasSubstr("SLURM_PROCID=3"));
}

TEST(LaunchEnvTest, SizeMustBePositive) {
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_RANK", "0"}, {"GASP_NRANKS", "0"}})),
              AllOf(HasSubstr("GASP_NRANKS=0"), HasSubstr("out of range")));
  EXPECT_THAT(ErrorOf(FakeEnv({{"PMI_RANK", "0"}, {"PMI_SIZE", "0"}})), HasSubstr("PMI_SIZE=0"));
}

TEST(LaunchEnvTest, MissingSizeVariable) {
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_RANK", "0"}})), HasSubstr("GASP_NRANKS is not set"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_NRANKS", "2"}})), HasSubstr("GASP_RANK is not set"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"SLURM_PROCID", "0"}})), HasSubstr("SLURM_NTASKS is not set"));
}

TEST(LaunchEnvTest, LocalRankChecks) {
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_RANK", "0"},
                               {"GASP_NRANKS", "4"},
                               {"GASP_LOCAL_RANK", "2"},
                               {"GASP_LOCAL_NRANKS", "2"}})),
              HasSubstr("GASP_LOCAL_RANK=2 is not below GASP_LOCAL_NRANKS=2"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"GASP_RANK", "0"},
                               {"GASP_NRANKS", "2"},
                               {"GASP_LOCAL_RANK", "0"},
                               {"GASP_LOCAL_NRANKS", "3"}})),
              HasSubstr("GASP_LOCAL_NRANKS=3 is larger than the job size"));
  EXPECT_THAT(
      ErrorOf(FakeEnv({{"GASP_RANK", "0"}, {"GASP_NRANKS", "2"}, {"GASP_LOCAL_RANK", "0"}})),
      HasSubstr("must be set together"));
  EXPECT_THAT(ErrorOf(FakeEnv({{"SLURM_PROCID", "0"},
                               {"SLURM_NTASKS", "2"},
                               {"SLURM_LOCALID", "0"},
                               {"SLURM_TASKS_PER_NODE", "2(x"}})),
              HasSubstr("SLURM_TASKS_PER_NODE='2(x'"));
}

TEST(SlurmTasksOnNodeTest, CompressedLists) {
  EXPECT_EQ(*SlurmTasksOnNode("4", 0, "V"), 4);
  EXPECT_EQ(*SlurmTasksOnNode("2(x3),1", 0, "V"), 2);
  EXPECT_EQ(*SlurmTasksOnNode("2(x3),1", 2, "V"), 2);
  EXPECT_EQ(*SlurmTasksOnNode("2(x3),1", 3, "V"), 1);
  EXPECT_EQ(*SlurmTasksOnNode("1,5(x2)", 2, "V"), 5);
  EXPECT_THAT(std::string(SlurmTasksOnNode("2(x3),1", 4, "V").status().message()),
              HasSubstr("lists 4 nodes but SLURM_NODEID=4"));
  for (const char* bad : {"", "x", "2(3)", "2(x0)", "0", "2(x3", "2,,3", "-1"}) {
    EXPECT_FALSE(SlurmTasksOnNode(bad, 0, "V").ok()) << bad;
  }
}

}  // namespace
}  // namespace boot
}  // namespace gasp

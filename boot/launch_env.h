// Rank discovery from the environment a launcher leaves behind.
//
// A pure function over a getenv callback, so that every launcher's variables
// can be unit-tested without touching the process environment. Sources, in
// the order they are tried (the first one whose rank variable is set wins):
//
//   gasprun  GASP_RANK, GASP_NRANKS, GASP_LOCAL_RANK, GASP_LOCAL_NRANKS
//            (GASP_LAUNCHER, GASP_JOB_ID are reported when present)
//   ompi     OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE (mpirun)
//   slurm    SLURM_PROCID, SLURM_NTASKS (or SLURM_STEP_NUM_TASKS),
//            SLURM_LOCALID and SLURM_STEP_TASKS_PER_NODE (else
//            SLURM_TASKS_PER_NODE) indexed by SLURM_NODEID (srun)
//   pmi      PMI_RANK, PMI_SIZE (MPICH hydra, PMI-1 launchers); local rank and
//            size from MPI_LOCALRANKID / MPI_LOCALNRANKS when present
//   none     no launcher variables: one rank
//
// PMIx (PMIX_NAMESPACE) is not handled here: the PMIx bootstrap asks the
// PMIx server instead of reading variables.
#ifndef GASP_BOOT_LAUNCH_ENV_H_
#define GASP_BOOT_LAUNCH_ENV_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace gasp {
namespace boot {

// What the launcher told this process. Invariants (checked by
// DetectLaunchEnv): 0 <= rank < size; when local_known, 0 <= local_rank <
// local_size <= size.
struct LaunchEnv {
  std::string source = "none";  // "gasprun", "ompi", "slurm", "pmi" or "none"
  int rank = 0;
  int size = 1;
  // False when the launcher does not say how many ranks share this host
  // (plain PMI_RANK/PMI_SIZE); local_rank/local_size are then 0/1 and the
  // bootstrap computes them from an exchange of host names.
  bool local_known = true;
  int local_rank = 0;
  int local_size = 1;
  std::string launcher;  // GASP_LAUNCHER ("gasprun" when gasprun started us), else ""
  std::string job_id;    // GASP_JOB_ID, else SLURM_JOB_ID, else OMPI_MCA_ess_base_jobid, else ""
  std::string secret_fd;  // GASP_JOB_SECRET_FD (gasprun: boot/job_secret.h), else ""
};

// Returns the value of an environment variable or nullptr when unset.
using GetenvFn = std::function<const char*(const char*)>;

// Reads the launcher variables through `getenv_fn`. A malformed value
// (not a decimal integer, rank >= size, size < 1, a local rank outside the
// local size, a rank variable without its size variable) is an
// InvalidArgument error naming the variable, its value and the launcher
// that sets it. Never fails when no launcher variable is set.
absl::StatusOr<LaunchEnv> DetectLaunchEnv(const GetenvFn& getenv_fn);

// Parses Slurm's compressed tasks-per-node list ("2(x3),1" means three
// nodes with 2 tasks, then one node with 1) and returns the entry for node
// `node_index`. `variable` names the source variable in errors.
absl::StatusOr<int> SlurmTasksOnNode(const std::string& tasks_per_node, int node_index,
                                     const std::string& variable);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_LAUNCH_ENV_H_

#include "boot/launch_env.h"

#include <cstdint>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/status.h"

namespace gasp {
namespace boot {
namespace {

// Largest job accepted from a launcher variable (sanity bound, not a limit
// of the protocols).
constexpr int64_t kMaxRanks = int64_t{1} << 24;

// Strict non-negative decimal: no sign, no spaces inside, no hex.
bool ParseNonNegative(absl::string_view text, int64_t* out) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty() || text.size() > 10) return false;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

class Reader {
 public:
  Reader(const GetenvFn& getenv_fn, const char* launcher)
      : getenv_(getenv_fn), launcher_(launcher) {}

  bool Has(const char* name) const { return getenv_(name) != nullptr; }

  // Reads a required integer variable in [min_value, max_value].
  absl::StatusOr<int> Int(const char* name, int64_t min_value, int64_t max_value) const {
    const char* v = getenv_(name);
    if (v == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s is not set although other %s variables are: the launcher environment is "
          "incomplete (do not set these variables by hand unless you set all of them)",
          name, launcher_));
    }
    int64_t n;
    if (!ParseNonNegative(v, &n)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s='%s' (set by %s) is not a non-negative decimal integer", name, v, launcher_));
    }
    if (n < min_value || n > max_value) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s=%s (set by %s) is out of range: must be in [%d, %d]", name, v,
                          launcher_, min_value, max_value));
    }
    return static_cast<int>(n);
  }

  // Like Int() but returns nullopt when unset.
  absl::StatusOr<std::optional<int>> OptionalInt(const char* name, int64_t min_value,
                                                 int64_t max_value) const {
    if (!Has(name)) return std::optional<int>();
    GASP_ASSIGN_OR_RETURN(int v, Int(name, min_value, max_value));
    return std::optional<int>(v);
  }

  std::string Str(const char* name) const {
    const char* v = getenv_(name);
    return v == nullptr ? std::string() : std::string(v);
  }

 private:
  const GetenvFn& getenv_;
  const char* launcher_;
};

// rank/size pair check shared by every source; names both variables.
absl::Status CheckRank(int rank, int size, const char* rank_var, const char* size_var,
                       const char* launcher) {
  if (rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s=%d is not below %s=%d (set by %s): a rank must be in [0, size)",
                        rank_var, rank, size_var, size, launcher));
  }
  return absl::OkStatus();
}

absl::Status CheckLocal(const LaunchEnv& env, const char* lrank_var, const char* lsize_var,
                        const char* size_var, const char* launcher) {
  if (env.local_rank >= env.local_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s=%d is not below %s=%d (set by %s): a local rank must be in [0, local size)", lrank_var,
        env.local_rank, lsize_var, env.local_size, launcher));
  }
  if (env.local_size > env.size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s=%d is larger than the job size %s=%d (set by %s)", lsize_var,
                        env.local_size, size_var, env.size, launcher));
  }
  return absl::OkStatus();
}

absl::StatusOr<LaunchEnv> FromGasprun(const GetenvFn& getenv_fn) {
  Reader r(getenv_fn, "gasprun");
  LaunchEnv env;
  env.source = "gasprun";
  GASP_ASSIGN_OR_RETURN(env.size, r.Int("GASP_NRANKS", 1, kMaxRanks));
  GASP_ASSIGN_OR_RETURN(env.rank, r.Int("GASP_RANK", 0, kMaxRanks));
  GASP_RETURN_IF_ERROR(CheckRank(env.rank, env.size, "GASP_RANK", "GASP_NRANKS", "gasprun"));
  GASP_ASSIGN_OR_RETURN(std::optional<int> lsize, r.OptionalInt("GASP_LOCAL_NRANKS", 1, kMaxRanks));
  GASP_ASSIGN_OR_RETURN(std::optional<int> lrank, r.OptionalInt("GASP_LOCAL_RANK", 0, kMaxRanks));
  if (lsize.has_value() != lrank.has_value()) {
    return absl::InvalidArgumentError(
        "GASP_LOCAL_RANK and GASP_LOCAL_NRANKS must be set together (set by gasprun)");
  }
  if (lsize.has_value()) {
    env.local_rank = *lrank;
    env.local_size = *lsize;
    GASP_RETURN_IF_ERROR(
        CheckLocal(env, "GASP_LOCAL_RANK", "GASP_LOCAL_NRANKS", "GASP_NRANKS", "gasprun"));
  } else {
    env.local_known = false;
  }
  env.launcher = r.Str("GASP_LAUNCHER");
  env.job_id = r.Str("GASP_JOB_ID");
  env.secret_fd = r.Str("GASP_JOB_SECRET_FD");
  return env;
}

absl::StatusOr<LaunchEnv> FromOmpi(const GetenvFn& getenv_fn) {
  Reader r(getenv_fn, "mpirun (Open MPI)");
  LaunchEnv env;
  env.source = "ompi";
  GASP_ASSIGN_OR_RETURN(env.size, r.Int("OMPI_COMM_WORLD_SIZE", 1, kMaxRanks));
  GASP_ASSIGN_OR_RETURN(env.rank, r.Int("OMPI_COMM_WORLD_RANK", 0, kMaxRanks));
  GASP_RETURN_IF_ERROR(CheckRank(env.rank, env.size, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                 "mpirun (Open MPI)"));
  GASP_ASSIGN_OR_RETURN(std::optional<int> lrank,
                        r.OptionalInt("OMPI_COMM_WORLD_LOCAL_RANK", 0, kMaxRanks));
  GASP_ASSIGN_OR_RETURN(std::optional<int> lsize,
                        r.OptionalInt("OMPI_COMM_WORLD_LOCAL_SIZE", 1, kMaxRanks));
  if (lrank.has_value() && lsize.has_value()) {
    env.local_rank = *lrank;
    env.local_size = *lsize;
    GASP_RETURN_IF_ERROR(CheckLocal(env, "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
                                    "OMPI_COMM_WORLD_SIZE", "mpirun (Open MPI)"));
  } else {
    env.local_known = false;
  }
  env.job_id = r.Str("OMPI_MCA_ess_base_jobid");
  return env;
}

absl::StatusOr<LaunchEnv> FromSlurm(const GetenvFn& getenv_fn) {
  Reader r(getenv_fn, "srun (Slurm)");
  LaunchEnv env;
  env.source = "slurm";
  // The step's task count is the job size of this step; SLURM_NTASKS is the
  // allocation's (srun sets both to the step's value for its tasks).
  const char* size_var = r.Has("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
  GASP_ASSIGN_OR_RETURN(env.size, r.Int(size_var, 1, kMaxRanks));
  GASP_ASSIGN_OR_RETURN(env.rank, r.Int("SLURM_PROCID", 0, kMaxRanks));
  GASP_RETURN_IF_ERROR(CheckRank(env.rank, env.size, "SLURM_PROCID", size_var, "srun (Slurm)"));
  const char* tpn_var =
      r.Has("SLURM_STEP_TASKS_PER_NODE") ? "SLURM_STEP_TASKS_PER_NODE" : "SLURM_TASKS_PER_NODE";
  GASP_ASSIGN_OR_RETURN(std::optional<int> lrank, r.OptionalInt("SLURM_LOCALID", 0, kMaxRanks));
  if (lrank.has_value() && r.Has(tpn_var)) {
    GASP_ASSIGN_OR_RETURN(std::optional<int> node, r.OptionalInt("SLURM_NODEID", 0, kMaxRanks));
    GASP_ASSIGN_OR_RETURN(env.local_size,
                          SlurmTasksOnNode(r.Str(tpn_var), node.value_or(0), tpn_var));
    env.local_rank = *lrank;
    GASP_RETURN_IF_ERROR(CheckLocal(env, "SLURM_LOCALID", tpn_var, size_var, "srun (Slurm)"));
  } else {
    env.local_known = false;
  }
  env.job_id = r.Str("SLURM_JOB_ID");
  if (!env.job_id.empty() && r.Has("SLURM_STEP_ID")) {
    env.job_id = absl::StrCat(env.job_id, ".", r.Str("SLURM_STEP_ID"));
  }
  return env;
}

absl::StatusOr<LaunchEnv> FromPmi(const GetenvFn& getenv_fn) {
  Reader r(getenv_fn, "the PMI launcher");
  LaunchEnv env;
  env.source = "pmi";
  GASP_ASSIGN_OR_RETURN(env.size, r.Int("PMI_SIZE", 1, kMaxRanks));
  GASP_ASSIGN_OR_RETURN(env.rank, r.Int("PMI_RANK", 0, kMaxRanks));
  GASP_RETURN_IF_ERROR(CheckRank(env.rank, env.size, "PMI_RANK", "PMI_SIZE", "the PMI launcher"));
  GASP_ASSIGN_OR_RETURN(std::optional<int> lrank, r.OptionalInt("MPI_LOCALRANKID", 0, kMaxRanks));
  GASP_ASSIGN_OR_RETURN(std::optional<int> lsize, r.OptionalInt("MPI_LOCALNRANKS", 1, kMaxRanks));
  if (lrank.has_value() && lsize.has_value()) {
    env.local_rank = *lrank;
    env.local_size = *lsize;
    GASP_RETURN_IF_ERROR(
        CheckLocal(env, "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "PMI_SIZE", "the PMI launcher"));
  } else {
    env.local_known = false;
  }
  return env;
}

}  // namespace

absl::StatusOr<int> SlurmTasksOnNode(const std::string& tasks_per_node, int node_index,
                                     const std::string& variable) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s='%s' (set by srun) is malformed: %s (expected a list like 2(x3),1)",
                        variable, tasks_per_node, why));
  };
  if (node_index < 0) return bad("negative node index");
  int64_t seen = 0;
  int64_t found = -1;
  for (absl::string_view item : absl::StrSplit(tasks_per_node, ',')) {
    item = absl::StripAsciiWhitespace(item);
    int64_t tasks = 0;
    int64_t repeat = 1;
    size_t paren = item.find('(');
    absl::string_view count = item.substr(0, paren);
    if (!ParseNonNegative(count, &tasks) || tasks < 1)
      return bad("a task count is not a number >= 1");
    if (paren != absl::string_view::npos) {
      absl::string_view rep = item.substr(paren);
      if (rep.size() < 4 || rep[1] != 'x' || rep.back() != ')') return bad("bad repeat '(xN)'");
      rep = rep.substr(2, rep.size() - 3);
      if (!ParseNonNegative(rep, &repeat) || repeat < 1) return bad("bad repeat count");
    }
    // Validate the whole list, not only the part before our node.
    if (found < 0 && node_index < seen + repeat) found = tasks;
    seen += repeat;
    if (seen > kMaxRanks) return bad("too many nodes");
  }
  if (found >= 0) return static_cast<int>(found);
  return absl::InvalidArgumentError(
      absl::StrFormat("%s='%s' (set by srun) lists %d nodes but SLURM_NODEID=%d", variable,
                      tasks_per_node, seen, node_index));
}

absl::StatusOr<LaunchEnv> DetectLaunchEnv(const GetenvFn& getenv_fn) {
  if (getenv_fn("GASP_RANK") != nullptr || getenv_fn("GASP_NRANKS") != nullptr) {
    return FromGasprun(getenv_fn);
  }
  if (getenv_fn("OMPI_COMM_WORLD_RANK") != nullptr) return FromOmpi(getenv_fn);
  if (getenv_fn("SLURM_PROCID") != nullptr) return FromSlurm(getenv_fn);
  if (getenv_fn("PMI_RANK") != nullptr) return FromPmi(getenv_fn);
  LaunchEnv env;
  const char* launcher = getenv_fn("GASP_LAUNCHER");
  if (launcher != nullptr) env.launcher = launcher;
  return env;
}

}  // namespace boot
}  // namespace gasp

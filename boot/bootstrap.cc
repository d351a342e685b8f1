// CreateBootstrap: picks the bootstrap (see boot/bootstrap.h).
#include "boot/bootstrap.h"

#include <cstdlib>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "boot/bootstrap_internal.h"
#include "boot/launch_env.h"

namespace gasp {
namespace boot {
namespace {

absl::StatusOr<std::unique_ptr<Bootstrap>> Choose(const Config& config, const GetenvFn& getenv_fn) {
  const std::string& boot = config.boot;
  bool has_pmix = getenv_fn("PMIX_NAMESPACE") != nullptr;
  if (boot == "single") {
    absl::StatusOr<LaunchEnv> env = DetectLaunchEnv(getenv_fn);
    if (env.ok() && env->size > 1) {
      GASP_LOG(Warn) << "GASP_BOOT=single: this process runs as a job of its own although the "
                     << "launcher (" << env->source << ") started " << env->size << " ranks";
    }
    return CreateSingleBootstrap();
  }
  if (boot == "pmix") return CreatePmixBootstrap(config);

  GASP_ASSIGN_OR_RETURN(LaunchEnv env, DetectLaunchEnv(getenv_fn));
  if (boot == "tcp") return CreateTcpBootstrap(config, env);
  if (boot != "auto" && !boot.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GASP_BOOT=%s is not valid: expected auto, pmix, tcp or single", boot));
  }

  // auto: gasprun, then PMIx, then a TCP rendezvous, else a single rank.
  if (env.source == "gasprun" && env.launcher == "gasprun") {
    if (config.coordinator.empty()) {
      return absl::InvalidArgumentError(
          "GASP_LAUNCHER=gasprun but GASP_COORDINATOR is not set: gasprun always sets it; was "
          "the environment changed between gasprun and this process?");
    }
    return CreateTcpBootstrap(config, env);
  }
  if (has_pmix) return CreatePmixBootstrap(config);
  if (!config.coordinator.empty()) return CreateTcpBootstrap(config, env);
  if (env.size > 1) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%d ranks but no rendezvous: launch with gasprun, with PMIx (mpirun / srun --mpi=pmix), "
        "or set GASP_COORDINATOR=host:port (this is rank %d; the launcher variables come from "
        "%s)",
        env.size, env.rank, env.source));
  }
  return CreateSingleBootstrap();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Bootstrap>> CreateBootstrapWithEnv(const Config& config,
                                                                  const GetenvFn& getenv_fn) {
  absl::StatusOr<std::unique_ptr<Bootstrap>> b = Choose(config, getenv_fn);
  if (!b.ok()) return b;
  SetLogRank((*b)->rank(), (*b)->size());
  GASP_LOG(Info) << "bootstrap " << (*b)->method() << ": rank " << (*b)->rank() << " of "
                 << (*b)->size() << ", local " << (*b)->local_rank() << " of "
                 << (*b)->local_size();
  return b;
}

absl::StatusOr<std::unique_ptr<Bootstrap>> CreateBootstrap(const Config& config) {
  return CreateBootstrapWithEnv(config, [](const char* name) { return std::getenv(name); });
}

}  // namespace boot
}  // namespace gasp

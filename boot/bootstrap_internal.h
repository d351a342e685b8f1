// Factories of the Bootstrap implementations, used by CreateBootstrap
// (boot/bootstrap.cc) and by tests. Not part of the public API.
#ifndef GASP_BOOT_BOOTSTRAP_INTERNAL_H_
#define GASP_BOOT_BOOTSTRAP_INTERNAL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "base/settings.h"
#include "boot/bootstrap.h"
#include "boot/launch_env.h"

namespace gasp {
namespace boot {

// CreateBootstrap with the launcher variables read through `getenv_fn`
// instead of the process environment (PMIx still reads the process
// environment: PMIx_Init does). Same contract as CreateBootstrap.
absl::StatusOr<std::unique_ptr<Bootstrap>> CreateBootstrapWithEnv(const Config& config,
                                                                  const GetenvFn& getenv_fn);

// One rank, no launcher: collectives return at once.
std::unique_ptr<Bootstrap> CreateSingleBootstrap();

// TCP rendezvous at config.coordinator (GASP_COORDINATOR). Rank 0 hosts
// the coordinator unless env.launcher is "gasprun". method() is "gasprun"
// when gasprun launched the job, else "tcp". Waits until now +
// config.timeout for the coordinator and, when `env` lacks local ranks,
// for an exchange of host names.
absl::StatusOr<std::unique_ptr<Bootstrap>> CreateTcpBootstrap(const Config& config,
                                                              const LaunchEnv& env);

// PMIx client (PMIx_Init); requires PMIX_NAMESPACE in the environment.
absl::StatusOr<std::unique_ptr<Bootstrap>> CreatePmixBootstrap(const Config& config);

// Local rank and size of every rank from the host name of each, in rank
// order: ranks on the same host are numbered by increasing rank.
void LocalRanksFromHosts(const std::vector<std::string>& hosts, int rank, int* local_rank,
                         int* local_size);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_BOOTSTRAP_INTERNAL_H_

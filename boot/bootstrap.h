// Bootstrap: who am I, how many are we, and the few collectives needed
// before the transport is up (allgather of endpoint blobs, barrier, abort).
//
// Sources, in the order CreateBootstrap tries them (GASP_BOOT=auto):
//   gasprun   GASP_RANK / GASP_NRANKS / GASP_LOCAL_RANK + GASP_COORDINATOR
//   PMIx      when PMIX_NAMESPACE is set (mpirun, srun --mpi=pmix)
//   tcp       rank/size from OMPI_COMM_WORLD_*, SLURM_PROCID/SLURM_NTASKS or
//             PMI_RANK/PMI_SIZE, rendezvous at GASP_COORDINATOR=host:port
//             (rank 0 listens there when no gasprun runs the coordinator)
//   single    one rank, no launcher
#ifndef GASP_BOOT_BOOTSTRAP_H_
#define GASP_BOOT_BOOTSTRAP_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/settings.h"

namespace gasp {
namespace boot {

// Called from a monitor thread when the launcher or coordinator reports
// that another rank died or the job is being aborted. `rank` is the dead
// rank (-1 if unknown); `why` is a sentence naming it, its host and cause.
using JobFailureHandler = std::function<void(int rank, const std::string& why)>;

class Bootstrap {
 public:
  virtual ~Bootstrap() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // index among the ranks on this host
  virtual int local_size() const = 0;
  // "gasprun", "pmix", "tcp" or "single".
  virtual std::string method() const = 0;

  // Every rank passes a blob of the same size; returns all blobs indexed by
  // rank. Waits until `deadline`; the error then names the ranks that did
  // not arrive. Calls must be made in the same order on every rank.
  virtual absl::StatusOr<std::vector<std::string>> Allgather(absl::string_view mine,
                                                             absl::Time deadline) = 0;

  // Returns when every rank has entered; bounded like Allgather.
  virtual absl::Status Barrier(absl::Time deadline) = 0;

  // Ends the whole job: prints `message`, makes every rank exit non-zero and
  // exits this process with `exit_code`. Never returns.
  [[noreturn]] virtual void Abort(int exit_code, absl::string_view message) = 0;

  // IPv4 address this process uses to reach the coordinator ("" if none);
  // the tcp transport advertises it so that peers on other hosts (or
  // network namespaces) can reach this rank.
  virtual std::string LocalAddressHint() const = 0;

  // The job secret the launcher handed this rank (gasprun; 32 raw bytes),
  // "" when the launcher hands none (then ObtainJobSecret draws and
  // distributes one).
  virtual std::string LauncherSecret() const { return ""; }

  // Installs the handler for failures reported by the launcher/coordinator.
  // Without one, a failure logs and exits the process with status 1.
  virtual void SetJobFailureHandler(JobFailureHandler handler) = 0;

  // Orderly end: tells the launcher/coordinator this rank finished cleanly
  // (so its exit is not a failure). No collectives after this.
  virtual absl::Status Finalize(absl::Time deadline) = 0;
};

// Picks and initializes the bootstrap described in the header comment.
// Errors name the variable to set, e.g. a missing GASP_COORDINATOR.
absl::StatusOr<std::unique_ptr<Bootstrap>> CreateBootstrap(const Config& config);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_BOOTSTRAP_H_

// Access to the runtime's layers for gasp's own tests and benchmarks.
// Not part of the public API.
#ifndef GASP_RUNTIME_RUNTIME_INTERNAL_H_
#define GASP_RUNTIME_RUNTIME_INTERNAL_H_

#include <functional>
#include <string>

#include "base/settings.h"
#include "boot/job_secret.h"
#include "consistency/coherence.h"
#include "consistency/sync.h"
#include "gas/range.h"
#include "protect/protection.h"
#include "transport/transport.h"

namespace gasp {
namespace internal {

// REQUIRES: Init succeeded and Finalize not yet called.
transport::Transport* GetTransport();
gas::GlobalRange* GetRange();
consistency::Coherence* GetCoherence();
consistency::Sync* GetSync();
const Config& GetConfig();
protect::Protection* GetProtection();
// "rank 3 (host:pid)".
std::string DescribeRank(int rank);

// The address other ranks reach this rank at (the transport's address).
std::string AdvertisedHost();
// The host part listeners of this rank bind: AdvertisedHost(), or 0.0.0.0
// when GASP_TCP_ADDR=0.0.0.0 asks for every interface.
std::string ListenHost();
// The job secret (boot/job_secret.h): the key of shipped calls' credentials.
const boot::JobSecret& JobSecret();

// Trusted binding (name server): gives this process `rights` on collective
// domain `domain` (a process grant) and records the grant in this rank's
// own view. Other ranks' views are not changed (unlike CoGrant).
absl::Status BindGrant(int domain, protect::Rights rights);

// This job's id: the launcher's (GASP_JOB_ID, SLURM job.step, Open MPI's
// job id), else one derived from the job secret (boot::JobIdOf). Never "".
std::string JobId();

// Checks a by-reference argument [addr, addr+length) for rank `rank`:
// InvalidArgument when it leaves the global range or covers unallocated
// pages, PermissionDenied when it covers a domain `rank` was not granted
// (read, or read-write when `write`). Length 0 is OK.
absl::Status CheckGlobalRef(uint64_t addr, uint64_t length, int rank, bool write);

// The access `rank` was granted on collective domain `domain` (read-write
// for the default domain 0, none for unknown domains).
protect::Rights GrantedTo(int domain, int rank);

// Installs a remote key a name-server binding handed out: rank `rank`'s
// key for the domain segment containing `address`. InvalidArgument if no
// segment of `domain` contains it.
absl::Status InstallBoundKey(int domain, uint64_t address, int rank, uint64_t key);

// This rank's own key for the domain segment containing `address`
// (read-only or read-write registration), for publishing; 0 if none.
uint64_t OwnDomainKey(int domain, uint64_t address, bool write);

// Runs `fn` in Finalize after the final barrier (every rank has stopped
// calling), before the transport shuts down, in registration order:
// services stop serving here.
void AtFinalize(std::function<void()> fn);

}  // namespace internal
}  // namespace gasp

#endif  // GASP_RUNTIME_RUNTIME_INTERNAL_H_

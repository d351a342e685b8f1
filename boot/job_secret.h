// The job secret: 32 random bytes every rank of a job holds and nobody else
// does. It keys the tcp transport's HELLO challenge-response and the
// credentials of function-shipped calls (docs/protection.md, "Threat
// model"). It is never written to disk, to the environment or to a log.
//
// Where it comes from, decided by the bootstrap method (the same on every
// rank, so every rank takes the same path):
//   gasprun  gasprun draws it and hands each rank an inherited memfd
//            holding it; GASP_JOB_SECRET_FD names the descriptor, which the
//            rank reads and closes when it connects to gasprun's
//            coordinator (whose HELLO it proves: nobody else can take a
//            rank's place).
//   pmix,    rank 0 draws it and the bootstrap's allgather carries it (PMIx
//   tcp      job-level data through the local PMIx server under mpirun and
//            srun; the job's coordinator, which admits one process per rank,
//            under the tcp rendezvous).
//   single   drawn locally.
#ifndef GASP_BOOT_JOB_SECRET_H_
#define GASP_BOOT_JOB_SECRET_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "boot/bootstrap.h"

namespace gasp {
namespace boot {

inline constexpr size_t kJobSecretBytes = 32;
// Set by gasprun: the number of an inherited descriptor holding the secret.
inline constexpr char kJobSecretFdVariable[] = "GASP_JOB_SECRET_FD";

struct JobSecret {
  std::array<uint8_t, kJobSecretBytes> bytes{};
  std::string source;  // "gasprun", "rank 0 (pmix)", ... for messages

  absl::Span<const uint8_t> key() const { return absl::MakeConstSpan(bytes); }
};

// A fresh secret from the kernel's CSPRNG.
absl::StatusOr<JobSecret> DrawJobSecret(std::string source);

// Writes `secret` into a sealed, close-on-exec memfd and returns its
// descriptor, for gasprun to hand to the ranks it forks: no other process
// it starts (the name server, mpirun) inherits it.
absl::StatusOr<int> JobSecretToFd(const JobSecret& secret);

// In a forked rank before execve: lets `fd` (from JobSecretToFd) survive
// the exec. Async-signal-safe (one fcntl).
void InheritJobSecretFd(int fd);

// Reads the secret from the descriptor named by `fd_text` (the value of
// GASP_JOB_SECRET_FD) and closes it. Errors name the variable: not a
// descriptor number, not open, too short.
absl::StatusOr<JobSecret> JobSecretFromFd(const char* fd_text);

// The secret of this job: the launcher's (boot.LauncherSecret(), gasprun),
// else drawn by rank 0 and carried by one allgather of the bootstrap
// (bounded by `deadline`), else, for a single rank, drawn here.
absl::StatusOr<JobSecret> ObtainJobSecret(Bootstrap& boot, absl::Time deadline);

// The job's id (CallRequest.job_id, name-server registrations): the
// launcher's (`launcher_id`: GASP_JOB_ID, SLURM's job.step, Open MPI's job
// id) when it gives one, else "gasp-" and 16 hex digits derived from the
// secret (one-way), the same at every rank, so that two jobs without a
// launcher id do not both call themselves "".
std::string JobIdOf(absl::string_view launcher_id, const JobSecret& secret);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_JOB_SECRET_H_

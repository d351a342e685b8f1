#include "boot/job_secret.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/crypto.h"
#include "base/status.h"

namespace gasp {
namespace boot {

absl::StatusOr<JobSecret> DrawJobSecret(std::string source) {
  JobSecret s;
  s.source = std::move(source);
  GASP_RETURN_IF_ERROR(RandomBytes(s.bytes.data(), s.bytes.size()));
  return s;
}

void InheritJobSecretFd(int fd) { fcntl(fd, F_SETFD, 0); }

absl::StatusOr<int> JobSecretToFd(const JobSecret& secret) {
  // memfd: the secret lives in memory only; sealed so a rank cannot change
  // what its siblings read; close-on-exec so that only the processes the
  // launcher hands it to on purpose (InheritJobSecretFd) get it.
  int fd = memfd_create("gasp-job-secret", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  ssize_t w = pwrite(fd, secret.bytes.data(), secret.bytes.size(), 0);
  if (w != static_cast<ssize_t>(secret.bytes.size()) ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    int e = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("cannot write the job secret to a memfd: ",
                                            std::strerror(e)));
  }
  return fd;
}

absl::StatusOr<JobSecret> JobSecretFromFd(const char* fd_text) {
  int fd = -1;
  if (fd_text == nullptr || !absl::SimpleAtoi(fd_text, &fd) || fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kJobSecretFdVariable, "=", fd_text == nullptr ? "(unset)" : fd_text,
        " is not a descriptor number; it is set by gasprun, do not set it by hand"));
  }
  JobSecret s;
  s.source = "gasprun";
  ssize_t got = pread(fd, s.bytes.data(), s.bytes.size(), 0);
  int e = errno;
  close(fd);
  if (got != static_cast<ssize_t>(s.bytes.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        kJobSecretFdVariable, "=", fd_text, ": cannot read the job secret (",
        got < 0 ? std::strerror(e) : absl::StrCat(got, " bytes").c_str(),
        "); start the ranks with gasprun, or without ", kJobSecretFdVariable));
  }
  return s;
}

absl::StatusOr<JobSecret> ObtainJobSecret(Bootstrap& boot, absl::Time deadline) {
  const std::string method = boot.method();
  if (method == "single") return DrawJobSecret("this rank (single)");
  if (const std::string given = boot.LauncherSecret(); !given.empty()) {
    if (given.size() != kJobSecretBytes) {
      return absl::InternalError(absl::StrFormat("the launcher's job secret has %d bytes, not %d",
                                                 given.size(), kJobSecretBytes));
    }
    JobSecret s;
    s.source = method;
    std::memcpy(s.bytes.data(), given.data(), kJobSecretBytes);
    return s;
  }
  if (method == "gasprun") {
    return absl::FailedPreconditionError(absl::StrCat(
        "started by gasprun, but no job secret came with it (", kJobSecretFdVariable,
        "): use the gasprun of the same installation"));
  }
  // Rank 0 draws; everyone else contributes zeros of the same size.
  std::string mine(kJobSecretBytes, '\0');
  if (boot.rank() == 0) {
    GASP_ASSIGN_OR_RETURN(JobSecret drawn, DrawJobSecret(""));
    mine.assign(reinterpret_cast<const char*>(drawn.bytes.data()), drawn.bytes.size());
  }
  absl::StatusOr<std::vector<std::string>> all = boot.Allgather(mine, deadline);
  if (!all.ok()) return Annotate(all.status(), "while distributing the job secret");
  if (all->empty() || (*all)[0].size() != kJobSecretBytes) {
    return absl::DataLossError(absl::StrCat("rank 0's job secret arrived with ",
                                            all->empty() ? 0 : (*all)[0].size(),
                                            " bytes instead of ", kJobSecretBytes));
  }
  JobSecret s;
  s.source = absl::StrCat("rank 0 (", method, ")");
  std::memcpy(s.bytes.data(), (*all)[0].data(), kJobSecretBytes);
  return s;
}

std::string JobIdOf(absl::string_view launcher_id, const JobSecret& secret) {
  if (!launcher_id.empty()) return std::string(launcher_id);
  const Mac mac = HmacSha256(secret.key(), {"gasp-job-id"});
  std::string id = "gasp-";
  for (int i = 0; i < 8; ++i) absl::StrAppendFormat(&id, "%02x", mac[i]);
  return id;
}

}  // namespace boot
}  // namespace gasp

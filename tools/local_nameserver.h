// A gasp_nameserver child for one local gasprun job: started insecure on
// 127.0.0.1 with an ephemeral port, handed to the ranks as
// GASP_NAMESERVER, stopped when the job ends. Insecure is acceptable here
// because it listens on loopback only and lives as long as the job
// (docs/services.md).
#ifndef GASP_TOOLS_LOCAL_NAMESERVER_H_
#define GASP_TOOLS_LOCAL_NAMESERVER_H_

#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gasp {

// gasp_nameserver beside the running program (an installed bin/ directory),
// in the Bazel output tree beside it (bazel-bin/tools/gasprun ->
// bazel-bin/nameserver/gasp_nameserver; /proc/self/exe resolves runfiles
// symlinks to that tree), else in PATH. nullopt when none is found.
std::optional<std::string> FindNameServerBinary();

class LocalNameServer {
 public:
  // Runs `binary` --insecure --listen 127.0.0.1:0 --port-file FILE in its
  // own process group (terminal signals are for the ranks), killed if the
  // caller dies (PR_SET_PDEATHSIG), with `child_sigmask` as its signal mask
  // and stdin from /dev/null. Waits at most `timeout` for the port file.
  // Errors (exit before serving, timeout) say why; the child is then gone.
  static absl::StatusOr<std::unique_ptr<LocalNameServer>> Start(const std::string& binary,
                                                                const sigset_t& child_sigmask,
                                                                absl::Duration timeout);

  // Stop(absl::Seconds(2)).
  ~LocalNameServer();
  LocalNameServer(const LocalNameServer&) = delete;
  LocalNameServer& operator=(const LocalNameServer&) = delete;

  // "127.0.0.1:<port>".
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // For a caller that reaps children with waitpid(-1): the name server was
  // reaped; Stop() then has nothing to do (and must not signal its pid).
  void MarkExited() { exited_ = true; }

  // SIGTERM, up to `grace` to exit, then SIGKILL; reaps. Idempotent.
  void Stop(absl::Duration grace);

 private:
  LocalNameServer() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string address_;
};

}  // namespace gasp

#endif  // GASP_TOOLS_LOCAL_NAMESERVER_H_

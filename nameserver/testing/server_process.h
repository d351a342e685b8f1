// gasp_nameserver as a child process of a test: started from the runfiles,
// found through its --port-file, stopped by signal. Test-only.
#ifndef GASP_NAMESERVER_TESTING_SERVER_PROCESS_H_
#define GASP_NAMESERVER_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gasp {
namespace nameserver {
namespace testing {

// Path of a file in the test's runfiles, e.g. "nameserver/gasp_nameserver".
std::string Runfile(const std::string& path);

// A fresh directory under TEST_TMPDIR.
std::string NewTempDir(const std::string& name);

struct ExitResult {
  int status = -1;     // as from waitpid
  std::string stderr_text;
};

class ServerProcess {
 public:
  // Starts gasp_nameserver with `args` plus --port-file, and waits (at most
  // `timeout`) until it serves. Fails with the exit status and stderr when
  // it exits first.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(30));

  // Runs gasp_nameserver with `args` and waits for it to exit (at most
  // `timeout`, then SIGKILL): for start-up failures.
  static ExitResult Run(const std::vector<std::string>& args,
                        absl::Duration timeout = absl::Seconds(30));

  // SIGKILLs and reaps the process if it still runs.
  ~ServerProcess();

  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"
  pid_t pid() const { return pid_; }

  // Sends `sig` to the server; for SIGSTOP, returns once the server is
  // stopped (at most 5 s).
  void Signal(int sig);

  // Waits for the exit (at most `timeout`); returns the waitpid status, or
  // DeadlineExceeded.
  absl::StatusOr<int> WaitExit(absl::Duration timeout);

  // What the server wrote to stderr so far.
  std::string Stderr() const;

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int port_ = 0;
  std::string stderr_path_;
};

}  // namespace testing
}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_TESTING_SERVER_PROCESS_H_

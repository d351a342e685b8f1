#include "nameserver/testing/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace gasp {
namespace nameserver {
namespace testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// fork + exec with stderr to `stderr_path`; the child dies with the test.
// Everything the child needs is prepared before fork (other threads exist).
pid_t Spawn(const std::vector<std::string>& args, const std::string& stderr_path) {
  std::vector<std::string> argv_store = {Runfile("nameserver/gasp_nameserver")};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_store) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) dup2(err, 2);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir == nullptr ? "." : srcdir, "/gasp/", path);
}

std::string NewTempDir(const std::string& name) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(tmp == nullptr ? "/tmp" : tmp, "/", name, "-", getpid(), "-", counter++);
  mkdir(dir.c_str(), 0700);
  return dir;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::vector<std::string>& args, absl::Duration timeout) {
  const std::string dir = NewTempDir("server");
  const std::string port_file = dir + "/port";
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->stderr_path_ = dir + "/stderr";
  std::vector<std::string> full = args;
  full.insert(full.end(), {"--port-file", port_file});
  p->pid_ = Spawn(full, p->stderr_path_);
  if (p->pid_ < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int port;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)), &port) && port > 0) {
      p->port_ = port;
      return p;
    }
    int status;
    if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->reaped_ = true;
      return absl::FailedPreconditionError(
          absl::StrCat("gasp_nameserver ", absl::StrJoin(args, " "), " exited (status ", status,
                       ") before serving: ", p->Stderr()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("gasp_nameserver did not write its port within ", absl::FormatDuration(timeout),
                   ": ", p->Stderr()));
}

ExitResult ServerProcess::Run(const std::vector<std::string>& args, absl::Duration timeout) {
  ServerProcess p;
  p.stderr_path_ = NewTempDir("run") + "/stderr";
  p.pid_ = Spawn(args, p.stderr_path_);
  ExitResult r;
  absl::StatusOr<int> status = p.WaitExit(timeout);
  r.status = status.ok() ? *status : -1;
  r.stderr_text = p.Stderr();
  return r;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string ServerProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

void ServerProcess::Signal(int sig) {
  if (pid_ <= 0 || reaped_) return;
  kill(pid_, sig);
  if (sig != SIGSTOP) return;
  // Signals arrive asynchronously: wait (bounded) until the kernel reports
  // the process stopped, so that a call made next really meets a hung
  // server rather than one that answers first.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    std::ifstream stat(absl::StrCat("/proc/", pid_, "/stat"));
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() &&
        (line[paren + 2] == 'T' || line[paren + 2] == 't')) {
      return;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

absl::StatusOr<int> ServerProcess::WaitExit(absl::Duration timeout) {
  if (reaped_) return absl::FailedPreconditionError("already reaped");
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return status;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("gasp_nameserver (pid ", pid_, ") still runs after ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string ServerProcess::Stderr() const { return ReadFile(stderr_path_); }

}  // namespace testing
}  // namespace nameserver
}  // namespace gasp

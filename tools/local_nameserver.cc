#include "tools/local_nameserver.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

extern char** environ;

namespace gasp {
namespace {

bool IsExecutable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("exited with status ", WEXITSTATUS(status));
}

}  // namespace

std::optional<std::string> FindNameServerBinary() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    for (const std::string& c :
         {dir + "/gasp_nameserver", dir + "/../nameserver/gasp_nameserver"}) {
      if (IsExecutable(c)) return c;
    }
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view d : absl::StrSplit(path == nullptr ? "" : path, ':', absl::SkipEmpty())) {
    std::string c = absl::StrCat(d, "/gasp_nameserver");
    if (IsExecutable(c)) return c;
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<LocalNameServer>> LocalNameServer::Start(
    const std::string& binary, const sigset_t& child_sigmask, absl::Duration timeout) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/gasprun-ns-XXXXXX");
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", dir_template, ": ", std::strerror(errno)));
  }
  const std::string dir = dir_template;
  const std::string port_file = dir + "/port";
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls (the caller may have threads).
  std::vector<std::string> args = {binary, "--insecure", "--listen", "127.0.0.1:0", "--port-file",
                                   port_file};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  std::unique_ptr<LocalNameServer> ns(new LocalNameServer());
  ns->pid_ = fork();
  if (ns->pid_ < 0) {
    rmdir(dir.c_str());
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (ns->pid_ == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigprocmask(SIG_SETMASK, &child_sigmask, nullptr);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  setpgid(ns->pid_, ns->pid_);
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status failure;
  for (;;) {
    int port = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)), &port) && port > 0) {
      ns->address_ = absl::StrCat("127.0.0.1:", port);
      break;
    }
    int status;
    if (waitpid(ns->pid_, &status, WNOHANG) == ns->pid_) {
      ns->exited_ = true;
      failure = absl::UnavailableError(absl::StrCat(binary, " ", DescribeExit(status),
                                                    " before serving (its message is above)"));
      break;
    }
    if (absl::Now() >= deadline) {
      failure = absl::DeadlineExceededError(absl::StrCat(
          binary, " did not start serving within ", absl::FormatDuration(timeout)));
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  unlink(port_file.c_str());
  rmdir(dir.c_str());
  if (!failure.ok()) return failure;  // the destructor stops a child that hangs
  return ns;
}

LocalNameServer::~LocalNameServer() { Stop(absl::Seconds(2)); }

void LocalNameServer::Stop(absl::Duration grace) {
  if (pid_ <= 0 || exited_) return;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + grace;
  for (;;) {
    pid_t r = waitpid(pid_, nullptr, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) break;
    if (absl::Now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  exited_ = true;
}

}  // namespace gasp

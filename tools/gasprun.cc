// gasprun: launcher for gasp jobs.
//
//   gasprun -np N [--tag-output] [--timeout SECS] [-x VAR[=VAL]]... ./app args...
//       Runs N ranks on this host. An in-process coordinator on 127.0.0.1
//       (ephemeral port) is the rendezvous; each rank gets GASP_RANK,
//       GASP_NRANKS, GASP_LOCAL_RANK, GASP_LOCAL_NRANKS, GASP_COORDINATOR,
//       GASP_LAUNCHER=gasprun and GASP_JOB_ID. Unless GASP_NAMESERVER is
//       already set (or --no-nameserver is given), a gasp_nameserver is
//       started for the job (insecure, 127.0.0.1, ephemeral port) and the
//       ranks get GASP_NAMESERVER=127.0.0.1:PORT; it is stopped when the
//       job ends. When no gasp_nameserver binary is found, gasprun warns
//       and the ranks run without a name server.
//
//   gasprun -np N -H host1,host2 | --hostfile FILE [...] ./app args...
//       Multi-host: execs mpirun (Open MPI) with the same -np, hosts and
//       program (the ranks then bootstrap through PMIx); inside a Slurm
//       allocation without mpirun, execs srun --mpi=pmix.
//
// Failure handling (local mode): the first rank that exits non-zero or is
// killed by a signal is reported to the coordinator, which tells the other
// ranks (RANK_DIED); they get min(2 s, GASP_TIMEOUT) to exit on their own,
// then the rest are SIGKILLed. gasprun exits with that first failing
// rank's status (128 + signal for a signal), 0 when every rank exits 0.
// SIGINT / SIGTERM / SIGHUP / SIGQUIT are forwarded to the ranks. Every rank
// runs in its own process group with PR_SET_PDEATHSIG(SIGKILL), and gasprun
// is a child subreaper: no rank or descendant outlives gasprun (except
// descendants of ranks when gasprun itself is SIGKILLed: PDEATHSIG covers
// the ranks only). Ranks read stdin from /dev/null.
//
//   gasprun -np N --gdb RANK ./app args...
//       Rank RANK runs as `gdb -q -x gasp.gdb --args ./app args...` (gdb
//       stops only on gasp's fault verdicts, not on DSM page faults;
//       docs/debugging.md). gdb needs the terminal: that rank keeps stdin
//       and, when stdin is a terminal, gets the terminal's foreground (so
//       Ctrl-C goes to gdb, not to the job) until the job ends.
//       --gdb-batch RANK runs gdb without a terminal: run, bt, exit.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/fd_limit.h"
#include "base/log.h"
#include "base/settings.h"
#include "gasp/version.h"
#include "boot/coordinator.h"
#include "boot/job_secret.h"
#include "boot/net.h"
#include "tools/gdb_rank.h"
#include "tools/local_nameserver.h"

extern char** environ;

namespace gasp {
namespace {

constexpr int kMaxLocalRanks = 1024;
constexpr absl::Duration kMaxGrace = absl::Seconds(2);
// How long the output poller keeps draining pipes after the last rank
// exited (descendants may still hold them open).
constexpr absl::Duration kDrainTimeout = absl::Seconds(1);
// Bound of the wait for the job's name server to serve (it takes tens of
// milliseconds; more means something is wrong, and the job goes on
// without one).
constexpr absl::Duration kNameServerStartTimeout = absl::Seconds(10);

const char kUsage[] =
    "usage: gasprun -np N [options] program [args...]\n"
    "\n"
    "Runs N ranks of a gasp program on this host, or on several hosts through\n"
    "mpirun (or srun --mpi=pmix) when -H/--hostfile is given.\n"
    "\n"
    "options:\n"
    "  -np N, -n N          number of ranks (required)\n"
    "  --tag-output         prefix every output line with \"[rank] \"\n"
    "  --timeout SECS       GASP_TIMEOUT for the ranks (30, 30s, 500ms, 2m)\n"
    "  -x VAR=VAL, -x VAR   set (or pass) an environment variable to every rank\n"
    "  --no-nameserver      do not start a name server for the job\n"
    "  -H, --host HOSTS     comma-separated hosts (host or host:slots): use mpirun\n"
    "  --hostfile FILE      Open MPI host file: use mpirun\n"
    "  -N N, --npernode N   ranks per node (passed to mpirun / srun)\n"
    "  --map-by SPEC        passed to mpirun when handing over\n"
    "  --bind-to SPEC       passed to mpirun (srun: --cpu-bind) when handing over\n"
    "  --oversubscribe      allow more ranks than cores (passed to mpirun; local\n"
    "                       runs always allow it)\n"
    "  --gdb RANK           run rank RANK under gdb with gasp.gdb (needs the\n"
    "                       terminal; local runs only)\n"
    "  --gdb-batch RANK     same, non-interactive: run, print the backtrace, exit\n"
    "  --version            print gasp's version\n"
    "  -h, --help           this help\n"
    "\n"
    "Exit status: 0 when every rank exits 0; otherwise the status of the first\n"
    "rank that failed (128+N for signal N); 2 for usage errors.\n";

[[noreturn]] void UsageError(const std::string& why) {
  std::fprintf(stderr, "gasprun: %s\n\n%s", why.c_str(), kUsage);
  std::exit(2);
}

[[noreturn]] void Die(int code, const std::string& why) {
  std::fprintf(stderr, "gasprun: %s\n", why.c_str());
  std::exit(code);
}

struct Options {
  int np = 0;
  bool tag_output = false;
  bool no_nameserver = false;
  std::string timeout_text;  // as given to --timeout
  std::optional<absl::Duration> timeout;
  std::vector<std::pair<std::string, std::string>> exports;  // -x
  std::string hosts;
  std::string hostfile;
  int npernode = 0;  // -N; 0: the launcher's default
  std::string map_by;
  std::string bind_to;
  bool oversubscribe = false;
  int gdb_rank = -1;  // --gdb / --gdb-batch
  bool gdb_batch = false;
  std::vector<std::string> program;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  int i = 1;
  auto need = [&](const std::string& flag) -> std::string {
    if (i + 1 >= argc) UsageError(absl::StrCat(flag, " needs a value"));
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.empty() || a[0] != '-') break;
    std::string value;
    bool inline_value = false;
    if (absl::StartsWith(a, "--") && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      inline_value = true;
    }
    auto get = [&](const std::string& flag) { return inline_value ? value : need(flag); };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "-np" || a == "-n" || a == "--np" || a == "--n") {
      std::string v = get(a);
      if (!absl::SimpleAtoi(v, &o.np) || o.np < 1) {
        UsageError(absl::StrCat(a, " ", v, ": expected a number of ranks >= 1"));
      }
    } else if (a == "--tag-output") {
      o.tag_output = true;
    } else if (a == "--no-nameserver") {
      o.no_nameserver = true;
    } else if (a == "--timeout") {
      o.timeout_text = get(a);
      absl::StatusOr<absl::Duration> d = ParseDurationSetting(o.timeout_text);
      if (!d.ok())
        UsageError(absl::StrCat("--timeout ", o.timeout_text, ": ", d.status().message()));
      o.timeout = *d;
    } else if (a == "-x") {
      std::string v = get(a);
      size_t eq = v.find('=');
      std::string name = v.substr(0, eq);
      if (name.empty()) UsageError(absl::StrCat("-x ", v, ": expected VAR=VALUE or VAR"));
      if (eq == std::string::npos) {
        const char* cur = std::getenv(name.c_str());
        if (cur == nullptr)
          UsageError(absl::StrCat("-x ", name, ": not set in gasprun's environment"));
        o.exports.emplace_back(name, cur);
      } else {
        o.exports.emplace_back(name, v.substr(eq + 1));
      }
    } else if (a == "-H" || a == "--host" || a == "-host") {
      o.hosts = get(a);
    } else if (a == "--hostfile" || a == "-hostfile" || a == "--machinefile") {
      o.hostfile = get(a);
    } else if (a == "-N" || a == "--npernode" || a == "-npernode") {
      std::string v = get(a);
      if (!absl::SimpleAtoi(v, &o.npernode) || o.npernode < 1) {
        UsageError(absl::StrCat(a, " ", v, ": expected a number of ranks per node >= 1"));
      }
    } else if (a == "--map-by" || a == "-map-by") {
      o.map_by = get(a);
    } else if (a == "--bind-to" || a == "-bind-to") {
      o.bind_to = get(a);
    } else if (a == "--oversubscribe" || a == "-oversubscribe") {
      o.oversubscribe = true;
    } else if (a == "--gdb" || a == "--gdb-batch") {
      std::string v = get(a);
      if (!absl::SimpleAtoi(v, &o.gdb_rank) || o.gdb_rank < 0) {
        UsageError(absl::StrCat(a, " ", v, ": expected a rank >= 0"));
      }
      o.gdb_batch = a == "--gdb-batch";
    } else if (a == "--version" || a == "-V") {
      std::printf("gasprun (gasp) %d.%d.%d\n", GASP_VERSION_MAJOR, GASP_VERSION_MINOR,
                  GASP_VERSION_PATCH);
      std::exit(0);
    } else {
      UsageError(absl::StrCat("unknown option '", argv[i], "'"));
    }
  }
  for (; i < argc; ++i) o.program.push_back(argv[i]);
  if (o.np == 0) UsageError("-np N is required");
  if (o.program.empty()) UsageError("no program given");
  if (o.gdb_rank >= o.np) {
    UsageError(absl::StrFormat("--gdb %d: only ranks 0 to %d exist", o.gdb_rank, o.np - 1));
  }
  return o;
}

// PATH lookup like execvp, done before fork (execvp may allocate).
std::optional<std::string> FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path == nullptr ? "/usr/bin:/bin" : path, ':')) {
    std::string full = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    struct stat st;
    if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(full.c_str(), X_OK) == 0) {
      return full;
    }
  }
  return std::nullopt;
}

// ------------------------------------------------------------ multi-host

std::vector<std::string> HostsFromFile(const std::string& file) {
  std::ifstream in(file);
  if (!in) Die(2, absl::StrCat("cannot read host file '", file, "'"));
  std::vector<std::string> hosts;
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    hosts.push_back(std::string(l.substr(0, l.find_first_of(" \t"))));
  }
  return hosts;
}

// Open MPI's --bind-to values in srun's --cpu-bind words.
std::string SrunCpuBind(const std::string& bind_to) {
  if (bind_to == "core") return "cores";
  if (bind_to == "socket") return "sockets";
  if (bind_to == "hwthread") return "threads";
  return bind_to;  // none, ldoms, ... are the same word
}

[[noreturn]] void ExecMultiHost(const Options& o) {
  std::vector<std::string> cmd;
  std::vector<std::pair<std::string, std::string>> env = o.exports;
  if (o.timeout) env.emplace_back("GASP_TIMEOUT", o.timeout_text);
  std::optional<std::string> mpirun = FindProgram("mpirun");
  std::optional<std::string> srun = FindProgram("srun");
  if (mpirun) {
    cmd = {*mpirun, "-np", absl::StrCat(o.np)};
    if (!o.hosts.empty()) cmd.insert(cmd.end(), {"-H", o.hosts});
    if (!o.hostfile.empty()) cmd.insert(cmd.end(), {"--hostfile", o.hostfile});
    if (o.tag_output) cmd.push_back("--tag-output");
    if (o.npernode > 0) cmd.insert(cmd.end(), {"--npernode", absl::StrCat(o.npernode)});
    if (!o.map_by.empty()) cmd.insert(cmd.end(), {"--map-by", o.map_by});
    if (!o.bind_to.empty()) cmd.insert(cmd.end(), {"--bind-to", o.bind_to});
    if (o.oversubscribe) cmd.push_back("--oversubscribe");
    for (const auto& [k, v] : env) cmd.insert(cmd.end(), {"-x", absl::StrCat(k, "=", v)});
  } else if (srun && std::getenv("SLURM_JOB_ID") != nullptr) {
    std::vector<std::string> hosts;
    for (absl::string_view h : absl::StrSplit(o.hosts, ',', absl::SkipEmpty())) {
      hosts.push_back(std::string(h.substr(0, h.find(':'))));
    }
    if (!o.hostfile.empty()) {
      for (const std::string& h : HostsFromFile(o.hostfile)) hosts.push_back(h);
    }
    cmd = {*srun, "--mpi=pmix", "--kill-on-bad-exit=1", "-n", absl::StrCat(o.np)};
    if (!hosts.empty()) cmd.push_back(absl::StrCat("--nodelist=", absl::StrJoin(hosts, ",")));
    if (o.tag_output) cmd.push_back("--label");
    if (o.npernode > 0) cmd.push_back(absl::StrCat("--ntasks-per-node=", o.npernode));
    if (o.oversubscribe) cmd.push_back("--overcommit");
    if (!o.bind_to.empty()) cmd.push_back(absl::StrCat("--cpu-bind=", SrunCpuBind(o.bind_to)));
    if (!o.map_by.empty()) {
      std::fprintf(stderr, "gasprun: --map-by %s has no srun equivalent here; ignored\n",
                   o.map_by.c_str());
    }
    if (!env.empty()) {
      std::string exp = "--export=ALL";
      for (const auto& [k, v] : env) {
        if (v.find(',') != std::string::npos) {
          Die(2, absl::StrCat("-x ", k, "=", v, ": srun --export cannot pass values with commas"));
        }
        absl::StrAppend(&exp, ",", k, "=", v);
      }
      cmd.push_back(exp);
    }
  } else {
    Die(1,
        "-H/--hostfile runs the job through mpirun (Open MPI), or srun --mpi=pmix inside a "
        "Slurm allocation; mpirun is not in PATH and no Slurm allocation (SLURM_JOB_ID) with "
        "srun was found. Install Open MPI, or run without -H/--hostfile on one host");
  }
  for (const std::string& p : o.program) cmd.push_back(p);
  // argv[0] is the bare name: Open MPI takes an absolute argv[0] as its
  // installation prefix (and refuses /bin/mpirun, whose prefix is "/").
  const std::string exe = cmd[0];
  cmd[0] = cmd[0].substr(cmd[0].rfind('/') + 1);
  GASP_LOG(Info) << "gasprun: exec " << absl::StrJoin(cmd, " ") << "  (" << exe << ")";
  std::vector<char*> argv;
  for (std::string& s : cmd) argv.push_back(s.data());
  argv.push_back(nullptr);
  execv(exe.c_str(), argv.data());
  Die(127, absl::StrCat("cannot execute ", exe, ": ", std::strerror(errno)));
}

// ------------------------------------------------------------ local ranks

// Copies rank output to ours with a "[rank] " prefix, whole lines at a time.
class OutputTagger {
 public:
  struct Source {
    int fd;
    int rank;
    int out_fd;  // 1 or 2
    std::string partial;
  };

  OutputTagger() : wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  void Add(int fd, int rank, int out_fd) { sources_.push_back({fd, rank, out_fd, ""}); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  // Keeps copying until every pipe is closed, at most kDrainTimeout more.
  void Finish() {
    uint64_t one = 1;
    ssize_t rc = write(wake_.get(), &one, sizeof(one));
    (void)rc;
    if (thread_.joinable()) thread_.join();
  }

 private:
  static void WriteAll(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = write(fd, s.data() + off, s.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // our own output is gone: drop it
      off += static_cast<size_t>(n);
    }
  }

  void Emit(Source& s, absl::string_view line) {
    WriteAll(s.out_fd, absl::StrCat("[", s.rank, "] ", line, "\n"));
  }

  void Run() {
    absl::Time drain_deadline = absl::InfiniteFuture();
    char buf[65536];
    for (;;) {
      std::vector<pollfd> p;
      std::vector<size_t> idx;
      for (size_t i = 0; i < sources_.size(); ++i) {
        if (sources_[i].fd < 0) continue;
        p.push_back({sources_[i].fd, POLLIN, 0});
        idx.push_back(i);
      }
      if (p.empty()) return;
      p.push_back({wake_.get(), POLLIN, 0});
      // Sleeps until output arrives; bounded only once draining started.
      int rc = poll(p.data(), p.size(), boot::PollTimeoutMs(drain_deadline));
      if (rc < 0 && errno != EINTR) return;
      if (p.back().revents & POLLIN) {
        uint64_t v;
        ssize_t r = read(wake_.get(), &v, sizeof(v));
        (void)r;
        drain_deadline = std::min(drain_deadline, absl::Now() + kDrainTimeout);
      }
      for (size_t k = 0; k + 1 < p.size(); ++k) {
        if (p[k].revents == 0) continue;
        Source& s = sources_[idx[k]];
        ssize_t n = read(s.fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
          if (!s.partial.empty()) Emit(s, s.partial);
          s.partial.clear();
          close(s.fd);
          s.fd = -1;
          continue;
        }
        s.partial.append(buf, static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = s.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
          Emit(s, absl::string_view(s.partial).substr(start, nl - start));
        }
        s.partial.erase(0, start);
        if (s.partial.size() > 65536) {  // a very long line: pass it on in pieces
          Emit(s, s.partial);
          s.partial.clear();
        }
      }
      if (absl::Now() >= drain_deadline) {
        for (Source& s : sources_) {
          if (s.fd < 0) continue;
          if (!s.partial.empty()) Emit(s, s.partial);
          close(s.fd);
          s.fd = -1;
        }
        return;
      }
    }
  }

  boot::UniqueFd wake_;
  std::vector<Source> sources_;
  std::thread thread_;
};

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  int stopped_by = 0;  // the signal that stopped it, 0 while it runs
};

// "SIGSTOP" for 19.
std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", sig);
}

// A rank stopped (SIGSTOP, SIGTSTP, a debugger) or continued: said at once,
// since the others will wait for it (and name it after GASP_TIMEOUT/6).
void NoteStopOrContinue(Rank& k, int status, const std::string& host) {
  if (WIFSTOPPED(status)) {
    k.stopped_by = WSTOPSIG(status);
    std::fprintf(stderr,
                 "gasprun: rank %d (%s:%d) is stopped (signal %d, %s); the other ranks wait "
                 "for it until GASP_TIMEOUT\n",
                 k.rank, host.c_str(), k.pid, k.stopped_by, SignalName(k.stopped_by).c_str());
  } else if (k.stopped_by != 0) {
    k.stopped_by = 0;
    std::fprintf(stderr, "gasprun: rank %d (%s:%d) continued\n", k.rank, host.c_str(), k.pid);
  }
}

std::string DescribeStatus(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return absl::StrFormat("was killed by signal %d (%s)", sig, strsignal(sig));
  }
  return absl::StrFormat("exited with status %d", WEXITSTATUS(status));
}

int ExitCodeOf(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string MakeJobId(const std::string& host) {
  std::random_device rd;
  return absl::StrFormat("gasprun-%s-%d-%08x", host, getpid(), rd());
}

// The job's name server, unless the user chose one (GASP_NAMESERVER in
// the environment or in -x, even empty) or none (--no-nameserver). Never
// fatal: without it the ranks simply have no name server.
std::unique_ptr<LocalNameServer> StartNameServer(const Options& o, const sigset_t& child_sigmask,
                                                 absl::Duration timeout) {
  if (o.no_nameserver || std::getenv("GASP_NAMESERVER") != nullptr) return nullptr;
  for (const auto& [k, v] : o.exports) {
    if (k == "GASP_NAMESERVER") return nullptr;
  }
  std::optional<std::string> binary = FindNameServerBinary();
  if (!binary) {
    std::fprintf(stderr,
                 "gasprun: warning: no gasp_nameserver next to gasprun or in PATH; the ranks run "
                 "without a name server (GASP_NAMESERVER unset)\n");
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<LocalNameServer>> ns =
      LocalNameServer::Start(*binary, child_sigmask, timeout);
  if (!ns.ok()) {
    std::fprintf(stderr, "gasprun: warning: cannot start the name server: %s; the ranks run "
                 "without one\n", std::string(ns.status().message()).c_str());
    return nullptr;
  }
  GASP_LOG(Info) << "gasprun: name server " << (*ns)->address() << " (" << *binary << ", pid "
                 << (*ns)->pid() << ")";
  return std::move(*ns);
}

// gdb's command line for the --gdb rank; exits with a message when gdb or
// gasp.gdb cannot be found.
std::vector<std::string> GdbRankCommand(const Options& o, const std::string& program_path) {
  std::optional<std::string> gdb = FindProgram("gdb");
  if (!gdb) Die(127, "--gdb: gdb not found in PATH (apt-get install gdb)");
  std::optional<std::string> script = FindGdbScript();
  if (!script) {
    Die(127, "--gdb: gasp.gdb not found (PREFIX/share/gasp/gasp.gdb beside PREFIX/bin/gasprun)");
  }
  std::vector<std::string> program = o.program;
  program[0] = program_path;
  return GdbCommand(*gdb, *script, o.gdb_batch, program);
}

// After an interactive --gdb run: the terminal's foreground back to
// gasprun's process group (SIGTTOU blocked: we may be in the background now).
void TakeBackTerminal() {
  sigset_t ttou, saved;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  pthread_sigmask(SIG_BLOCK, &ttou, &saved);
  tcsetpgrp(0, getpgrp());
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
}

int RunLocal(const Options& o) {
  // Signals are handled synchronously through a signalfd; block them before
  // any thread exists so that every thread inherits the mask.
  sigset_t handled;
  sigemptyset(&handled);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&handled, s);
  sigset_t original;
  pthread_sigmask(SIG_BLOCK, &handled, &original);
  signal(SIGPIPE, SIG_IGN);
  boot::UniqueFd sigfd(signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd.valid()) Die(1, absl::StrCat("signalfd: ", std::strerror(errno)));
  // Orphaned descendants of the ranks are re-parented to us, so that we can
  // reap (and kill) them.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  absl::StatusOr<Config> config = LoadConfigFromEnv();
  if (!config.ok()) Die(2, std::string(config.status().message()));
  if (o.timeout) config->timeout = *o.timeout;
  LogLevel level = LogLevel::kWarn;
  if (ParseLogLevel(config->log_level, &level).ok()) (void)ConfigureLogging(level, "");

  std::optional<std::string> path = FindProgram(o.program[0]);
  if (!path) {
    Die(127, absl::StrCat("cannot run '", o.program[0], "': ",
                          o.program[0].find('/') == std::string::npos ? "not found in PATH"
                                                                      : "no such executable file"));
  }

  const std::string host = boot::ShortHostName();
  const std::string job_id = MakeJobId(host);
  const absl::Duration grace = std::min(kMaxGrace, config->timeout);

  boot::CoordinatorOptions co;
  co.bind_host = "127.0.0.1";
  co.port = 0;
  co.size = o.np;
  co.job_id = job_id;
  co.owner = absl::StrFormat("gasprun (%s:%d)", host, getpid());
  co.hello_timeout = config->timeout;
  // We learn exit statuses from waitpid: give them a moment to arrive
  // before the coordinator reports a dropped connection generically.
  co.death_report_delay = std::min(absl::Seconds(1), config->timeout);
  // The job secret (boot/job_secret.h): in a sealed memfd every rank
  // inherits, never in the environment, on disk or in a log. The
  // coordinator admits only HELLOs that prove it.
  absl::StatusOr<boot::JobSecret> secret = boot::DrawJobSecret("gasprun");
  absl::StatusOr<int> secret_fd =
      secret.ok() ? boot::JobSecretToFd(*secret) : absl::StatusOr<int>(secret.status());
  if (!secret_fd.ok()) Die(1, absl::StrCat("job secret: ", secret_fd.status().message()));
  co.secret.assign(reinterpret_cast<const char*>(secret->bytes.data()), secret->bytes.size());
  absl::StatusOr<std::unique_ptr<boot::Coordinator>> coord = boot::Coordinator::Start(co);
  if (!coord.ok()) Die(1, absl::StrCat("cannot start the coordinator: ", coord.status().message()));
  std::unique_ptr<LocalNameServer> nameserver =
      StartNameServer(o, original, std::min(kNameServerStartTimeout, config->timeout));

  // Environment of each rank: ours, minus stale launcher variables, plus
  // the launcher variables and -x exports.
  std::map<std::string, std::string> base_env;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == absl::string_view::npos) continue;
    base_env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const std::string& v : LauncherVariables()) base_env.erase(v);
  base_env["GASP_COORDINATOR"] = (*coord)->address();
  if (nameserver != nullptr) base_env["GASP_NAMESERVER"] = nameserver->address();
  if (o.timeout) base_env["GASP_TIMEOUT"] = o.timeout_text;
  for (const auto& [k, v] : o.exports) base_env[k] = v;
  base_env[boot::kJobSecretFdVariable] = absl::StrCat(*secret_fd);

  std::vector<std::string> argv_store = o.program;
  std::vector<char*> child_argv;
  for (std::string& s : argv_store) child_argv.push_back(s.data());
  child_argv.push_back(nullptr);
  const std::string exec_error = absl::StrCat("gasprun: cannot execute ", *path, "\n");
  // --gdb: that rank execs gdb instead (tools/gdb_rank.h).
  std::string gdb_path;
  std::vector<std::string> gdb_store;
  std::vector<char*> gdb_argv;
  if (o.gdb_rank >= 0) {
    gdb_store = GdbRankCommand(o, *path);
    gdb_path = gdb_store[0];
    for (std::string& s : gdb_store) gdb_argv.push_back(s.data());
    gdb_argv.push_back(nullptr);
  }
  const bool gdb_tty = o.gdb_rank >= 0 && !o.gdb_batch && isatty(0);

  OutputTagger tagger;
  std::vector<Rank> ranks(o.np);
  std::map<pid_t, int> rank_of_pid;
  const pid_t self = getpid();
  int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);

  for (int r = 0; r < o.np; ++r) {
    std::map<std::string, std::string> env = base_env;
    env["GASP_RANK"] = absl::StrCat(r);
    env["GASP_NRANKS"] = absl::StrCat(o.np);
    env["GASP_LOCAL_RANK"] = absl::StrCat(r);
    env["GASP_LOCAL_NRANKS"] = absl::StrCat(o.np);
    env["GASP_LAUNCHER"] = "gasprun";
    env["GASP_JOB_ID"] = job_id;
    for (const auto& [k, v] : o.exports) env[k] = v;  // -x wins, as with mpirun
    std::vector<std::string> env_store;
    for (const auto& [k, v] : env) env_store.push_back(absl::StrCat(k, "=", v));
    std::vector<char*> envp;
    for (std::string& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);

    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    if (o.tag_output && (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)) {
      Die(1, absl::StrCat("pipe: ", std::strerror(errno)));
    }
    pid_t pid = fork();
    if (pid < 0) {
      int e = errno;
      for (const Rank& k : ranks) {
        if (k.pid > 0) killpg(k.pid, SIGKILL);
      }
      Die(1, absl::StrCat("fork of rank ", r, ": ", std::strerror(e)));
    }
    if (pid == 0) {
      // Child: async-signal-safe calls only (other threads exist).
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != self) _exit(127);  // gasprun died before prctl
      signal(SIGPIPE, SIG_DFL);
      const bool under_gdb = r == o.gdb_rank;
      if (under_gdb && gdb_tty) {
        // The terminal's foreground for gdb's group. SIGTTOU blocked: a
        // background group may then take it (restored by the mask below).
        sigset_t ttou;
        sigemptyset(&ttou);
        sigaddset(&ttou, SIGTTOU);
        sigprocmask(SIG_BLOCK, &ttou, nullptr);
        tcsetpgrp(0, getpid());
      }
      sigprocmask(SIG_SETMASK, &original, nullptr);
      if (dev_null >= 0 && !(under_gdb && !o.gdb_batch)) dup2(dev_null, 0);
      boot::InheritJobSecretFd(*secret_fd);  // only ranks get the secret
      if (o.tag_output) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
      }
      if (under_gdb) {
        execve(gdb_path.c_str(), gdb_argv.data(), envp.data());
      } else {
        execve(path->c_str(), child_argv.data(), envp.data());
      }
      ssize_t w = write(2, exec_error.data(), exec_error.size());
      (void)w;
      _exit(127);
    }
    setpgid(pid, pid);  // also here: no race with killpg below
    ranks[r] = {r, pid, true, 0};
    rank_of_pid[pid] = r;
    if (o.tag_output) {
      close(out_pipe[1]);
      close(err_pipe[1]);
      tagger.Add(out_pipe[0], r, 1);
      tagger.Add(err_pipe[0], r, 2);
    }
  }
  if (dev_null >= 0) close(dev_null);
  if (o.tag_output) tagger.Start();
  GASP_LOG(Info) << "gasprun: " << o.np << " ranks of " << *path << ", coordinator "
                 << (*coord)->address() << ", job " << job_id;

  int running = o.np;
  int first_failure = -1;
  int exit_code = 0;
  int forwarded_signal = 0;
  bool killed_ranks = false;  // gasprun has SIGKILLed the survivors
  absl::Time kill_at = absl::InfiniteFuture();
  auto signal_ranks = [&](int sig) {
    for (const Rank& k : ranks) {
      if (k.running) killpg(k.pid, sig);
    }
  };

  while (running > 0) {
    pollfd p{sigfd.get(), POLLIN, 0};
    // Sleeps until a signal (SIGCHLD included) or the kill deadline.
    int rc = poll(&p, 1, boot::PollTimeoutMs(kill_at));
    if (rc < 0 && errno != EINTR) Die(1, absl::StrCat("poll: ", std::strerror(errno)));
    signalfd_siginfo si;
    while (read(sigfd.get(), &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) continue;  // reaped below
      if (forwarded_signal == sig || kill_at <= absl::Now()) {
        signal_ranks(SIGKILL);  // second interrupt: no more waiting
      } else {
        GASP_LOG(Info) << "gasprun: forwarding signal " << sig << " to the ranks";
        signal_ranks(sig);
        kill_at = std::min(kill_at, absl::Now() + grace);
      }
      forwarded_signal = sig;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED | WCONTINUED)) > 0) {
      if (WIFSTOPPED(status) || WIFCONTINUED(status)) {
        auto st = rank_of_pid.find(pid);
        if (st != rank_of_pid.end()) NoteStopOrContinue(ranks[st->second], status, host);
        continue;
      }
      if (nameserver != nullptr && pid == nameserver->pid()) {
        nameserver->MarkExited();
        std::fprintf(stderr, "gasprun: warning: the name server %s %s during the job\n",
                     nameserver->address().c_str(), DescribeStatus(status).c_str());
        continue;
      }
      auto it = rank_of_pid.find(pid);
      if (it == rank_of_pid.end()) continue;  // an orphaned descendant
      Rank& k = ranks[it->second];
      k.running = false;
      k.status = status;
      --running;
      bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      std::string reason =
          absl::StrFormat("rank %d (%s:%d) %s", k.rank, host, pid, DescribeStatus(status));
      GASP_LOG(Info) << "gasprun: " << reason;
      // Clean exits matter too: a rank that exits 0 without finalizing
      // leaves the others waiting for it. (Ignored for finalized ranks.)
      (*coord)->NotifyRankDied(k.rank,
                               failed ? reason : absl::StrCat(reason, " without finalizing"));
      // A rank killed by a signal before gasprun sent any kill is the likely
      // root cause, even when a peer that noticed its death was reaped first
      // (peers exit with status 1 when they lose a rank).
      const bool root_cause = first_failure >= 0 && WIFSIGNALED(status) &&
                              !WIFSIGNALED(ranks[first_failure].status) &&
                              forwarded_signal == 0 && !killed_ranks;
      if (root_cause) {
        first_failure = k.rank;
        exit_code = ExitCodeOf(status);
        std::fprintf(stderr, "gasprun: %s\n", reason.c_str());
      }
      if (failed && first_failure < 0) {
        first_failure = k.rank;
        exit_code = ExitCodeOf(status);
        std::string cause = reason;
        // The coordinator may know an earlier cause: a rank that aborted
        // (its ABORT reached the others before we reaped it).
        int origin = (*coord)->FailureRank();
        if (origin >= 0 && origin != k.rank) {
          first_failure = origin;
          cause = (*coord)->FailureReason();
        }
        // A rank still stopped is what the others gave up waiting for.
        for (const Rank& s : ranks) {
          if (s.running && s.stopped_by != 0) {
            first_failure = s.rank;
            cause = absl::StrFormat(
                "rank %d (%s:%d) was stopped (signal %d, %s) and never continued: the other "
                "ranks gave up waiting for it (first: %s)",
                s.rank, host, s.pid, s.stopped_by, SignalName(s.stopped_by), reason);
            break;
          }
        }
        std::string rest = running > 0 ? absl::StrFormat("; stopping the other %d rank%s", running,
                                                         running == 1 ? "" : "s")
                                       : "";
        std::fprintf(stderr, "gasprun: %s%s\n", cause.c_str(), rest.c_str());
        kill_at = std::min(kill_at, absl::Now() + grace);
      }
    }
    if (running > 0 && absl::Now() >= kill_at) {
      std::vector<std::string> left;
      for (const Rank& k : ranks) {
        if (k.running) left.push_back(absl::StrCat(k.rank));
      }
      GASP_LOG(Info) << "gasprun: SIGKILL to rank(s) " << absl::StrJoin(left, ", ")
                     << " after a grace of " << grace;
      signal_ranks(SIGKILL);
      killed_ranks = true;
      kill_at = absl::InfiniteFuture();  // keep reaping; SIGKILL cannot be ignored
    }
  }

  // The ranks are gone: so is the need for their name server (stopped
  // before the sweep below, which would reap it without a clean shutdown).
  if (nameserver != nullptr) nameserver->Stop(grace);
  // No descendant outlives the job: kill what is left in the ranks' groups
  // and reap the orphans that came to us.
  for (const Rank& k : ranks) killpg(k.pid, SIGKILL);
  absl::Time reap_deadline = absl::Now() + absl::Milliseconds(500);
  for (;;) {
    pid_t pid = waitpid(-1, nullptr, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 || absl::Now() >= reap_deadline) break;  // ECHILD: none left
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (gdb_tty) TakeBackTerminal();
  if (o.tag_output) tagger.Finish();
  (*coord)->Stop();
  // The status of the rank that failed first (when the cause was an abort
  // reaped after the others, its own status; it may have aborted with 0).
  if (first_failure >= 0 && !ranks[first_failure].running) {
    int st = ranks[first_failure].status;
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) exit_code = ExitCodeOf(st);
  }
  if (first_failure < 0 && forwarded_signal != 0) exit_code = 128 + forwarded_signal;
  return exit_code;
}

}  // namespace
}  // namespace gasp

int main(int argc, char** argv) {
  gasp::RaiseDescriptorLimit();  // floods meet the handshake deadlines first
  gasp::Options o = gasp::ParseArgs(argc, argv);
  if (o.np > gasp::kMaxLocalRanks && o.hosts.empty() && o.hostfile.empty()) {
    gasp::UsageError(
        absl::StrFormat("-np %d: at most %d ranks on one host", o.np, gasp::kMaxLocalRanks));
  }
  if (!o.hosts.empty() || !o.hostfile.empty()) {
    if (o.gdb_rank >= 0) {
      gasp::UsageError("--gdb is for local runs; with -H/--hostfile, attach gdb to the rank "
                       "(docs/debugging.md)");
    }
    absl::StatusOr<gasp::Config> config = gasp::LoadConfigFromEnv();
    gasp::LogLevel level = gasp::LogLevel::kWarn;
    if (config.ok() && gasp::ParseLogLevel(config->log_level, &level).ok()) {
      (void)gasp::ConfigureLogging(level, "");
    }
    gasp::ExecMultiHost(o);
  }
  // One host: every rank runs here, unbound; placement options are for the
  // launchers gasprun hands over to.
  if (o.npernode > 0 && o.npernode < o.np) {
    gasp::UsageError(absl::StrFormat(
        "-N %d with -np %d on one host: give the hosts (-H/--hostfile) to spread the ranks",
        o.npernode, o.np));
  }
  if (!o.map_by.empty() || !o.bind_to.empty()) {
    std::fprintf(stderr, "gasprun: --map-by/--bind-to apply when handing over to mpirun or "
                         "srun (-H/--hostfile); ignored for a local run\n");
  }
  return gasp::RunLocal(o);
}

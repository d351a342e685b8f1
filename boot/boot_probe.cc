// Test program for the bootstrap, run by the sh_tests under gasprun,
// mpirun and by hand. Calls CreateBootstrap, prints who it is, runs
// --rounds allgathers checking every rank's blob, a rank record exchange
// and a barrier, then finalizes.
//
//   boot_probe [--rounds=N] [--expect-size=N] [--expect-method=M]
//              [--die-rank=R --die-how=sigkill|exit3|abort|stall]
//                                       rank R dies after the first allgather
//                                       (stall: sleeps instead, never joining
//                                       the next collective)
//              [--marker=STRING]        ignored; lets tests pgrep the ranks
//   boot_probe --free-port              prints a free TCP port of 127.0.0.1
//
// Exit status: 0 when every check passed; 1 on any bootstrap error (the
// message names it); 2 on a usage error.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/settings.h"
#include "boot/bootstrap.h"
#include "boot/endpoint_exchange.h"

namespace {

struct Args {
  int rounds = 3;
  int expect_size = -1;
  std::string expect_method;
  int die_rank = -1;
  std::string die_how = "sigkill";
  bool free_port = false;
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "boot_probe: %s\nusage: boot_probe [--rounds=N] [--expect-size=N] "
               "[--expect-method=M] [--die-rank=R --die-how=sigkill|exit3|abort|stall] "
               "[--marker=S] | --free-port\n",
               why.c_str());
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    auto value = [&](absl::string_view flag, std::string* out) {
      if (!absl::StartsWith(arg, flag)) return false;
      *out = std::string(arg.substr(flag.size()));
      return true;
    };
    std::string v;
    if (arg == "--free-port") {
      a.free_port = true;
    } else if (value("--rounds=", &v)) {
      if (!absl::SimpleAtoi(v, &a.rounds) || a.rounds < 1) Usage("bad --rounds");
    } else if (value("--expect-size=", &v)) {
      if (!absl::SimpleAtoi(v, &a.expect_size)) Usage("bad --expect-size");
    } else if (value("--expect-method=", &a.expect_method)) {
    } else if (value("--die-rank=", &v)) {
      if (!absl::SimpleAtoi(v, &a.die_rank)) Usage("bad --die-rank");
    } else if (value("--die-how=", &a.die_how)) {
      if (a.die_how != "sigkill" && a.die_how != "exit3" && a.die_how != "abort" &&
          a.die_how != "stall") {
        Usage("bad --die-how");
      }
    } else if (value("--marker=", &v)) {
    } else {
      Usage(absl::StrCat("unknown argument '", arg, "'"));
    }
  }
  return a;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("boot_probe: free port");
    std::exit(1);
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// Fixed-size blob naming its rank and round.
std::string Blob(int rank, int round) {
  std::string b = absl::StrFormat("rank=%06d round=%03d", rank, round);
  b.resize(48, '.');
  return b;
}

[[noreturn]] void Fail(const std::string& rank, const std::string& what) {
  std::fprintf(stderr, "boot_probe rank %s: FAILED: %s\n", rank.c_str(), what.c_str());
  std::fflush(stderr);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  Args args = Parse(argc, argv);
  if (args.free_port) {
    std::printf("%d\n", FreePort());
    return 0;
  }
  absl::StatusOr<gasp::Config> config = gasp::LoadConfigFromEnv();
  if (!config.ok()) Fail("?", std::string(config.status().message()));
  gasp::LogLevel level;
  if (gasp::ParseLogLevel(config->log_level, &level).ok()) {
    (void)gasp::ConfigureLogging(level, config->log_file);
  }

  absl::StatusOr<std::unique_ptr<gasp::boot::Bootstrap>> boot =
      gasp::boot::CreateBootstrap(*config);
  if (!boot.ok()) Fail("?", std::string(boot.status().message()));
  gasp::boot::Bootstrap& b = **boot;
  const int rank = b.rank();
  const std::string me = absl::StrCat(rank);
  std::printf("boot_probe rank %d/%d local %d/%d method %s hint '%s'\n", rank, b.size(),
              b.local_rank(), b.local_size(), b.method().c_str(), b.LocalAddressHint().c_str());
  std::fflush(stdout);
  if (args.expect_size >= 0 && b.size() != args.expect_size) {
    Fail(me, absl::StrFormat("size %d, expected %d", b.size(), args.expect_size));
  }
  if (!args.expect_method.empty() && b.method() != args.expect_method) {
    Fail(me, absl::StrFormat("method %s, expected %s", b.method(), args.expect_method));
  }
  auto deadline = [&] { return absl::Now() + config->timeout; };

  for (int round = 0; round < args.rounds; ++round) {
    absl::StatusOr<std::vector<std::string>> all = b.Allgather(Blob(rank, round), deadline());
    if (!all.ok()) Fail(me, absl::StrCat("round ", round, ": ", all.status().message()));
    if (static_cast<int>(all->size()) != b.size()) Fail(me, "allgather returned a wrong count");
    for (int r = 0; r < b.size(); ++r) {
      if ((*all)[r] != Blob(r, round)) {
        Fail(me, absl::StrFormat("allgather %d: entry %d is '%s'", round, r, (*all)[r]));
      }
    }
    if (round == 0 && rank == args.die_rank) {
      std::printf("boot_probe rank %d: dying on purpose (%s)\n", rank, args.die_how.c_str());
      std::fflush(stdout);
      if (args.die_how == "sigkill") raise(SIGKILL);
      if (args.die_how == "exit3") _exit(3);
      if (args.die_how == "stall") {
        for (;;) pause();  // until the launcher kills it
      }
      b.Abort(3, absl::StrCat("boot_probe rank ", rank, " aborts on purpose"));
    }
  }

  gasp::boot::RankRecord mine =
      gasp::boot::MakeRankRecord(rank, absl::StrCat("probe-endpoint-", rank));
  absl::StatusOr<std::vector<gasp::boot::RankRecord>> records =
      gasp::boot::ExchangeRecords(b, mine, deadline());
  if (!records.ok()) Fail(me, absl::StrCat("records: ", records.status().message()));
  for (int r = 0; r < b.size(); ++r) {
    std::string want = absl::StrCat("probe-endpoint-", r);
    if ((*records)[r].transport_blob() != want) {
      Fail(me, absl::StrFormat("record of rank %d carries the wrong endpoint", r));
    }
  }

  absl::Status barrier = b.Barrier(deadline());
  if (!barrier.ok()) Fail(me, absl::StrCat("barrier: ", barrier.message()));
  absl::Status fin = b.Finalize(deadline());
  if (!fin.ok()) Fail(me, absl::StrCat("finalize: ", fin.message()));
  std::printf("boot_probe rank %d: OK (%d allgathers, records, barrier, finalize)\n", rank,
              args.rounds);
  return 0;
}

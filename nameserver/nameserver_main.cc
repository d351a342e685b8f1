// gasp_nameserver: the gasp name server (docs/services.md).
//
//   gasp_nameserver --listen ADDR:PORT --ca FILE --cert FILE --key FILE
//                   [--state FILE] [--port-file FILE]
//   gasp_nameserver --insecure --listen 127.0.0.1:PORT [--state FILE] [--port-file FILE]
//
// Port 0 picks a free port; --port-file then tells launchers which (the
// file appears, complete, once the server accepts calls). SIGTERM, SIGINT
// and SIGHUP stop it cleanly: Watch streams end, calls in flight get a
// moment to finish, the exit status is 0. Exit status 2 for usage errors,
// 1 when the server cannot start (unreadable PEM files, a damaged state
// file, an address in use).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/fd_limit.h"
#include "base/log.h"
#include "base/settings.h"
#include "base/status.h"
#include "nameserver/server.h"

namespace {

// Calls in flight when a stop signal arrives get this long to finish.
constexpr absl::Duration kShutdownGrace = absl::Seconds(2);

const char kUsage[] =
    "usage: gasp_nameserver --listen ADDR:PORT --ca FILE --cert FILE --key FILE [options]\n"
    "       gasp_nameserver --insecure --listen 127.0.0.1:PORT [options]\n"
    "\n"
    "The gasp name server: services register, callers bind (docs/services.md).\n"
    "\n"
    "  --listen ADDR:PORT  address to serve; port 0 picks a free port\n"
    "  --ca FILE           PEM CA certificate(s) that client certificates must chain to\n"
    "  --cert FILE         PEM certificate chain of this server\n"
    "  --key FILE          PEM private key of this server\n"
    "  --state FILE        keep registrations in FILE across restarts\n"
    "  --port-file FILE    write the port number to FILE once serving\n"
    "  --insecure          no TLS, principals from the gasp-principal call metadata;\n"
    "                      loopback addresses only (development)\n"
    "  -h, --help          this help\n"
    "\n"
    "Log level: GASP_LOG_LEVEL (error|warn|info|debug|trace).\n";

[[noreturn]] void UsageError(const std::string& why) {
  std::fprintf(stderr, "gasp_nameserver: %s\n\n%s", why.c_str(), kUsage);
  std::exit(2);
}

struct Args {
  gasp::nameserver::ServerOptions server;
  std::string port_file;
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    bool inline_value = false;
    if (absl::StartsWith(flag, "--") && flag.find('=') != std::string::npos) {
      value = flag.substr(flag.find('=') + 1);
      flag = flag.substr(0, flag.find('='));
      inline_value = true;
    }
    auto get = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= argc) UsageError(absl::StrCat(flag, " needs a value"));
      return argv[++i];
    };
    if (flag == "-h" || flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (flag == "--listen") {
      a.server.listen = get();
    } else if (flag == "--ca") {
      a.server.ca_file = get();
    } else if (flag == "--cert") {
      a.server.cert_file = get();
    } else if (flag == "--key") {
      a.server.key_file = get();
    } else if (flag == "--state") {
      a.server.state_file = get();
    } else if (flag == "--port-file") {
      a.port_file = get();
    } else if (flag == "--insecure" && !inline_value) {
      a.server.insecure = true;
    } else {
      UsageError(absl::StrCat("unknown argument '", argv[i], "'"));
    }
  }
  absl::Status st = gasp::nameserver::CheckServerOptions(a.server);
  if (!st.ok()) UsageError(std::string(st.message()));
  return a;
}

// Written under a temporary name and renamed, so that a launcher polling
// for the file never reads a partial number.
absl::Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return gasp::ErrnoError(absl::StrCat("--port-file ", tmp), errno);
  const bool written = std::fprintf(f, "%d\n", port) > 0;
  if (std::fclose(f) != 0 || !written) {
    std::remove(tmp.c_str());
    return gasp::ErrnoError(absl::StrCat("--port-file ", tmp), errno);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    return gasp::ErrnoError(absl::StrCat("--port-file ", path), e);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  gasp::RaiseDescriptorLimit();  // floods meet the handshake deadlines first
  Args args = ParseArgs(argc, argv);
  absl::StatusOr<gasp::Config> config = gasp::LoadConfigFromEnv();
  gasp::LogLevel level = gasp::LogLevel::kWarn;
  if (!config.ok()) {
    // Only the log settings are read here: a bad unrelated variable must not
    // keep the name server from starting.
    std::fprintf(stderr, "gasp_nameserver: warning: default log settings: %s\n",
                 std::string(config.status().message()).c_str());
  } else if (gasp::ParseLogLevel(config->log_level, &level).ok()) {
    (void)gasp::ConfigureLogging(level, config->log_file);
  }

  // Stop signals are taken synchronously by this thread; block them before
  // gRPC starts its threads so that every thread inherits the mask.
  sigset_t stop;
  sigemptyset(&stop);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop, s);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<gasp::nameserver::Server>> server =
      gasp::nameserver::Server::Start(args.server);
  if (!server.ok()) {
    std::fprintf(stderr, "gasp_nameserver: %s\n", server.status().ToString().c_str());
    return 1;
  }
  if (!args.port_file.empty()) {
    absl::Status st = WritePortFile(args.port_file, (*server)->port());
    if (!st.ok()) {
      std::fprintf(stderr, "gasp_nameserver: %s\n", st.ToString().c_str());
      return 1;
    }
  }
  int sig = 0;
  sigwait(&stop, &sig);
  GASP_LOG(Info) << "gasp_nameserver: signal " << sig << ", stopping";
  (*server)->Shutdown(kShutdownGrace);
  return 0;
}

// GASP_BOOT=tcp, and ranks started by gasprun: rendezvous through the
// coordinator at GASP_COORDINATOR (boot/coordinator.h). Without gasprun,
// rank 0 hosts the coordinator in its own process.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "boot/bootstrap_internal.h"
#include "boot/coordinator.h"
#include "boot/job_secret.h"
#include "boot/net.h"

namespace gasp {
namespace boot {
namespace {

// How long an aborting rank tries to get its ABORT out.
constexpr absl::Duration kAbortSendTimeout = absl::Seconds(5);

class TcpBootstrap : public Bootstrap {
 public:
  TcpBootstrap(const Config& config, const LaunchEnv& env) : config_(config), env_(env) {}

  ~TcpBootstrap() override {
    // Without Finalize, the coordinator reports this rank as dead; a hosted
    // coordinator goes away with it, so the other ranks learn it too.
    client_.reset();
    if (coordinator_) coordinator_->Stop();
  }

  absl::Status Init(absl::Time deadline) {
    bool gasprun = env_.launcher == "gasprun";
    if (env_.rank == 0 && !gasprun) GASP_RETURN_IF_ERROR(HostCoordinator());
    CoordinatorClientOptions o;
    if (gasprun) {
      // gasprun's coordinator admits only HELLOs proving the job secret.
      if (env_.secret_fd.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "started by gasprun, but ", kJobSecretFdVariable,
            " is not set: this gasprun is older than the program's gasp library; use the "
            "gasprun of the same installation"));
      }
      GASP_ASSIGN_OR_RETURN(JobSecret secret, JobSecretFromFd(env_.secret_fd.c_str()));
      secret_.assign(reinterpret_cast<const char*>(secret.bytes.data()), secret.bytes.size());
      o.secret = secret_;
    }
    o.coordinator = config_.coordinator;
    o.rank = env_.rank;
    o.size = env_.size;
    o.job_id = env_.job_id;
    o.timeout = config_.timeout;
    o.expected_owner = gasprun ? "gasprun" : "rank 0";
    GASP_ASSIGN_OR_RETURN(client_, CoordinatorClient::Connect(o, deadline));
    address_ = client_->LocalAddress();
    local_rank_ = env_.local_rank;
    local_size_ = env_.local_size;
    if (!env_.local_known) {
      // The launcher did not say who shares this host: ask everyone.
      GASP_ASSIGN_OR_RETURN(std::vector<std::string> hosts,
                            client_->Allgather(ShortHostName(), deadline));
      LocalRanksFromHosts(hosts, env_.rank, &local_rank_, &local_size_);
    }
    return absl::OkStatus();
  }

  int rank() const override { return env_.rank; }
  int size() const override { return env_.size; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string method() const override { return env_.launcher == "gasprun" ? "gasprun" : "tcp"; }
  std::string LauncherSecret() const override { return secret_; }

  absl::StatusOr<std::vector<std::string>> Allgather(absl::string_view mine,
                                                     absl::Time deadline) override {
    if (!client_) return absl::FailedPreconditionError("Allgather after Finalize");
    return client_->Allgather(mine, deadline);
  }

  absl::Status Barrier(absl::Time deadline) override {
    if (!client_) return absl::FailedPreconditionError("Barrier after Finalize");
    return client_->Barrier(deadline);
  }

  [[noreturn]] void Abort(int exit_code, absl::string_view message) override {
    GASP_LOG(Error) << "abort (exit code " << exit_code << "): " << message;
    absl::Time deadline = absl::Now() + std::min(config_.timeout, kAbortSendTimeout);
    if (coordinator_) {
      // This process serves the others: broadcast before exiting.
      coordinator_->AbortJob(env_.rank, exit_code, std::string(message), deadline);
    } else if (client_) {
      absl::Status s = client_->SendAbort(exit_code, message, deadline);
      if (!s.ok()) {
        GASP_LOG(Error) << "could not tell the other ranks: " << s.message();
      }
    }
    _exit(exit_code);
  }

  std::string LocalAddressHint() const override { return address_; }

  void SetJobFailureHandler(JobFailureHandler handler) override {
    if (client_) client_->SetJobFailureHandler(std::move(handler));
  }

  absl::Status Finalize(absl::Time deadline) override {
    if (!client_) return absl::FailedPreconditionError("Finalize called twice");
    absl::Status s = client_->Finalize(deadline);
    if (coordinator_) {
      // The coordinator lives in this process: it must serve the others
      // until they have finalized too.
      absl::Status all = coordinator_->WaitAllLeft(deadline);
      if (!all.ok()) {
        all = absl::DeadlineExceededError(absl::StrCat(
            "rank 0 hosts the coordinator and waited for every rank to finalize within "
            "GASP_TIMEOUT=",
            absl::FormatDuration(config_.timeout), ": ", all.message()));
      }
      coordinator_->Stop();
      if (s.ok()) s = all;
    }
    client_.reset();
    return s;
  }

 private:
  // Rank 0 without gasprun: listen at GASP_COORDINATOR.
  absl::Status HostCoordinator() {
    GASP_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(config_.coordinator, "GASP_COORDINATOR"));
    absl::StatusOr<sockaddr_in> addr = ResolveIPv4(hp.host, hp.port);
    if (!addr.ok()) {
      return absl::Status(
          addr.status().code(),
          absl::StrCat("GASP_COORDINATOR=", config_.coordinator, ": ", addr.status().message()));
    }
    std::string ip = FormatAddress(*addr);
    ip = ip.substr(0, ip.rfind(':'));
    bool loopback = (ntohl(addr->sin_addr.s_addr) >> 24) == 127;
    bool literal = hp.host == ip || absl::EqualsIgnoreCase(hp.host, "localhost");
    CoordinatorOptions co;
    co.port = hp.port;
    co.size = env_.size;
    co.job_id = env_.job_id;
    co.advertised_address = config_.coordinator;
    co.owner = absl::StrFormat("rank 0 (%s:%d)", ShortHostName(), getpid());
    co.hello_timeout = config_.timeout;
    if (loopback && literal) {
      co.bind_host = ip;  // a single-host job asked for loopback only
    } else {
      // Host names often resolve differently on the host itself (Debian's
      // 127.0.1.1): check the address is this host's, then listen on all
      // interfaces so that other hosts reach it under any of its names.
      if (!loopback) GASP_RETURN_IF_ERROR(CheckLocalAddress(*addr, ip));
      co.bind_host = "0.0.0.0";
    }
    absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Start(co);
    if (!c.ok()) {
      return absl::Status(
          c.status().code(),
          absl::StrFormat("rank 0 cannot host the coordinator at GASP_COORDINATOR=%s: %s. Set "
                          "GASP_COORDINATOR to a free port on rank 0's host (%s)",
                          config_.coordinator, c.status().message(), ShortHostName()));
    }
    coordinator_ = std::move(*c);
    GASP_LOG(Info) << "rank 0 hosts the coordinator at " << config_.coordinator;
    return absl::OkStatus();
  }

  absl::Status CheckLocalAddress(sockaddr_in addr, const std::string& ip) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return ErrnoError("socket", errno);
    addr.sin_port = 0;
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno == EADDRNOTAVAIL) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GASP_COORDINATOR=%s names %s, which is not an address of rank 0's host %s: rank 0 "
          "hosts the coordinator, so GASP_COORDINATOR must name rank 0's host",
          config_.coordinator, ip, ShortHostName()));
    }
    return absl::OkStatus();
  }

  Config config_;
  LaunchEnv env_;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::string address_;  // this end of the coordinator connection
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorClient> client_;
  std::string secret_;  // from gasprun (LauncherSecret)
};

}  // namespace

void LocalRanksFromHosts(const std::vector<std::string>& hosts, int rank, int* local_rank,
                         int* local_size) {
  const std::string& mine = hosts[rank];
  int before = 0, same = 0;
  for (int r = 0; r < static_cast<int>(hosts.size()); ++r) {
    if (hosts[r] != mine) continue;
    ++same;
    if (r < rank) ++before;
  }
  *local_rank = before;
  *local_size = same;
}

absl::StatusOr<std::unique_ptr<Bootstrap>> CreateTcpBootstrap(const Config& config,
                                                              const LaunchEnv& env) {
  if (config.coordinator.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the tcp bootstrap needs GASP_COORDINATOR=host:port (rank %d of %d): set it to an "
        "address of rank 0's host and a free port",
        env.rank, env.size));
  }
  auto b = std::make_unique<TcpBootstrap>(config, env);
  GASP_RETURN_IF_ERROR(b->Init(absl::Now() + config.timeout));
  return std::unique_ptr<Bootstrap>(std::move(b));
}

}  // namespace boot
}  // namespace gasp

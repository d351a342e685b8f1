// A running name server: the gRPC server with the NameServer service,
// gRPC health checking (grpc.health.v1.Health, overall status SERVING while
// up) and server reflection, over mutual TLS or, when asked, insecure on
// loopback. With TLS every call of every service needs a client
// certificate that ClientCertVerifier accepts (client_cert.h); others get
// UNAUTHENTICATED with the reason. gasp_nameserver (nameserver_main.cc) is
// a thin wrapper.
#ifndef GASP_NAMESERVER_SERVER_H_
#define GASP_NAMESERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nameserver/registry.h"
#include "nameserver/service.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace gasp {
namespace nameserver {

struct ServerOptions {
  // host:port to listen on; port 0 picks a free port (see Server::port()).
  std::string listen;
  // PEM files: the CA that client certificates must chain to, and the
  // server's own certificate chain and private key. Required unless
  // `insecure`.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // No TLS; principals from call metadata. Only with a loopback `listen`.
  bool insecure = false;
  // State file; empty keeps registrations in memory only.
  std::string state_file;
};

// Checks the options without touching the network or files: `listen`
// parses; with `insecure` it is a loopback address and no PEM file is
// given; otherwise all three PEM files are given. InvalidArgument names the
// command-line flag (--listen, --insecure, --ca, ...).
absl::Status CheckServerOptions(const ServerOptions& options);

class Server {
 public:
  // Checks the options, reads the PEM files, loads the state file and
  // starts listening. Errors name the file or flag at fault; a damaged state
  // file is an error (see Registry::Open).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);

  // Shutdown(absl::ZeroDuration()) unless done already.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port the server listens on (the chosen one when `listen` had 0).
  int port() const { return port_; }

  // Health NOT_SERVING, every Watch stream ends with OK, new calls are
  // refused; calls in flight get up to `grace` to finish and are then
  // cancelled. Returns when the server has stopped. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  Server() = default;

  // Declared in destruction-safe order: the gRPC server goes first.
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<NameServerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_SERVER_H_

// C++ client of the gasp name server.
//
//   absl::StatusOr<ClientOptions> o = ClientOptionsFromConfig(config);  // GASP_NAMESERVER, GASP_NS_*
//   absl::StatusOr<std::unique_ptr<NameServerClient>> ns = NameServerClient::Create(*o);
//   v1::BindRequest req;
//   req.set_service("solver.v1/Jacobi");
//   req.set_machine_type("x86_64-linux-gnu");
//   absl::StatusOr<v1::BindReply> b = (*ns)->Bind(req);
//
// Every call is bounded by ClientOptions::deadline: a name server that is
// down fails at once with Unavailable, one that does not answer fails with
// DeadlineExceeded at the deadline; no call waits longer. Errors keep the
// server's code (absl and gRPC codes are the same numbers): NotFound,
// PermissionDenied, InvalidArgument, Unauthenticated, ... with the message
// prefixed by "name server ADDRESS: ". A client certificate the server
// refuses (another CA's, expired, not yet valid) is Unauthenticated with
// the server's reason. A TLS handshake that fails on this side (the
// server's certificate not signed by the CA file, or not for the host) is
// Unavailable, as gRPC reports failed connections, with a hint to check.
//
// Thread-safe: one client may be shared by every thread of a process.
#ifndef GASP_NAMESERVER_CLIENT_H_
#define GASP_NAMESERVER_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/settings.h"
#include "nameserver/nameserver.pb.h"

namespace gasp {
namespace nameserver {

struct ClientOptions {
  // host:port of the name server.
  std::string address;
  // Mutual TLS: the CA that signed the server's certificate, and this
  // client's certificate chain and private key (PEM files). All three, or
  // none with `insecure`.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Checks the server certificate for this name instead of the host of
  // `address` (e.g. when connecting by an IP address the certificate does
  // not list). Empty: the host of `address`.
  std::string tls_server_name;
  // Development only: no TLS, `address` must be loopback, and `principal`
  // is sent as the gasp-principal metadata ("uid:<uid>" when empty).
  bool insecure = false;
  std::string principal;
  // Bound of every call, connection set-up included.
  absl::Duration deadline = absl::Seconds(10);
};

// Client options from the settings: GASP_NAMESERVER (address; empty is
// FailedPrecondition "no name server"), GASP_NS_CA, GASP_NS_CERT and
// GASP_NS_KEY (all three for TLS; all empty means insecure, which needs a
// loopback address), GASP_TIMEOUT as the deadline. InvalidArgument names
// the variables when only some PEM paths are set.
absl::StatusOr<ClientOptions> ClientOptionsFromConfig(const Config& config);

class NameServerClient {
 public:
  // Checks the options and reads the PEM files; does not connect (the
  // first call does). InvalidArgument names the option or file at fault.
  static absl::StatusOr<std::unique_ptr<NameServerClient>> Create(const ClientOptions& options);

  ~NameServerClient();
  NameServerClient(const NameServerClient&) = delete;
  NameServerClient& operator=(const NameServerClient&) = delete;

  // Registers (or, as its owner, replaces) request.service(); this client's
  // principal becomes the owner.
  absl::StatusOr<v1::RegisterReply> Register(const v1::RegisterRequest& request);

  // How to call request.service() from here (nameserver.proto, BindReply).
  absl::StatusOr<v1::BindReply> Bind(const v1::BindRequest& request);

  // Removes `service`; only its owner may.
  absl::Status Unregister(absl::string_view service);

  // Every registered service, sorted by name.
  absl::StatusOr<std::vector<v1::ServiceSummary>> List();

  // Follows the registry: `on_event` gets a REGISTERED event per current
  // service, then SYNCED, then one REGISTERED or UNREGISTERED event per
  // change (nameserver.proto, WatchEvent), on this thread, in order. Ends
  // when `on_event` returns false or the server ends the stream as it shuts
  // down (both OK), or at `until` (DeadlineExceeded): a watch is long-lived,
  // so it has its own bound instead of ClientOptions::deadline. A server
  // that is down fails at once (Unavailable), as every call does.
  absl::Status Watch(const std::function<bool(const v1::WatchEvent&)>& on_event,
                     absl::Time until);

  // The name server's address, as given.
  const std::string& address() const;

 private:
  struct Impl;
  explicit NameServerClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_CLIENT_H_

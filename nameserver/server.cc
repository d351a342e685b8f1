#include "nameserver/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "nameserver/client_cert.h"
#include "nameserver/endpoint.h"
#include "nameserver/pem.h"
#include "nameserver/server_limits.h"

namespace gasp {
namespace nameserver {
namespace {

// Long-lived Watch streams must notice clients that vanished without
// closing the connection (a crashed host): ping idle connections.
constexpr int kKeepaliveTimeMs = 60 * 1000;
constexpr int kKeepaliveTimeoutMs = 20 * 1000;

struct Credentials {
  std::shared_ptr<grpc::ServerCredentials> creds;
  std::shared_ptr<ClientCertVerifier> verifier;  // null when insecure
};

absl::StatusOr<Credentials> MakeCredentials(const ServerOptions& o) {
  if (o.insecure) return Credentials{grpc::InsecureServerCredentials(), nullptr};
  GASP_ASSIGN_OR_RETURN(std::string ca, ReadPemFile("--ca", o.ca_file));
  GASP_ASSIGN_OR_RETURN(std::string cert, ReadPemFile("--cert", o.cert_file));
  GASP_ASSIGN_OR_RETURN(std::string key, ReadPemFile("--key", o.key_file));
  Credentials c;
  GASP_ASSIGN_OR_RETURN(c.verifier,
                        ClientCertVerifier::Create(ca, absl::StrCat("--ca ", o.ca_file)));
  // The handshake asks for a client certificate but lets every client in,
  // with or without one: refused there, a client would only see a closed
  // socket (UNAVAILABLE, like a dead server). The processor checks the
  // certificate on every call, of every service, before any handler runs,
  // and refuses with UNAUTHENTICATED and the reason (client_cert.h). The
  // CA certificates still go to the handshake: their names are the
  // acceptable issuers it announces to clients.
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  ssl.pem_root_certs = std::move(ca);
  ssl.pem_key_cert_pairs.push_back({std::move(key), std::move(cert)});
  c.creds = grpc::SslServerCredentials(ssl);
  c.creds->SetAuthMetadataProcessor(NewClientCertProcessor(c.verifier));
  return c;
}

}  // namespace

absl::Status CheckServerOptions(const ServerOptions& o) {
  if (o.listen.empty()) return absl::InvalidArgumentError("--listen ADDR:PORT is required");
  GASP_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(o.listen, "--listen", /*allow_port_zero=*/true));
  const bool any_pem = !o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty();
  if (o.insecure) {
    if (!IsLoopbackHost(hp.host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--insecure serves only loopback addresses (127.0.0.1, ::1, localhost); --listen ",
          o.listen,
          " is not one. Without TLS anyone who reaches the port may claim any principal: drop "
          "--insecure and give --ca, --cert and --key"));
    }
    if (any_pem) {
      return absl::InvalidArgumentError("--insecure and --ca/--cert/--key exclude each other");
    }
    return absl::OkStatus();
  }
  if (o.ca_file.empty() || o.cert_file.empty() || o.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--ca, --cert and --key are required (mutual TLS); --insecure runs without TLS on "
        "loopback for development");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  GASP_RETURN_IF_ERROR(CheckServerOptions(options));
  GASP_ASSIGN_OR_RETURN(Credentials creds, MakeCredentials(options));
  RegistryOptions ro;
  ro.state_path = options.state_file;
  std::unique_ptr<Server> s(new Server());
  GASP_ASSIGN_OR_RETURN(s->registry_, Registry::Open(ro));
  s->service_ = std::make_unique<NameServerService>(
      s->registry_.get(), options.insecure ? AuthMode::kInsecure : AuthMode::kTls,
      creds.verifier);

  // Both are process-wide switches read by the next ServerBuilder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, creds.creds, &s->port_);
  builder.RegisterService(s->service_.get());
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  ns::ApplyServerLimits(builder);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        " (address in use or not local, or --cert/--key not a matching pair; gRPC's message "
        "above has the cause)"));
  }
  GASP_LOG(Info) << "gasp_nameserver: listening on port " << s->port_ << " of " << options.listen
                 << (options.insecure ? " (insecure, development only)" : " (mutual TLS)") << ", "
                 << s->registry_->size() << " service(s)";
  return s;
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

void Server::Shutdown(absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  if (server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  // Watch handlers would otherwise hold Shutdown for the whole grace.
  registry_->CloseWatchers();
  // Calls in flight get the grace (service.h, WaitIdle). A handler that
  // has returned may still be sending its final status (a Watch ended by
  // CloseWatchers above ends with OK): gRPC gets a bounded moment to finish
  // those, then cancels whatever is left and closes the connections.
  if (!service_->WaitIdle(absl::Now() + grace)) {
    GASP_LOG(Warn) << "gasp_nameserver: cancelling calls still running after " << grace;
  }
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  server_->Wait();
  GASP_LOG(Info) << "gasp_nameserver: stopped";
}

}  // namespace nameserver
}  // namespace gasp

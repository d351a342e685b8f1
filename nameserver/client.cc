#include "nameserver/client.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status.h"
#include "nameserver/endpoint.h"
#include "nameserver/grpc_status.h"
#include "nameserver/nameserver.grpc.pb.h"
#include "nameserver/pem.h"
#include "nameserver/principal.h"

namespace gasp {
namespace nameserver {

struct NameServerClient::Impl {
  ClientOptions options;
  std::unique_ptr<v1::NameServer::Stub> stub;

  // A context bounded by the deadline, carrying the principal when insecure.
  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
    if (options.insecure) context->AddMetadata(kPrincipalMetadataKey, options.principal);
  }

  absl::Status Done(const grpc::Status& status) const {
    absl::Status st = FromGrpcStatus(status);
    // The name server refuses a client certificate per call, with
    // Unauthenticated and the reason: that passes through as it is. What
    // still fails the TLS handshake is this side refusing the server's
    // certificate, and gRPC reports that as Unavailable, like a server that
    // is down. Say what to check.
    if (absl::IsUnavailable(st) && !options.insecure) {
      st = absl::UnavailableError(absl::StrCat(
          st.message(), " (if the name server is up: check that its certificate is signed by ",
          options.ca_file, " and names ",
          options.tls_server_name.empty() ? "the host of " + options.address
                                          : "'" + options.tls_server_name + "'",
          ")"));
    }
    return Annotate(st, absl::StrCat("name server ", options.address));
  }
};

absl::StatusOr<ClientOptions> ClientOptionsFromConfig(const Config& config) {
  if (config.nameserver.empty()) {
    return absl::FailedPreconditionError(
        "no name server: GASP_NAMESERVER is empty (gasprun starts one unless --no-nameserver)");
  }
  ClientOptions o;
  o.address = config.nameserver;
  o.ca_file = config.ns_ca;
  o.cert_file = config.ns_cert;
  o.key_file = config.ns_key;
  o.deadline = config.timeout;
  const int given = !o.ca_file.empty() + !o.cert_file.empty() + !o.key_file.empty();
  if (given != 0 && given != 3) {
    return absl::InvalidArgumentError(
        "GASP_NS_CA, GASP_NS_CERT and GASP_NS_KEY must be set together (mutual TLS) or all be "
        "empty (insecure loopback development mode)");
  }
  o.insecure = given == 0;
  return o;
}

absl::StatusOr<std::unique_ptr<NameServerClient>> NameServerClient::Create(
    const ClientOptions& options) {
  GASP_ASSIGN_OR_RETURN(HostPort hp,
                        ParseHostPort(options.address, "name server address", false));
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the name server client deadline must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  if (options.insecure) {
    if (!IsLoopbackHost(hp.host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "name server ", options.address,
          ": insecure mode connects only to loopback addresses; give the CA, certificate and "
          "key (GASP_NS_CA, GASP_NS_CERT, GASP_NS_KEY)"));
    }
    if (impl->options.principal.empty()) impl->options.principal = absl::StrCat("uid:", getuid());
    creds = grpc::InsecureChannelCredentials();
  } else {
    if (options.ca_file.empty() || options.cert_file.empty() || options.key_file.empty()) {
      return absl::InvalidArgumentError(
          "the name server client needs a CA, a certificate and a key file (or insecure mode)");
    }
    grpc::SslCredentialsOptions ssl;
    GASP_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPemFile("CA file", options.ca_file));
    GASP_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPemFile("certificate file", options.cert_file));
    GASP_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPemFile("key file", options.key_file));
    creds = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  // Every call is already bounded by its deadline; a short reconnect
  // backoff keeps a restarted name server from looking dead for long.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(options.address, creds, args);
  impl->stub = v1::NameServer::NewStub(channel);
  return std::unique_ptr<NameServerClient>(new NameServerClient(std::move(impl)));
}

NameServerClient::NameServerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NameServerClient::~NameServerClient() = default;

const std::string& NameServerClient::address() const { return impl_->options.address; }

absl::StatusOr<v1::RegisterReply> NameServerClient::Register(const v1::RegisterRequest& request) {
  grpc::ClientContext context;
  impl_->Prepare(&context);
  v1::RegisterReply reply;
  GASP_RETURN_IF_ERROR(impl_->Done(impl_->stub->Register(&context, request, &reply)));
  return reply;
}

absl::StatusOr<v1::BindReply> NameServerClient::Bind(const v1::BindRequest& request) {
  grpc::ClientContext context;
  impl_->Prepare(&context);
  v1::BindReply reply;
  GASP_RETURN_IF_ERROR(impl_->Done(impl_->stub->Bind(&context, request, &reply)));
  return reply;
}

absl::Status NameServerClient::Unregister(absl::string_view service) {
  grpc::ClientContext context;
  impl_->Prepare(&context);
  v1::UnregisterRequest request;
  request.set_service(std::string(service));
  v1::UnregisterReply reply;
  return impl_->Done(impl_->stub->Unregister(&context, request, &reply));
}

absl::Status NameServerClient::Watch(const std::function<bool(const v1::WatchEvent&)>& on_event,
                                     absl::Time until) {
  grpc::ClientContext context;
  impl_->Prepare(&context);
  context.set_deadline(absl::ToChronoTime(until));
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
      impl_->stub->Watch(&context, v1::WatchRequest());
  v1::WatchEvent event;
  bool stopped = false;
  while (reader->Read(&event)) {
    if (!on_event(event)) {
      stopped = true;
      context.TryCancel();  // the stream ends; Finish reports CANCELLED
      break;
    }
  }
  if (stopped) {
    while (reader->Read(&event)) {
    }
    (void)reader->Finish();
    return absl::OkStatus();
  }
  return impl_->Done(reader->Finish());
}

absl::StatusOr<std::vector<v1::ServiceSummary>> NameServerClient::List() {
  grpc::ClientContext context;
  impl_->Prepare(&context);
  v1::ListReply reply;
  GASP_RETURN_IF_ERROR(impl_->Done(impl_->stub->List(&context, v1::ListRequest(), &reply)));
  return std::vector<v1::ServiceSummary>(reply.services().begin(), reply.services().end());
}

}  // namespace nameserver
}  // namespace gasp

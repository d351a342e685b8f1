#include "rpcgen/host.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "base/stats.h"
#include "base/status.h"
#include "nameserver/server_limits.h"
#include "rpcgen/call_credential.h"
#include "rpcgen/call_notices.h"
#include "rpcgen/global_refs.h"
#include "rpcgen/ns.h"
#include "rpcgen/pages.h"
#include "rpcgen/shipping.grpc.pb.h"
#include "runtime/public_status.h"
#include "runtime/runtime_internal.h"

namespace gasp {
namespace rpc {

namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace

// The Shipping gRPC service: one handler for every published method.
class ShippingServiceImpl final : public Shipping::Service {
 public:
  // `tls` null: no mutual TLS; every call must then carry a credential
  // made with the job secret (call_credential.h), checked here.
  explicit ShippingServiceImpl(const ShippingTls* tls) : tls_(tls), replays_(Size()) {}

  grpc::Status Call(grpc::ServerContext* context, const CallRequest* request,
                    CallReply* reply) override {
    if (tls_ != nullptr) {
      // The server's processor already refused callers without a valid
      // certificate; the principal the call claims must be its subject.
      absl::StatusOr<std::string> caller = tls_->CallerOf(*context);
      if (!caller.ok()) return ToGrpc(caller.status());
      if (*caller != request->principal()) {
        return Refuse(*context, *request,
                      absl::PermissionDeniedError(
                          absl::StrCat("the call claims principal '", request->principal(),
                                       "' but its certificate is '", *caller, "'")));
      }
      // Its certificate let it in; this job's id it must prove too, or it
      // could pass notices and move delivery marks as a rank of this job.
      if (request->job_id() == internal::JobId()) {
        absl::Status auth = CheckCallCredential(internal::JobSecret().key(), Rank(), *request,
                                                &replays_, kTlsCredentialHint);
        if (!auth.ok()) return Refuse(*context, *request, auth);
      }
    } else {
      absl::Status auth =
          CheckCallCredential(internal::JobSecret().key(), Rank(), *request, &replays_);
      if (!auth.ok()) return Refuse(*context, *request, auth);
    }
    ShippedCallOut out;
    absl::Status s = RunShippedCall(
        request->service(), request->method(),
        {request->request(), request->pages(), request->notices(), request->caller_rank(),
         request->job_id() == internal::JobId()},
        &out);
    if (!s.ok()) {
      GASP_LOG(Info) << "shipped call " << request->service() << "." << request->method()
                     << " from rank " << request->caller_rank() << " refused: " << s;
      return ToGrpc(s);
    }
    reply->set_reply(std::move(out.reply));
    reply->set_pages(std::move(out.pages));
    reply->set_notices(std::move(out.notices));
    return grpc::Status::OK;
  }

 private:
  // A call refused for who made it (credential or principal): counted,
  // logged at most once per 10 s with a count.
  grpc::Status Refuse(const grpc::ServerContext& context, const CallRequest& request,
                      const absl::Status& why) {
    StatAdd(Counter::kRpcsRefused);
    uint64_t held = 0;
    if (refused_log_.Allow(&held)) {
      GASP_LOG(Warn) << "shipped call " << request.service() << "." << request.method()
                     << " from " << context.peer() << " refused: " << why.message() << " ("
                     << held << " more refused without a line since the last one)";
    }
    return ToGrpc(why);
  }

  const ShippingTls* const tls_;
  ReplayGuard replays_;
  LogLimiter refused_log_;
};

namespace {
// The successful end of a shipped call: release, the reply's pages and
// bytes.
absl::Status ReplyWithNotices(const google::protobuf::Message& rep, int caller_rank,
                              bool same_job, ShippedCallOut* out);
}  // namespace

absl::Status RunShippedCall(const std::string& service, const std::string& method,
                            const ShippedCallIn& in, ShippedCallOut* out) {
  const int caller_rank = in.caller_rank;
  PublishedService* svc = Host::Get().Find(service);
  if (svc == nullptr) {
    return absl::NotFoundError(absl::StrCat("service ", service, " is not published by ",
                                            internal::DescribeRank(Rank())));
  }
  const MethodInfo* m = nullptr;
  for (const MethodInfo& mi : svc->impl->methods()) {
    if (method == mi.name) m = &mi;
  }
  if (m == nullptr) {
    return absl::UnimplementedError(absl::StrCat(service, " has no method ", method));
  }
  if (caller_rank < 0 || caller_rank >= Size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("caller rank %d is not a rank of this job (0..%d)", caller_rank, Size() - 1));
  }
  std::unique_ptr<google::protobuf::Message> req(m->request_prototype->New());
  if (!req->ParseFromString(in.request)) {
    return absl::InvalidArgumentError(absl::StrCat("the request of ", service, ".", method,
                                                   " does not parse as ",
                                                   req->GetDescriptor()->full_name()));
  }
  // Every by-reference argument must be allocated memory the caller may
  // read; the bundle may only hold the caller's home pages inside them.
  std::vector<Ref> refs;
  GASP_RETURN_IF_ERROR(CollectGlobalRefs(*req, &refs));
  for (const Ref& r : refs) {
    GASP_RETURN_IF_ERROR(internal::CheckGlobalRef(r.address, r.length, caller_rank, false));
  }
  absl::StatusOr<std::vector<consistency::Contribution>> notices =
      in.same_job ? DecodeNotices(in.notices) : std::vector<consistency::Contribution>();
  if (!notices.ok()) return Annotate(notices.status(), "the request's write notices were rejected");
  GASP_RETURN_IF_ERROR(Annotate(AcquireAndInstall(in.pages, refs, caller_rank).status(),
                                "the request's page bundle was rejected"));
  // The caller's other writes: stale copies here go, and this rank passes
  // the notices on (call_notices.h).
  GASP_RETURN_IF_ERROR(ApplyNotices(caller_rank, *notices, refs));
  std::unique_ptr<google::protobuf::Message> rep(m->reply_prototype->New());
  absl::Status run = ToAbsl(m->invoke(svc->impl.get(), *req, rep.get()));
  // The callee's writes (through references too) go home before the reply,
  // so the caller sees them after its acquire; their notices go with it.
  // An error reply carries none: they are published to the log instead.
  if (run.ok()) run = ReplyWithNotices(*rep, caller_rank, in.same_job, out);
  if (!run.ok()) {
    GASP_RETURN_IF_ERROR(internal::GetSync()->Release());
    return run;
  }
  return absl::OkStatus();
}

namespace {
absl::Status ReplyWithNotices(const google::protobuf::Message& rep, int caller_rank,
                              bool same_job, ShippedCallOut* out) {
  if (same_job) {
    GASP_ASSIGN_OR_RETURN(const CarriedNotices carried, ReleaseForCall(caller_rank));
    // A reply is taken as delivered: a call whose reply is lost failed, and
    // a failed call orders nothing.
    Delivered(caller_rank, carried);
    out->notices = carried.bytes;
  } else {
    GASP_RETURN_IF_ERROR(internal::GetSync()->Release());  // another job: the log
  }
  std::vector<Ref> out_refs;
  GASP_RETURN_IF_ERROR(CollectGlobalRefs(rep, &out_refs));
  BundleCounts sent;
  out->pages = BundleHomePages(out_refs, caller_rank, &sent);
  if (!rep.SerializeToString(&out->reply)) {
    return absl::InternalError(
        absl::StrCat("cannot serialize the reply of ", rep.GetDescriptor()->full_name()));
  }
  return absl::OkStatus();
}
}  // namespace

void SignJobCall(int callee, CallRequest* request) {
  static CallCounters* counters = new CallCounters(Size());
  SignCall(internal::JobSecret().key(), callee, counters->Next(callee), request);
}

Host& Host::Get() {
  static Host* host = [] {
    Host* h = new Host();
    internal::AtFinalize([h] { h->Stop(); });
    return h;
  }();
  return *host;
}

absl::StatusOr<std::string> Host::Endpoint() {
  std::lock_guard<std::mutex> lock(mu_);
  if (server_ != nullptr) return endpoint_;
  // With the name server's mutual TLS configured, shipped calls use it too
  // (shipping_tls.h); without it they carry no credentials, like the tcp
  // transport (development on one machine; docs/services.md).
  GASP_ASSIGN_OR_RETURN(const ShippingTls* tls, JobShippingTls());
  service_ = std::make_unique<ShippingServiceImpl>(tls);
  grpc::ServerBuilder builder;
  int port = 0;
  // Where the other ranks reach this one, not every interface
  // (GASP_TCP_ADDR=0.0.0.0 asks for every one). Without TLS, the preface
  // gate listens and hands gRPC its connections (preface_gate.h).
  if (tls != nullptr) {
    builder.AddListeningPort(absl::StrCat(internal::ListenHost(), ":0"),
                             tls->ServerCredentials(), &port);
  }
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(512 << 20);
  builder.SetMaxSendMessageSize(512 << 20);
  builder.AddChannelArgument("grpc.http2.lookahead_bytes", 16 << 20);
  ns::ApplyServerLimits(builder);
  server_ = builder.BuildAndStart();
  if (server_ != nullptr && tls == nullptr) {
    absl::StatusOr<std::unique_ptr<PrefaceGate>> gate =
        PrefaceGate::Start("function-shipping server", internal::ListenHost(), server_.get());
    if (!gate.ok()) {
      server_->Shutdown();
      server_.reset();
      return gate.status();
    }
    gate_ = *std::move(gate);
    port = gate_->port();
  }
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError("cannot start the function-shipping server (gRPC)");
  }
  endpoint_ = absl::StrCat(internal::AdvertisedHost(), ":", port);
  GASP_LOG(Info) << "function-shipping server at " << endpoint_;
  return endpoint_;
}

absl::Status Host::Add(PublishedService service) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string name = service.impl->service_name();
  if (services_.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("service ", name, " is already published here"));
  }
  services_[name] = std::make_unique<PublishedService>(std::move(service));
  return absl::OkStatus();
}

PublishedService* Host::Find(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : it->second.get();
}

void Host::Stop() {
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<PrefaceGate> gate;
  {
    std::lock_guard<std::mutex> lock(mu_);
    server = std::move(server_);
    gate = std::move(gate_);
  }
  gate.reset();  // no new connections for a server that shuts down
  if (server != nullptr) {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server->Wait();
  }
  std::lock_guard<std::mutex> lock(mu_);
  services_.clear();
  service_.reset();
  endpoint_.clear();
}

}  // namespace rpc
}  // namespace gasp

#include "nameserver/service.h"

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/log.h"
#include "nameserver/grpc_status.h"

namespace gasp {
namespace nameserver {
namespace {

// How often a Watch stream with nothing to send checks whether its client
// went away (the sync API has no cancellation callback).
constexpr absl::Duration kWatchPoll = absl::Milliseconds(200);

// Logs refused calls at debug: a client's mistake, not the server's.
grpc::Status Reply(const char* method, const std::string& principal, const absl::Status& st) {
  if (!st.ok()) {
    GASP_LOG(Debug) << "gasp_nameserver: " << method << " from '" << principal << "': " << st;
  }
  return ToGrpcStatus(st);
}

}  // namespace

NameServerService::InFlight::InFlight(NameServerService* s) : s_(s) {
  absl::MutexLock lock(&s_->mu_);
  ++s_->in_flight_;
}

NameServerService::InFlight::~InFlight() {
  absl::MutexLock lock(&s_->mu_);
  --s_->in_flight_;
}

absl::StatusOr<std::string> NameServerService::Principal(const grpc::ServerContext& context) const {
  return PrincipalOf(context, mode_, verifier_.get());
}

bool NameServerService::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

grpc::Status NameServerService::Register(grpc::ServerContext* context,
                                         const v1::RegisterRequest* request,
                                         v1::RegisterReply* reply) {
  InFlight in_flight(this);
  absl::StatusOr<std::string> principal = Principal(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<v1::RegisterReply> r = registry_->Register(*principal, *request);
  if (r.ok()) *reply = std::move(*r);
  return Reply("Register", *principal, r.status());
}

grpc::Status NameServerService::Bind(grpc::ServerContext* context, const v1::BindRequest* request,
                                     v1::BindReply* reply) {
  InFlight in_flight(this);
  absl::StatusOr<std::string> principal = Principal(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<v1::BindReply> r = registry_->Bind(*principal, *request);
  if (r.ok()) *reply = std::move(*r);
  return Reply("Bind", *principal, r.status());
}

grpc::Status NameServerService::Unregister(grpc::ServerContext* context,
                                           const v1::UnregisterRequest* request,
                                           v1::UnregisterReply* reply) {
  InFlight in_flight(this);
  absl::StatusOr<std::string> principal = Principal(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  return Reply("Unregister", *principal, registry_->Unregister(*principal, request->service()));
}

grpc::Status NameServerService::List(grpc::ServerContext* context, const v1::ListRequest* request,
                                     v1::ListReply* reply) {
  InFlight in_flight(this);
  absl::StatusOr<std::string> principal = Principal(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  *reply = registry_->List();
  return grpc::Status::OK;
}

grpc::Status NameServerService::Watch(grpc::ServerContext* context,
                                      const v1::WatchRequest* request,
                                      grpc::ServerWriter<v1::WatchEvent>* writer) {
  InFlight in_flight(this);
  absl::StatusOr<std::string> principal = Principal(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<std::unique_ptr<Watcher>> watcher = registry_->Watch();
  if (!watcher.ok()) return Reply("Watch", *principal, watcher.status());
  for (;;) {
    v1::WatchEvent event;
    switch ((*watcher)->Next(absl::Now() + kWatchPoll, &event)) {
      case Watcher::Result::kEvent:
        if (!writer->Write(event)) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away");
        }
        break;
      case Watcher::Result::kTimeout:
        if (context->IsCancelled()) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away");
        }
        break;
      case Watcher::Result::kClosed:
        return grpc::Status::OK;
      case Watcher::Result::kOverflow:
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "this watcher fell too far behind; watch again to resync");
    }
  }
}

}  // namespace nameserver
}  // namespace gasp

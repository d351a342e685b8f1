// The gRPC face of the Registry: authenticates each call (principal.h:
// with TLS, the client certificate check of client_cert.h), then forwards
// it. Errors keep their absl code as the gRPC code.
#ifndef GASP_NAMESERVER_SERVICE_H_
#define GASP_NAMESERVER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "nameserver/client_cert.h"
#include "nameserver/nameserver.grpc.pb.h"
#include "nameserver/principal.h"
#include "nameserver/registry.h"

namespace gasp {
namespace nameserver {

class NameServerService final : public v1::NameServer::Service {
 public:
  // `registry` must outlive the service and every call in flight.
  // `verifier` checks client certificates with AuthMode::kTls (required
  // there: without it every call is refused); unused with kInsecure.
  NameServerService(Registry* registry, AuthMode mode,
                    std::shared_ptr<ClientCertVerifier> verifier = nullptr)
      : registry_(registry), mode_(mode), verifier_(std::move(verifier)) {}

  // Each RPC: the principal (or UNAUTHENTICATED, before the registry is
  // touched), then the Registry call of the same name; the semantics are in
  // nameserver.proto and registry.h.
  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterReply* reply) override;
  grpc::Status Bind(grpc::ServerContext* context, const v1::BindRequest* request,
                    v1::BindReply* reply) override;
  grpc::Status Unregister(grpc::ServerContext* context, const v1::UnregisterRequest* request,
                          v1::UnregisterReply* reply) override;
  grpc::Status List(grpc::ServerContext* context, const v1::ListRequest* request,
                    v1::ListReply* reply) override;
  // Holds one server thread per stream until the client cancels, the
  // registry closes its watchers (shutdown: ends with OK) or the watcher
  // falls behind (RESOURCE_EXHAUSTED: watch again).
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override;

  // Waits until no handler runs, or `deadline`; true when idle. For
  // shutdown: gRPC's own Shutdown(deadline) also waits for idle client
  // connections to close, which clients do not do on their own, so it
  // would always take the whole grace.
  bool WaitIdle(absl::Time deadline);

 private:
  // Counts a handler from entry to return.
  class InFlight {
   public:
    explicit InFlight(NameServerService* s);
    ~InFlight();

   private:
    NameServerService* s_;
  };

  // PrincipalOf with this service's mode and verifier.
  absl::StatusOr<std::string> Principal(const grpc::ServerContext& context) const;

  Registry* const registry_;
  const AuthMode mode_;
  const std::shared_ptr<ClientCertVerifier> verifier_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_SERVICE_H_

// The services this process publishes and the gRPC server (the Shipping
// service, rpcgen/shipping.proto) that runs function-shipped calls on them.
// Internal to rpcgen/.
#ifndef GASP_RPCGEN_HOST_H_
#define GASP_RPCGEN_HOST_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "rpcgen/preface_gate.h"
#include "gasp/service.h"

namespace grpc {
class Server;
}

namespace gasp {
namespace rpc {

class CallRequest;
class ShippingServiceImpl;

struct PublishedService {
  std::unique_ptr<ServiceBase> impl;
  uint64_t root = 0;
  Domain domain;
};

class Host {
 public:
  // The process's host; created on first use, stopped at gasp::Finalize.
  static Host& Get();

  // Starts the gRPC server on first call (all interfaces, ephemeral port)
  // and returns the endpoint other ranks reach it at ("host:port", the host
  // being this rank's transport address).
  absl::StatusOr<std::string> Endpoint();

  // Adds a published service (AlreadyExists for a second one of a name).
  absl::Status Add(PublishedService service);

  // The published service `name`, or nullptr. The pointer stays valid until
  // Stop.
  PublishedService* Find(const std::string& name);

  // Stops serving (waits for calls in flight, bounded) and drops the
  // services.
  void Stop();

 private:
  Host() = default;
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<PublishedService>> services_;
  std::unique_ptr<ShippingServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  // Without TLS: the listener that hands gRPC only HTTP/2 clients.
  std::unique_ptr<PrefaceGate> gate_;
  std::string endpoint_;
};

// One shipped call's bytes besides its service and method: the wire
// fields of CallRequest and CallReply (rpcgen/shipping.proto).
struct ShippedCallIn {
  const std::string& request;
  const std::string& pages;
  const std::string& notices;
  int caller_rank;
  bool same_job;  // the caller's job id is this one's (else no notices)
};
struct ShippedCallOut {
  std::string reply;
  std::string pages;
  std::string notices;
};

// Runs one function-shipped call on this process's services: what the
// Shipping service does per request (exposed for tests). Nothing runs and
// nothing is installed when the request, the bundle or the notices are
// malformed.
absl::Status RunShippedCall(const std::string& service, const std::string& method,
                            const ShippedCallIn& in, ShippedCallOut* out);

// Signs `request` for `callee` with this job's secret and this rank's next
// counter for that callee (call_credential.h): what every shipped call
// without mutual TLS carries. Exposed so that tests can hand-make calls as
// a rank of the job would.
void SignJobCall(int callee, CallRequest* request);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_HOST_H_

// Services over the global address space (docs/services.md): the run-time
// side of the code protoc-gen-gasp generates.
//
// A service is a .proto service whose methods carry an invocation kind
// (gasp/options.proto). Its implementation keeps its state in global memory
// under a root address, so that any rank can run it (data shipping) as
// well as its home rank (function shipping):
//
//   class DictionaryImpl : public demo::Dictionary::Service {
//    public:
//     explicit DictionaryImpl(uint64_t root);      // state at `root`
//     gasp::Status Lookup(const LookupRequest&, LookupReply*) override;
//   };
//   GASP_SERVICE_IMPL(demo::Dictionary, DictionaryImpl);  // for data shipping
//
// Server (the home rank):  gasp::rpc::Publish<DictionaryImpl>(root, options)
// Client (any rank):       demo::Dictionary::Stub::Bind().value().Lookup(req)
//
// Each call goes one of four ways (Path), chosen per method by the binding
// and, for AUTO methods, per call by a cost model (rpcgen/auto_policy.h):
// the semantics are call by reference either way.
#ifndef GASP_SERVICE_H_
#define GASP_SERVICE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gasp/gasp.h"
#include "gasp/status.h"
#include "google/protobuf/message.h"

namespace gasp {
namespace rpc {

// A method's invocation kind (the proto option gasp.invocation).
enum class Kind { kAuto = 0, kDataShipping = 1, kFunctionShipping = 2 };

// How one call is carried out.
enum class Path {
  kTrustedDirect,     // same process, trusted client: a direct call
  kUntrustedGated,    // same process, untrusted client: through a gate
  kDataShipping,      // another process: run the implementation here
  kFunctionShipping,  // another process: RPC to the home rank, pages bundled
};
const char* PathName(Path path);
const char* KindName(Kind kind);

class ServiceBase;

// One method of a generated service, type-erased. Generated code fills a
// static table of these.
struct MethodInfo {
  const char* name;  // "Lookup"
  Kind kind;
  const google::protobuf::Message* request_prototype;  // default instances
  const google::protobuf::Message* reply_prototype;
  // Calls the implementation's method; `request` and `reply` have the
  // method's types.
  Status (*invoke)(ServiceBase* impl, const google::protobuf::Message& request,
                   google::protobuf::Message* reply);
};

// A service's methods: a view of the static table generated code keeps.
class MethodTable {
 public:
  MethodTable() = default;
  template <size_t N>
  MethodTable(const MethodInfo (&methods)[N]) : data_(methods), size_(N) {}  // NOLINT: implicit
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // REQUIRES: i < size().
  const MethodInfo& operator[](size_t i) const { return data_[i]; }
  const MethodInfo* begin() const { return data_; }
  const MethodInfo* end() const { return data_ + size_; }

 private:
  const MethodInfo* data_ = nullptr;
  size_t size_ = 0;
};

// Base of every generated Service class.
class ServiceBase {
 public:
  virtual ~ServiceBase() = default;
  // Full proto name, "pkg.Dictionary".
  virtual const char* service_name() const = 0;
  // The methods, in declaration order.
  virtual MethodTable methods() const = 0;
};

// Builds an implementation whose state is rooted at `root` (data shipping
// builds one in the client's process; Publish one at the home).
using ImplFactory = std::unique_ptr<ServiceBase> (*)(uint64_t root);

// Registers the linked-in implementation of `service` (GASP_SERVICE_IMPL
// does this at static initialization). A second registration for the same
// service is ignored and logged.
void RegisterImpl(const char* service, ImplFactory factory);
// The linked-in implementation of `service`, or nullptr.
ImplFactory FindImpl(const std::string& service);

#define GASP_SERVICE_IMPL(ServiceClass, ImplClass)                                     \
  static const bool gasp_service_impl_##ImplClass = [] {                               \
    ::gasp::rpc::RegisterImpl(ServiceClass::kServiceName,                              \
                              [](uint64_t root) -> std::unique_ptr<::gasp::rpc::ServiceBase> { \
                                return std::make_unique<ImplClass>(root);              \
                              });                                                      \
    return true;                                                                       \
  }()

// The principal a rank presents to a name server running --insecure
// (development; gasprun's default): "uid:<uid>/rank<rank>", unless
// GASP_NS_PRINCIPAL is set. With mutual TLS the principal is the subject of
// the rank's certificate instead.
std::string DevPrincipal(int rank);

// How a service is published by its home rank.
struct PublishOptions {
  // The domain holding the service's state (Domain(): the default domain).
  // Data-shipping clients run the implementation inside it: trusted ones
  // directly, untrusted ones through a gate, so they must be granted it.
  Domain domain;
  // Principals (certificate subjects) that are trusted clients.
  std::vector<std::string> trusted_principals;
  // The code data-shipping clients run: empty registers this executable
  // (clients running the same binary use their linked-in copy); a path
  // registers that shared object (it must register the implementation with
  // GASP_SERVICE_IMPL), which clients load only if its SHA-256 matches.
  std::string code_path;
};

// Starts this rank's shipping server if needed, builds the implementation
// with `factory(root)`, and registers the service with the name server
// (GASP_NAMESERVER). The service is served until Finalize.
Status PublishService(ImplFactory factory, uint64_t root, const PublishOptions& options);

template <typename Impl>
Status Publish(uint64_t root, const PublishOptions& options = {}) {
  return PublishService(
      [](uint64_t r) -> std::unique_ptr<ServiceBase> { return std::make_unique<Impl>(r); }, root,
      options);
}

// Per-call statistics of a binding (benchmarks, tests).
struct CallStats {
  uint64_t calls[4] = {0, 0, 0, 0};  // by Path
  uint64_t pages_bundled = 0;        // sent and received
};

// A client's binding to a service: the name server's answer plus what this
// process adds (the local implementation for data shipping, the gate, the
// channel). Thread-safe. Generated stubs hold a shared_ptr to one.
class Binding {
 public:
  // Looks `service` up in the name server and binds as this process's
  // principal. NOT_FOUND for an unknown service; the name server's
  // UNAUTHENTICATED / PERMISSION_DENIED / UNAVAILABLE pass through.
  static Result<std::shared_ptr<Binding>> Bind(const std::string& service);

  virtual ~Binding() = default;

  // Calls method `index` (of the service's method table): picks the path,
  // checks every GlobalRef in `request` (INVALID_ARGUMENT outside the
  // range, PERMISSION_DENIED in a domain this thread may not read; nothing
  // is sent or changed then), ships, and fills `reply`.
  virtual Status Call(int index, const google::protobuf::Message& request,
                      google::protobuf::Message* reply) = 0;

  // The path the next call of method `index` with `request` would take.
  virtual Path Choose(int index, const google::protobuf::Message& request) = 0;

  // Forces a path for every method (benchmarks; a call fails with
  // FailedPrecondition if the path is impossible for this binding), until
  // ClearForcedPath.
  virtual void ForcePath(Path path) = 0;
  virtual void ClearForcedPath() = 0;

  virtual CallStats stats() const = 0;
  virtual const std::string& service() const = 0;
};

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_SERVICE_H_

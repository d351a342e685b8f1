// A service implementation in a shared object, for rpcgen/code_test.cc:
// loading it registers "gasp.testdata.FromSharedObject".
#include <memory>

#include "gasp/service.h"

namespace {

struct FromSharedObject {
  static constexpr char kServiceName[] = "gasp.testdata.FromSharedObject";
};

class Impl : public gasp::rpc::ServiceBase {
 public:
  explicit Impl(uint64_t root) : root_(root) {}
  const char* service_name() const override { return FromSharedObject::kServiceName; }
  gasp::rpc::MethodTable methods() const override { return {}; }

 private:
  uint64_t root_;
};

GASP_SERVICE_IMPL(FromSharedObject, Impl);

}  // namespace

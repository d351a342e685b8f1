// The table of linked-in service implementations (RegisterImpl / FindImpl)
// and the names of kinds and paths. PublishService and Binding live in
// other files of this library.
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "base/log.h"
#include "gasp/service.h"

namespace gasp {
namespace rpc {
namespace {

struct Registry {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, ImplFactory> factories ABSL_GUARDED_BY(mu);
};

// RegisterImpl runs during static initialization (GASP_SERVICE_IMPL), in
// whatever order the linker chose, so the table is built on first use.
// It is never destroyed: a factory may still be looked up while other
// static objects are being torn down.
Registry& TheRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

}  // namespace

const char* PathName(Path path) {
  switch (path) {
    case Path::kTrustedDirect:
      return "trusted-direct";
    case Path::kUntrustedGated:
      return "untrusted-gated";
    case Path::kDataShipping:
      return "data-shipping";
    case Path::kFunctionShipping:
      return "function-shipping";
  }
  return "unknown-path";
}

// The proto enum's spelling, so that logs match what the .proto says.
const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kAuto:
      return "AUTO";
    case Kind::kDataShipping:
      return "DATA_SHIPPING";
    case Kind::kFunctionShipping:
      return "FUNCTION_SHIPPING";
  }
  return "UNKNOWN_KIND";
}

void RegisterImpl(const char* service, ImplFactory factory) {
  Registry& registry = TheRegistry();
  bool inserted;
  {
    absl::MutexLock lock(&registry.mu);
    inserted = registry.factories.try_emplace(service, factory).second;
  }
  // Logged outside the lock: logging may block on its own lock and file.
  if (!inserted) {
    GASP_LOG(Warn) << "service " << service
                   << " has a second implementation linked in; keeping the first";
  }
}

ImplFactory FindImpl(const std::string& service) {
  Registry& registry = TheRegistry();
  absl::MutexLock lock(&registry.mu);
  auto it = registry.factories.find(service);
  return it == registry.factories.end() ? nullptr : it->second;
}

}  // namespace rpc
}  // namespace gasp

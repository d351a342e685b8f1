// The code a data-shipping client runs: it must be the code the service
// registered. Internal to rpcgen/.
#ifndef GASP_RPCGEN_CODE_H_
#define GASP_RPCGEN_CODE_H_

#include <string>

#include "absl/status/status.h"
#include "nameserver/nameserver.pb.h"

namespace gasp {
namespace rpc {

// OK when an implementation of reply.service() that is the registered code
// is available here: this executable when its SHA-256 is the registered
// one (an SPMD job runs one binary) and it links the implementation in; or
// else the shared object the registration names, which is loaded (dlopen)
// only after its SHA-256 matches and must register the implementation
// (GASP_SERVICE_IMPL). Otherwise an error, with the reason in `*why`:
// NotFound (no code registered, or none that implements the service),
// FailedPrecondition (a different executable, dlopen failed),
// PermissionDenied (the shared object's hash does not match: not loaded).
absl::Status LoadRegisteredCode(const nameserver::v1::BindReply& reply, std::string* why);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_CODE_H_

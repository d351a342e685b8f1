#include "rpcgen/code.h"

#include <dlfcn.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "rpcgen/ns.h"
#include "gasp/service.h"

namespace gasp {
namespace rpc {

absl::Status LoadRegisteredCode(const nameserver::v1::BindReply& r, std::string* why) {
  if (!r.has_code() || r.code().sha256().empty()) {
    *why = "no code registered for this machine type";
    return absl::NotFoundError(*why);
  }
  GASP_ASSIGN_OR_RETURN(std::string exe, OwnExecutable());
  GASP_ASSIGN_OR_RETURN(std::string mine, Sha256OfFile(exe));
  if (mine == r.code().sha256() && FindImpl(r.service()) != nullptr) return absl::OkStatus();
  if (r.code().path().empty() || r.code().path() == exe) {
    *why = "this executable is not the registered code (SHA-256 differs)";
    return absl::FailedPreconditionError(*why);
  }
  absl::StatusOr<std::string> theirs = Sha256OfFile(r.code().path());
  if (!theirs.ok() || *theirs != r.code().sha256()) {
    *why = absl::StrCat(r.code().path(), ": ",
                        theirs.ok() ? "SHA-256 does not match the registration"
                                    : std::string(theirs.status().message()),
                        "; not loaded");
    return absl::PermissionDeniedError(*why);
  }
  // RTLD_GLOBAL is not needed: the object registers itself through the
  // registry of this executable (exported with -rdynamic) at load time.
  if (dlopen(r.code().path().c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr) {
    *why = absl::StrCat("dlopen ", r.code().path(), ": ", dlerror());
    return absl::FailedPreconditionError(*why);
  }
  if (FindImpl(r.service()) == nullptr) {
    *why = absl::StrCat(r.code().path(), " does not register an implementation of ", r.service());
    return absl::NotFoundError(*why);
  }
  return absl::OkStatus();
}

}  // namespace rpc
}  // namespace gasp

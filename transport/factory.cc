#include "transport/factory.h"

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "transport/tcp_transport.h"

namespace gasp {
namespace transport {

std::vector<std::string> AvailableTransports() { return {"tcp"}; }

absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(const std::string& name,
                                                           const TransportOptions& options) {
  if (name == "auto") {
    GASP_LOG(Info) << "GASP_TRANSPORT=auto: using tcp (the only backend in this build; verbs "
                      "and shm are added by later releases)";
    return CreateTcpTransport(options);
  }
  if (name == "tcp") return CreateTcpTransport(options);
  if (name == "verbs" || name == "shm") {
    return absl::UnimplementedError(absl::StrFormat(
        "the %s backend is not in this build; set GASP_TRANSPORT=tcp (or auto)", name));
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown transport '%s' (GASP_TRANSPORT); this build has: auto, %s", name,
      absl::StrJoin(AvailableTransports(), ", ")));
}

}  // namespace transport
}  // namespace gasp

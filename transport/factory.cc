#include "transport/factory.h"

#include "transport/tcp_socket.h"
#include "transport/tcp_wire.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "transport/shm_transport.h"
#include "transport/tcp_transport.h"
#include "transport/verbs_transport.h"

namespace gasp {
namespace transport {

std::string DefaultHostAddress() {
  const std::string a = tcp::FormatAddress(tcp::DefaultAdvertiseAddress(), 0);
  return a.substr(0, a.rfind(':'));
}


std::vector<std::string> AvailableTransports() {
  std::vector<std::string> names = {"tcp", "shm"};
  if (VerbsDeviceAvailable(nullptr)) names.push_back("verbs");
  return names;
}

absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(const std::string& name,
                                                           const TransportOptions& options) {
  if (name == "auto") {
    std::string reason;
    if (VerbsDeviceAvailable(options.net_devices, &reason)) {
      GASP_LOG(Info) << "GASP_TRANSPORT=auto: using verbs (" << reason << ")";
      return CreateVerbsTransport(options, VerbsOptionsFrom(options));
    }
    GASP_LOG(Info) << "GASP_TRANSPORT=auto: using tcp (" << reason << ")";
    return CreateTcpTransport(options);
  }
  if (name == "tcp") return CreateTcpTransport(options);
  if (name == "verbs") {
    std::string reason;
    if (!VerbsDeviceAvailable(options.net_devices, &reason)) {
      GASP_LOG(Info) << "GASP_TRANSPORT=verbs: " << reason;
      return absl::UnavailableError(absl::StrCat(
          "GASP_TRANSPORT=verbs but ", reason,
          reason.find("GASP_TRANSPORT=tcp") == std::string::npos ? "; use GASP_TRANSPORT=tcp" : ""));
    }
    GASP_LOG(Info) << "GASP_TRANSPORT=verbs: " << reason;
    return CreateVerbsTransport(options, VerbsOptionsFrom(options));
  }
  if (name == "shm") return CreateShmTransport(options);
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown transport '%s' (GASP_TRANSPORT); this build has: auto, %s", name,
      absl::StrJoin(AvailableTransports(), ", ")));
}

}  // namespace transport
}  // namespace gasp

// This process's name-server client and what a registration says about the
// code of this process. Internal to rpcgen/.
#ifndef GASP_RPCGEN_NS_H_
#define GASP_RPCGEN_NS_H_

#include <string>

#include "absl/status/statusor.h"
#include "nameserver/client.h"
#include "rpcgen/shipping_tls.h"

namespace gasp {
namespace rpc {

// The client for GASP_NAMESERVER (created on first use). FailedPrecondition
// with a hint when no name server is configured.
absl::StatusOr<nameserver::NameServerClient*> NameServer();

// The mutual TLS of function shipping (shipping_tls.h), read from
// GASP_NS_CA, GASP_NS_CERT and GASP_NS_KEY on first use; nullptr when all
// three are empty (insecure development mode). InvalidArgument naming the
// setting when a file is unreadable or only some are set.
absl::StatusOr<const ShippingTls*> JobShippingTls();

// "x86_64-linux-gnu" and the like: the machine type this code was built for.
const char* MachineType();

// This executable (/proc/self/exe resolved) and its SHA-256 in lowercase hex.
absl::StatusOr<std::string> OwnExecutable();
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_NS_H_

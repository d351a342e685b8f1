// Reading the PEM files of mutual TLS (CA, certificate, key), shared by the
// name server, its client and the function-shipping channel.
#ifndef GASP_NAMESERVER_PEM_H_
#define GASP_NAMESERVER_PEM_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gasp {
namespace nameserver {

// The contents of `path`. InvalidArgument naming `what` (the flag or
// setting, e.g. "--ca" or "GASP_NS_CERT") and the path when the file cannot
// be read or holds no PEM block: caught here, the mistake is named; gRPC
// would only fail the handshake.
absl::StatusOr<std::string> ReadPemFile(absl::string_view what, const std::string& path);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_PEM_H_

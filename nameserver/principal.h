// Who is calling: the principal of a name server call.
//
// With TLS (the default) the principal is the subject of the client
// certificate that the TLS handshake verified against the name server's CA,
// as gRPC reports it in the auth context property "x509_subject" (RFC 2253
// form, most specific attribute first: "CN=alice,O=gasp"). Certificates
// are required and verified during the handshake, so a call without a
// valid one never reaches a handler.
//
// Insecure mode (gasp_nameserver --insecure, loopback only, for
// development): the principal is the value of the call metadata
// "gasp-principal". Anyone who can reach the port may claim any principal;
// that is why insecure mode refuses non-loopback addresses. With TLS the
// metadata is ignored.
#ifndef GASP_NAMESERVER_PRINCIPAL_H_
#define GASP_NAMESERVER_PRINCIPAL_H_

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/statusor.h"

namespace gasp {
namespace nameserver {

// Metadata key that carries the principal in insecure mode.
inline constexpr char kPrincipalMetadataKey[] = "gasp-principal";

enum class AuthMode {
  kTls,       // principal = verified client certificate subject
  kInsecure,  // principal = "gasp-principal" metadata (development only)
};

// The principal of the call in `context`. Unauthenticated when there is
// none: no verified certificate subject (kTls), or no or an empty
// "gasp-principal" metadata value (kInsecure).
absl::StatusOr<std::string> PrincipalOf(const grpc::ServerContext& context, AuthMode mode);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_PRINCIPAL_H_

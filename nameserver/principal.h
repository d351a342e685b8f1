// Who is calling: the principal of a name server call.
//
// With TLS (the default) the principal is the subject of the client
// certificate, as gRPC reports it in the auth context property
// "x509_subject" (RFC 2253 form, most specific attribute first:
// "CN=alice,O=gasp"), once ClientCertVerifier (client_cert.h) has accepted
// the certificate: signed by the name server's CA, valid now. The TLS
// handshake only asks for a certificate; a call without one, or with one
// the check refuses, is UNAUTHENTICATED with the reason and never gets a
// principal.
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
#include "nameserver/client_cert.h"

namespace gasp {
namespace nameserver {

// Metadata key that carries the principal in insecure mode.
inline constexpr char kPrincipalMetadataKey[] = "gasp-principal";

enum class AuthMode {
  kTls,       // principal = subject of the client certificate, once verified
  kInsecure,  // principal = "gasp-principal" metadata (development only)
};

// The principal of the call in `context`. Unauthenticated when there is
// none: kTls, no client certificate, or one that `verifier` refuses (the
// message says why), or one without a subject; kInsecure, no or an empty
// "gasp-principal" metadata value. `verifier` is needed with kTls only
// (without one, every kTls call is refused).
absl::StatusOr<std::string> PrincipalOf(const grpc::ServerContext& context, AuthMode mode,
                                        ClientCertVerifier* verifier);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_PRINCIPAL_H_

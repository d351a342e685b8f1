#include "nameserver/principal.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace gasp {
namespace nameserver {

absl::StatusOr<std::string> PrincipalOf(const grpc::ServerContext& context, AuthMode mode,
                                        ClientCertVerifier* verifier) {
  if (mode == AuthMode::kInsecure) {
    const auto& md = context.client_metadata();
    auto it = md.find(kPrincipalMetadataKey);
    if (it == md.end() || it->second.empty()) {
      return absl::UnauthenticatedError(absl::StrCat(
          "this name server runs --insecure (development only): send the principal in the '",
          kPrincipalMetadataKey, "' call metadata"));
    }
    return std::string(it->second.data(), it->second.size());
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || verifier == nullptr) {
    return absl::UnauthenticatedError("the call carries no verified client certificate");
  }
  // The server's AuthMetadataProcessor ran the same check before the call
  // reached a handler (server.cc); here it is a cache hit, and it keeps the
  // service safe on its own. No IsPeerAuthenticated(): gRPC sets the peer
  // identity from the SAN or CN only, and a valid certificate may have
  // neither.
  absl::Status checked = verifier->Check(*auth);
  if (!checked.ok()) return checked;
  std::vector<grpc::string_ref> subject = auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
  if (subject.empty() || subject[0].empty()) {
    return absl::UnauthenticatedError("the client certificate has no subject");
  }
  return std::string(subject[0].data(), subject[0].size());
}

}  // namespace nameserver
}  // namespace gasp

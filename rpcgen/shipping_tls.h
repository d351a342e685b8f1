// Mutual TLS for function shipping: the Shipping gRPC service a rank serves
// (host.cc) and the channels other ranks open to it (binding.cc).
//
// A job whose ranks talk to the name server with mutual TLS (GASP_NS_CA,
// GASP_NS_CERT, GASP_NS_KEY) uses the same certificate for shipped calls:
//
//   callee  presents its certificate, and checks every caller's as the name
//           server does (nameserver/client_cert.h: signed by the CA, valid
//           now, good for TLS clients). A caller without one, or with one
//           the check refuses, gets UNAUTHENTICATED with the reason, and no
//           handler runs. The call's principal must be the caller's
//           certificate subject.
//   caller  accepts the callee only if its certificate is signed by the CA
//           and its subject is the service's owner as the name server
//           reported it (BindReply.owner). Host names are not checked: ranks
//           are reached by address, and the owner check is stronger.
//
// A rank's certificate therefore needs both extended key usages, serverAuth
// and clientAuth (docs/services.md shows the openssl command). Without the
// three settings (an insecure loopback name server, for development) shipped
// calls carry no credentials, as on the tcp transport.
#ifndef GASP_RPCGEN_SHIPPING_TLS_H_
#define GASP_RPCGEN_SHIPPING_TLS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nameserver/client_cert.h"

namespace gasp {
namespace rpc {

class ShippingTls {
 public:
  // Reads the three PEM files. InvalidArgument naming the setting (e.g.
  // "GASP_NS_CERT /path: not a PEM file") when one is unreadable or not PEM,
  // or when the certificate has no subject.
  static absl::StatusOr<std::unique_ptr<ShippingTls>> FromFiles(const std::string& ca_file,
                                                                const std::string& cert_file,
                                                                const std::string& key_file);

  // Credentials for the rank's Shipping server: its certificate, and the
  // per-call check of the caller's (UNAUTHENTICATED with the reason).
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;

  // Credentials for a channel to a service whose owner is `owner`: this
  // rank's certificate, and the callee's checked against the CA and
  // `owner` (a mismatch fails the handshake: the call is UNAVAILABLE and
  // the log says which subject was presented).
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const std::string& owner) const;

  // The name a channel to `owner`'s service announces (TLS SNI): the CN of
  // `owner` ("ranks" for "CN=ranks,O=gasp"), so that the callee's TLS
  // stack finds its certificate by name instead of logging a miss for the
  // IP address; empty when `owner` has no CN. Only announced: the check is
  // the subject's (ChannelCredentials).
  static std::string ServerNameFor(absl::string_view owner);

  // The caller of a Shipping call: the subject of its verified certificate;
  // Unauthenticated (with the reason) when it has none that passes.
  absl::StatusOr<std::string> CallerOf(const grpc::ServerContext& context) const;

  // This rank's certificate subject (its principal).
  const std::string& subject() const { return subject_; }

 private:
  ShippingTls() = default;
  std::string ca_, cert_, key_, subject_;
  std::shared_ptr<nameserver::ClientCertVerifier> verifier_;
};

// The subject of the first certificate in `pem`, in the form gRPC reports
// as the auth property "x509_subject" (RFC 2253, most specific attribute
// first: "CN=alice,O=gasp"). InvalidArgument when `pem` holds none.
absl::StatusOr<std::string> CertificateSubject(absl::string_view pem);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_SHIPPING_TLS_H_

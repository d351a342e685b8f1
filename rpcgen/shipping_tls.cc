#include "rpcgen/shipping_tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "nameserver/pem.h"
#include "nameserver/principal.h"

namespace gasp {
namespace rpc {
namespace {

// The caller's side of the callee check: the handshake has verified the
// chain against the CA (verify_server_certs); this adds that the
// certificate's subject is the service's owner.
class OwnerVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit OwnerVerifier(std::string owner) : owner_(std::move(owner)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/,
              grpc::Status* sync_status) override {
    const grpc::string_ref pem = request->peer_cert();
    absl::StatusOr<std::string> subject =
        CertificateSubject(absl::string_view(pem.data(), pem.size()));
    if (!subject.ok()) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  absl::StrCat("the callee's certificate: ", subject.status().message()));
    } else if (*subject != owner_) {
      const std::string why =
          absl::StrCat("the callee presented a certificate of '", *subject,
                       "', but the service is registered by '", owner_, "'");
      GASP_LOG(Warn) << "function shipping: " << why;
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, why);
    } else {
      *sync_status = grpc::Status::OK;
    }
    return true;  // decided synchronously
  }

  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string owner_;
};

}  // namespace

absl::StatusOr<std::string> CertificateSubject(absl::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf failed");
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::InvalidArgumentError("no PEM certificate");
  // The flags gRPC uses for GRPC_X509_SUBJECT_PROPERTY_NAME, so that this
  // and the name server's principal of the same certificate compare equal.
  BIO* out = BIO_new(BIO_s_mem());
  std::string subject;
  if (out != nullptr &&
      X509_NAME_print_ex(out, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(out, &data);
    if (n > 0) subject.assign(data, static_cast<size_t>(n));
  }
  BIO_free(out);
  X509_free(cert);
  if (subject.empty()) return absl::InvalidArgumentError("the certificate has no subject");
  return subject;
}

absl::StatusOr<std::unique_ptr<ShippingTls>> ShippingTls::FromFiles(const std::string& ca_file,
                                                                    const std::string& cert_file,
                                                                    const std::string& key_file) {
  std::unique_ptr<ShippingTls> t(new ShippingTls());
  GASP_ASSIGN_OR_RETURN(t->ca_, nameserver::ReadPemFile("GASP_NS_CA", ca_file));
  GASP_ASSIGN_OR_RETURN(t->cert_, nameserver::ReadPemFile("GASP_NS_CERT", cert_file));
  GASP_ASSIGN_OR_RETURN(t->key_, nameserver::ReadPemFile("GASP_NS_KEY", key_file));
  absl::StatusOr<std::string> subject = CertificateSubject(t->cert_);
  if (!subject.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GASP_NS_CERT ", cert_file, ": ", subject.status().message()));
  }
  t->subject_ = *std::move(subject);
  GASP_ASSIGN_OR_RETURN(t->verifier_, nameserver::ClientCertVerifier::Create(
                                          t->ca_, absl::StrCat("GASP_NS_CA ", ca_file)));
  return t;
}

std::shared_ptr<grpc::ServerCredentials> ShippingTls::ServerCredentials() const {
  // As the name server (nameserver/server.cc): the handshake asks for a
  // client certificate without refusing any, and the processor checks it
  // on every call, so a refused caller hears why (UNAUTHENTICATED) instead
  // of a closed socket.
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  ssl.pem_root_certs = ca_;
  ssl.pem_key_cert_pairs.push_back({key_, cert_});
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::SslServerCredentials(ssl);
  creds->SetAuthMetadataProcessor(nameserver::NewClientCertProcessor(verifier_));
  return creds;
}

std::shared_ptr<grpc::ChannelCredentials> ShippingTls::ChannelCredentials(
    const std::string& owner) const {
  auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
      ca_, std::vector<grpc::experimental::IdentityKeyCertPair>{{key_, cert_}});
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_certificate_provider(std::move(provider));
  o.watch_root_certs();
  o.watch_identity_key_cert_pairs();
  o.set_verify_server_certs(true);  // the chain, against the CA
  o.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<OwnerVerifier>(owner));
  o.set_check_call_host(false);  // ranks are reached by address, not name
  return grpc::experimental::TlsCredentials(o);
}

std::string ShippingTls::ServerNameFor(absl::string_view owner) {
  // RFC 2253 as gRPC prints it: "CN=ranks,O=gasp", with ',' inside a value
  // escaped as "\,". The CN is the first attribute of that form.
  for (size_t start = 0; start < owner.size();) {
    size_t end = start;
    while (end < owner.size() && !(owner[end] == ',' && (end == 0 || owner[end - 1] != '\\'))) {
      ++end;
    }
    const absl::string_view rdn = owner.substr(start, end - start);
    if (rdn.size() > 3 && rdn.substr(0, 3) == "CN=") return std::string(rdn.substr(3));
    start = end + 1;
  }
  return "";
}

absl::StatusOr<std::string> ShippingTls::CallerOf(const grpc::ServerContext& context) const {
  return nameserver::PrincipalOf(context, nameserver::AuthMode::kTls, verifier_.get());
}

}  // namespace rpc
}  // namespace gasp

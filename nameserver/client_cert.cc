#include "nameserver/client_cert.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <ctime>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "nameserver/grpc_status.h"

namespace gasp {
namespace nameserver {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509Stack = std::unique_ptr<STACK_OF(X509), X509StackFree>;

struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// Every PEM certificate in `pem`, in order; stops at the first that does
// not parse.
std::vector<X509Ptr> ReadCerts(absl::string_view pem) {
  std::vector<X509Ptr> out;
  if (pem.empty()) return out;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return out;
  for (;;) {
    X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (x == nullptr) break;
    out.push_back(std::move(x));
  }
  ERR_clear_error();  // the end of the text reads as an error
  return out;
}

// RFC 2253, as gRPC reports x509_subject ("CN=alice,O=gasp").
std::string NameText(const X509_NAME* name) {
  if (name == nullptr) return "?";
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "?";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

bool ToTime(const ASN1_TIME* t, absl::Time* out) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return false;
  *out = absl::FromTM(tm, absl::UTCTimeZone());
  return true;
}

std::string TimeText(const ASN1_TIME* t) {
  absl::Time when;
  if (!ToTime(t, &when)) return "?";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", when, absl::UTCTimeZone());
}

// The chain errors that mean "this CA did not sign it".
bool IsIssuerError(int err) {
  switch (err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
      return true;
    default:
      return false;
  }
}

// The security level a TLS server context of this process gets (Debian's
// openssl.cnf sets 2): the handshake checked client chains at this level.
int SystemSecurityLevel() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    ERR_clear_error();
    return 1;
  }
  const int level = SSL_CTX_get_security_level(ctx);
  SSL_CTX_free(ctx);
  return level;
}

std::string CacheKey(absl::string_view cert_pem, absl::string_view chain_pem) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(md, cert_pem.data(), cert_pem.size()) == 1 &&
            EVP_DigestUpdate(md, "\0", 1) == 1 &&
            EVP_DigestUpdate(md, chain_pem.data(), chain_pem.size()) == 1 &&
            EVP_DigestFinal_ex(md, digest, &len) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) {
    // Not expected; the PEM text itself is a correct, if longer, key.
    ERR_clear_error();
    return absl::StrCat(cert_pem, absl::string_view("\0", 1), chain_pem);
  }
  return std::string(reinterpret_cast<const char*>(digest), len);
}

class ClientCertProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit ClientCertProcessor(std::shared_ptr<ClientCertVerifier> verifier)
      : verifier_(std::move(verifier)) {}

  // Only CPU work on cached results: no need for gRPC's thread pool.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& /*auth_metadata*/, grpc::AuthContext* context,
                       OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) override {
    if (context == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "client certificate required (set GASP_NS_CERT / GASP_NS_KEY)");
    }
    return ToGrpcStatus(verifier_->Check(*context));
  }

 private:
  const std::shared_ptr<ClientCertVerifier> verifier_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClientCertVerifier>> ClientCertVerifier::Create(
    const std::string& ca_pem, absl::string_view what) {
  std::vector<X509Ptr> cas = ReadCerts(ca_pem);
  if (cas.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no PEM certificate in it"));
  }
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr) return absl::ResourceExhaustedError("X509_STORE_new failed");
  for (const X509Ptr& ca : cas) {
    if (X509_STORE_add_cert(store, ca.get()) != 1) {
      // The same certificate twice is harmless; anything else is not.
      ERR_clear_error();
    }
  }
  return std::unique_ptr<ClientCertVerifier>(new ClientCertVerifier(store, SystemSecurityLevel()));
}

ClientCertVerifier::ClientCertVerifier(x509_store_st* store, int security_level)
    : store_(store), security_level_(security_level) {}

ClientCertVerifier::~ClientCertVerifier() { X509_STORE_free(store_); }

absl::Status ClientCertVerifier::Check(const grpc::AuthContext& auth) {
  std::vector<grpc::string_ref> cert = auth.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  std::vector<grpc::string_ref> chain =
      auth.FindPropertyValues(GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME);
  absl::string_view cert_pem, chain_pem;
  if (!cert.empty()) cert_pem = absl::string_view(cert[0].data(), cert[0].size());
  if (!chain.empty()) chain_pem = absl::string_view(chain[0].data(), chain[0].size());
  return CheckPem(cert_pem, chain_pem);
}

absl::Status ClientCertVerifier::CheckPem(absl::string_view cert_pem, absl::string_view chain_pem) {
  const std::string key = CacheKey(cert_pem, chain_pem);
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && now < it->second.until) return it->second.status;
  }
  absl::Time until = now + kCacheOkFor;
  absl::Status st = Verify(cert_pem, chain_pem, now, &until);
  if (!st.ok()) {
    until = now + kCacheRefusalFor;
    // Once per certificate and cache period: the caller sees the same text.
    GASP_LOG(Warn) << "gasp_nameserver: refused a call: " << st.message();
  }
  absl::MutexLock lock(&mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    it->second = Cached{st, until};
    return st;
  }
  while (cache_.size() >= kCacheCapacity && !order_.empty()) {
    cache_.erase(order_.front());
    order_.pop_front();
  }
  cache_.emplace(key, Cached{st, until});
  order_.push_back(key);
  return st;
}

size_t ClientCertVerifier::cache_size() const {
  absl::MutexLock lock(&mu_);
  return cache_.size();
}

absl::Status ClientCertVerifier::Verify(absl::string_view cert_pem, absl::string_view chain_pem,
                                        absl::Time now, absl::Time* until) const {
  if (cert_pem.empty()) {
    return absl::UnauthenticatedError(
        "client certificate required (set GASP_NS_CERT / GASP_NS_KEY): this name server uses "
        "mutual TLS and the client presented no certificate");
  }
  std::vector<X509Ptr> leaf = ReadCerts(cert_pem);
  if (leaf.empty()) {
    return absl::UnauthenticatedError(
        "client certificate unreadable (no PEM certificate in what the handshake received)");
  }
  X509Stack untrusted(sk_X509_new_null());
  if (untrusted == nullptr) return absl::ResourceExhaustedError("sk_X509_new_null failed");
  for (X509Ptr& c : ReadCerts(chain_pem)) {
    if (sk_X509_push(untrusted.get(), c.get()) > 0) c.release();
  }
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (ctx == nullptr ||
      X509_STORE_CTX_init(ctx.get(), store_, leaf[0].get(), untrusted.get()) != 1 ||
      X509_STORE_CTX_set_default(ctx.get(), "ssl_client") != 1) {
    ERR_clear_error();
    return absl::InternalError("cannot set up the client certificate check (OpenSSL)");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(now));
  X509_VERIFY_PARAM_set_auth_level(param, security_level_);
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);

  const int verified = X509_verify_cert(ctx.get());
  if (verified == 1) {
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
    for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
      absl::Time not_after;
      if (ToTime(X509_get0_notAfter(sk_X509_value(chain, i)), &not_after) && not_after < *until) {
        *until = not_after;
      }
    }
    return absl::OkStatus();
  }
  ERR_clear_error();
  const int err = X509_STORE_CTX_get_error(ctx.get());
  const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
  if (at == nullptr) at = leaf[0].get();
  const std::string reason = X509_verify_cert_error_string(err);
  const std::string subject = NameText(X509_get_subject_name(at));
  const std::string which =
      depth == 0 ? "client certificate"
                 : absl::StrCat("CA certificate '", subject, "' of the client certificate's chain");
  if (err == X509_V_ERR_CERT_HAS_EXPIRED) {
    return absl::UnauthenticatedError(
        absl::StrCat(which, " expired on ", TimeText(X509_get0_notAfter(at)),
                     depth == 0 ? absl::StrCat(" (subject ", subject, ")") : ""));
  }
  if (err == X509_V_ERR_CERT_NOT_YET_VALID) {
    return absl::UnauthenticatedError(
        absl::StrCat(which, " not yet valid: valid from ", TimeText(X509_get0_notBefore(at)),
                     depth == 0 ? absl::StrCat(" (subject ", subject, ")") : ""));
  }
  if (IsIssuerError(err)) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate not signed by the name server's CA: ", reason,
                     " (subject ", NameText(X509_get_subject_name(leaf[0].get())), ", issuer ",
                     NameText(X509_get_issuer_name(leaf[0].get())), ")"));
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "client certificate refused: ", reason, " (", depth == 0 ? "subject " : "at depth ",
      depth == 0 ? subject : absl::StrCat(depth, ": ", subject), ")"));
}

std::shared_ptr<grpc::AuthMetadataProcessor> NewClientCertProcessor(
    std::shared_ptr<ClientCertVerifier> verifier) {
  return std::make_shared<ClientCertProcessor>(std::move(verifier));
}

}  // namespace nameserver
}  // namespace gasp

// The check of a name server caller's client certificate (mutual TLS).
//
// The TLS handshake asks the client for a certificate but does not verify
// it (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY, server.cc): a
// handshake the server refuses reaches the client only as a closed socket,
// which gRPC reports as UNAVAILABLE, the same as a dead server. The check
// runs on every call instead, on the certificate that the handshake
// received (auth context properties x509_pem_cert and x509_pem_cert_chain),
// so a refused caller gets UNAUTHENTICATED with the reason:
//
//   client certificate required (set GASP_NS_CERT / GASP_NS_KEY): ...
//   client certificate not signed by the name server's CA: <OpenSSL's reason> ...
//   client certificate expired on 2020-01-02 00:00:00 UTC ...
//   client certificate not yet valid: valid from 2099-01-01 00:00:00 UTC ...
//
// The check is the one OpenSSL did in the handshake before: a chain from
// the certificate to one of the CA certificates of --ca (the client may
// send intermediates; a CA certificate of --ca is trusted even when it is
// an intermediate itself, as gRPC's own verification accepts partial
// chains), every certificate valid now, the purpose "TLS client", and the
// system's OpenSSL security level for keys and signatures. No revocation
// lists. The TLS handshake itself still proves that the client holds the
// certificate's private key.
//
// Results are cached per certificate (with its chain), bounded in count
// and in time, so a connection's calls cost one hash lookup after the first.
#ifndef GASP_NAMESERVER_CLIENT_CERT_H_
#define GASP_NAMESERVER_CLIENT_CERT_H_

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// OpenSSL's X509_STORE, without its headers.
struct x509_store_st;

namespace gasp {
namespace nameserver {

class ClientCertVerifier {
 public:
  // How many results the cache keeps, and how long: a success at most
  // until the earliest expiry in the verified chain.
  static constexpr size_t kCacheCapacity = 1024;
  static constexpr absl::Duration kCacheOkFor = absl::Minutes(10);
  static constexpr absl::Duration kCacheRefusalFor = absl::Minutes(1);

  // Trusts the CA certificates in `ca_pem` (one or more PEM certificates).
  // InvalidArgument naming `what` (e.g. "--ca ca.crt") when none parses.
  static absl::StatusOr<std::unique_ptr<ClientCertVerifier>> Create(const std::string& ca_pem,
                                                                    absl::string_view what);
  ~ClientCertVerifier();
  ClientCertVerifier(const ClientCertVerifier&) = delete;
  ClientCertVerifier& operator=(const ClientCertVerifier&) = delete;

  // OK when the peer of a call (its auth context) presented a certificate
  // that passes the check; Unauthenticated with the reason otherwise.
  // Thread-safe.
  absl::Status Check(const grpc::AuthContext& auth);

  // The same for PEM text: `cert_pem` the client's certificate (empty: none
  // was presented), `chain_pem` further certificates it sent (may be empty).
  absl::Status CheckPem(absl::string_view cert_pem, absl::string_view chain_pem);

  // Results cached now (for tests).
  size_t cache_size() const;

 private:
  struct Cached {
    absl::Status status;
    absl::Time until;
  };

  ClientCertVerifier(x509_store_st* store, int security_level);

  // Verifies at `now`; on success `*until` becomes the earliest notAfter of
  // the verified chain.
  absl::Status Verify(absl::string_view cert_pem, absl::string_view chain_pem, absl::Time now,
                      absl::Time* until) const;

  x509_store_st* const store_;
  const int security_level_;

  mutable absl::Mutex mu_;
  // Keyed by the SHA-256 of the certificate and chain PEM text; `order_`
  // holds the same keys, oldest first, for eviction when full.
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
};

// An AuthMetadataProcessor (ServerCredentials::SetAuthMetadataProcessor)
// that runs `verifier` on every call the server receives, for every service
// (the name server's, health, reflection), before any handler: a refused
// call ends with UNAUTHENTICATED and the reason. Runs inline (not blocking).
std::shared_ptr<grpc::AuthMetadataProcessor> NewClientCertProcessor(
    std::shared_ptr<ClientCertVerifier> verifier);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_CLIENT_CERT_H_

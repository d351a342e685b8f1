#include "rpcgen/ns.h"

#include "gasp/service.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "runtime/runtime_internal.h"

namespace gasp {
namespace rpc {

absl::StatusOr<nameserver::NameServerClient*> NameServer() {
  static std::mutex mu;
  static nameserver::NameServerClient* client = nullptr;  // lives until exit
  std::lock_guard<std::mutex> lock(mu);
  if (client != nullptr) return client;
  const Config& c = internal::GetConfig();
  if (c.nameserver.empty()) {
    return absl::FailedPreconditionError(
        "no name server: set GASP_NAMESERVER=host:port (gasprun starts one and sets it; "
        "or run gasp_nameserver yourself)");
  }
  GASP_ASSIGN_OR_RETURN(nameserver::ClientOptions o, nameserver::ClientOptionsFromConfig(c));
  if (o.insecure && o.principal.empty()) {
    o.principal = c.ns_principal.empty() ? DevPrincipal(Rank()) : c.ns_principal;
  }
  GASP_ASSIGN_OR_RETURN(std::unique_ptr<nameserver::NameServerClient> made,
                        nameserver::NameServerClient::Create(o));
  client = made.release();
  return client;
}

absl::StatusOr<const ShippingTls*> JobShippingTls() {
  static std::mutex mu;
  static ShippingTls* tls = nullptr;  // lives until exit
  std::lock_guard<std::mutex> lock(mu);
  if (tls != nullptr) return tls;
  const Config& c = internal::GetConfig();
  const int given = !c.ns_ca.empty() + !c.ns_cert.empty() + !c.ns_key.empty();
  if (given == 0) return nullptr;
  if (given != 3) {
    return absl::InvalidArgumentError(
        "GASP_NS_CA, GASP_NS_CERT and GASP_NS_KEY must be set together (mutual TLS for the "
        "name server and function shipping) or all be empty (insecure development mode)");
  }
  GASP_ASSIGN_OR_RETURN(std::unique_ptr<ShippingTls> made,
                        ShippingTls::FromFiles(c.ns_ca, c.ns_cert, c.ns_key));
  tls = made.release();
  return tls;
}

std::string DevPrincipal(int rank) { return absl::StrCat("uid:", getuid(), "/rank", rank); }

const char* MachineType() {
#if defined(__x86_64__)
  return "x86_64-linux-gnu";
#elif defined(__aarch64__)
  return "aarch64-linux-gnu";
#else
  return "unknown-linux-gnu";
#endif
}

absl::StatusOr<std::string> OwnExecutable() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ErrnoError("readlink(/proc/self/exe)", errno);
  return std::string(buf, static_cast<size_t>(n));
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) return ErrnoError(absl::StrCat("open ", path), errno);
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("SHA-256: cannot initialize OpenSSL's digest");
  }
  char block[1 << 16];
  size_t got;
  while ((got = std::fread(block, 1, sizeof(block), f.get())) > 0) {
    EVP_DigestUpdate(ctx.get(), block, got);
  }
  if (std::ferror(f.get())) return ErrnoError(absl::StrCat("read ", path), errno);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

}  // namespace rpc
}  // namespace gasp

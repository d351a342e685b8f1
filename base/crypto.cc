#include "base/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace gasp {

namespace {

// Fetching the algorithm walks OpenSSL's provider tables: done once.
EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) {
      std::fprintf(stderr, "gasp: fatal: OpenSSL has no HMAC (libcrypto misinstalled?)\n");
      std::abort();
    }
    return m;
  }();
  return mac;
}

[[noreturn]] void CryptoFailure(const char* what) {
  std::fprintf(stderr, "gasp: fatal: OpenSSL %s failed\n", what);
  std::abort();
}

}  // namespace

Mac HmacSha256(absl::Span<const uint8_t> key, std::initializer_list<absl::string_view> parts) {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(HmacAlgorithm());
  if (ctx == nullptr) CryptoFailure("EVP_MAC_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx, key.data(), key.size(), params) != 1) CryptoFailure("EVP_MAC_init");
  for (absl::string_view p : parts) {
    if (EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(p.data()), p.size()) != 1) {
      CryptoFailure("EVP_MAC_update");
    }
  }
  Mac out;
  size_t len = 0;
  if (EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1 || len != out.size()) {
    CryptoFailure("EVP_MAC_final");
  }
  EVP_MAC_CTX_free(ctx);
  return out;
}

bool MacEqual(const uint8_t* a, const uint8_t* b) {
  uint8_t diff = 0;
  for (size_t i = 0; i < kMacBytes; ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

absl::Status RandomBytes(void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

uint64_t RandomU64() {
  uint64_t v = 0;
  absl::Status s = RandomBytes(&v, sizeof(v));
  if (!s.ok()) {
    std::fprintf(stderr, "gasp: fatal: no randomness from the kernel: %s\n",
                 std::string(s.message()).c_str());
    std::abort();
  }
  return v;
}

std::string Le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string HexOf(absl::Span<const uint8_t> bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

}  // namespace gasp

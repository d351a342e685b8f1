// The few cryptographic primitives gasp needs, from the system's OpenSSL
// (libcrypto): HMAC-SHA256 for the job secret's handshakes and call
// credentials, a constant-time comparison, and random bytes from the
// kernel. Nothing here encrypts: gasp authenticates peers, it does not hide
// traffic (docs/protection.md, "Threat model").
#ifndef GASP_BASE_CRYPTO_H_
#define GASP_BASE_CRYPTO_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace gasp {

inline constexpr size_t kMacBytes = 32;
using Mac = std::array<uint8_t, kMacBytes>;

// HMAC-SHA256 with `key` over the concatenation of `parts`. Callers put
// fixed-size fields or length-prefixed strings into `parts` so that two
// different messages never concatenate to the same bytes.
Mac HmacSha256(absl::Span<const uint8_t> key, std::initializer_list<absl::string_view> parts);

// True when the kMacBytes at `a` and `b` are equal; the time taken does not
// depend on where they differ (no byte-by-byte oracle for a forger).
bool MacEqual(const uint8_t* a, const uint8_t* b);

// Fills `out` with `n` bytes from the kernel's CSPRNG (getrandom(2)).
// Errors: Internal with errno's text (only on kernels without getrandom).
absl::Status RandomBytes(void* out, size_t n);

// A random 64-bit value from RandomBytes; aborts the process when the
// kernel has no randomness to give (never seen on Linux >= 3.17).
uint64_t RandomU64();

// `v` as 8 little-endian bytes, for building MAC inputs.
std::string Le64(uint64_t v);

// "a1b2..." (lowercase hex), for tests and fingerprints; never for secrets
// in logs.
std::string HexOf(absl::Span<const uint8_t> bytes);

}  // namespace gasp

#endif  // GASP_BASE_CRYPTO_H_

// Encoding of the remote keys a rank hands to a rank it grants a
// protection domain (runtime/key_grant.proto).
//
// Decoding is strict: the magic and version must be this build's, access
// read or read-write, at most kMaxKeyGrantEntries entries, offsets page
// aligned; anything else is rejected with DataLoss and nothing is
// installed.
#ifndef GASP_RUNTIME_KEY_GRANT_H_
#define GASP_RUNTIME_KEY_GRANT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/key_grant.pb.h"

namespace gasp {
namespace rt {

inline constexpr uint32_t kKeyGrantMagic = 0x59454b47;  // "GKEY"
inline constexpr uint32_t kKeyGrantVersion = 2;         // 2: protobuf
inline constexpr int kMaxKeyGrantEntries = 1 << 16;
// Largest encoded grant: each entry takes at most 2 + 2 * 11 bytes (tag,
// length, two varint fields), the header fields under 64.
inline constexpr size_t kMaxKeyGrantBytes = 64 + size_t{kMaxKeyGrantEntries} * 24;

// A grant of `access` (1 read, 3 read-write) to `domain`, magic and
// version set, no entries yet.
KeyGrant MakeKeyGrant(uint64_t epoch, uint32_t domain, uint32_t access);

// Serializes `grant` for Transport::Send.
std::vector<uint8_t> EncodeKeyGrant(const KeyGrant& grant);

// Parses bytes from the network; DataLoss with the reason on any defect.
absl::StatusOr<KeyGrant> DecodeKeyGrant(absl::Span<const uint8_t> bytes);

}  // namespace rt
}  // namespace gasp

#endif  // GASP_RUNTIME_KEY_GRANT_H_

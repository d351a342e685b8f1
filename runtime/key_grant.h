// Wire format of the remote keys a rank hands to a rank it grants a
// protection domain (remote protection, docs/protection.md). Only the
// granted rank ever receives these bytes; everything else about a domain
// (its id, its segments) is collective knowledge.
//
//   u32 magic "GKEY"  u16 version (1)  u16 reserved (0)
//   u64 epoch         the sender's key-exchange counter (collective order)
//   u32 domain        collective domain id
//   u8  access        1 = read, 3 = read-write
//   u8  reserved[3]   (0)
//   u32 count         number of entries, <= kMaxKeyGrantEntries
//   count x { u64 segment_offset, u64 key }   (little endian throughout)
//
// Decoding is strict: the size must match count exactly, reserved bytes
// must be zero, and offsets must be page aligned; anything else is
// rejected with DataLoss and nothing is installed.
#ifndef GASP_RUNTIME_KEY_GRANT_H_
#define GASP_RUNTIME_KEY_GRANT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace gasp {
namespace rt {

inline constexpr uint32_t kKeyGrantMagic = 0x59454b47;  // "GKEY"
inline constexpr uint16_t kKeyGrantVersion = 1;
inline constexpr uint32_t kMaxKeyGrantEntries = 1u << 16;
inline constexpr size_t kKeyGrantHeaderBytes = 28;

struct KeyGrantEntry {
  uint64_t segment_offset = 0;  // from the range base, page aligned
  uint64_t key = 0;             // transport::RemoteKey::packed (0: no pages here)
};

struct KeyGrant {
  uint64_t epoch = 0;
  uint32_t domain = 0;
  uint8_t access = 0;  // 1 read, 3 read-write
  std::vector<KeyGrantEntry> entries;
};

// Serializes `grant` (REQUIRES: entries.size() <= kMaxKeyGrantEntries).
std::vector<uint8_t> EncodeKeyGrant(const KeyGrant& grant);

// Parses bytes from the network; DataLoss with the reason on any defect.
absl::StatusOr<KeyGrant> DecodeKeyGrant(absl::Span<const uint8_t> bytes);

}  // namespace rt
}  // namespace gasp

#endif  // GASP_RUNTIME_KEY_GRANT_H_

#include "runtime/key_grant.h"

#include "absl/strings/str_format.h"

namespace gasp {
namespace rt {
namespace {

constexpr uint64_t kPage = 4096;  // gas::kPageSize; key_grant stays free of gas/

}  // namespace

KeyGrant MakeKeyGrant(uint64_t epoch, uint32_t domain, uint32_t access) {
  KeyGrant g;
  g.set_magic(kKeyGrantMagic);
  g.set_version(kKeyGrantVersion);
  g.set_epoch(epoch);
  g.set_domain(domain);
  g.set_access(access);
  return g;
}

std::vector<uint8_t> EncodeKeyGrant(const KeyGrant& grant) {
  std::vector<uint8_t> out(grant.ByteSizeLong());
  grant.SerializeToArray(out.data(), static_cast<int>(out.size()));
  return out;
}

absl::StatusOr<KeyGrant> DecodeKeyGrant(absl::Span<const uint8_t> bytes) {
  // Bound the input before parsing: protobuf would build every entry of a
  // 64 MiB message before the count could be checked.
  if (bytes.size() > kMaxKeyGrantBytes) {
    return absl::DataLossError(absl::StrFormat(
        "key grant: %d bytes, more than %d entries can take", bytes.size(), kMaxKeyGrantEntries));
  }
  KeyGrant g;
  if (!g.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(
        absl::StrFormat("key grant: %d bytes that are not a key grant message", bytes.size()));
  }
  if (g.magic() != kKeyGrantMagic) return absl::DataLossError("key grant: bad magic");
  if (g.version() != kKeyGrantVersion) {
    return absl::DataLossError(absl::StrFormat(
        "key grant: version %d, this build speaks %d (mixed gasp versions in one job?)",
        g.version(), kKeyGrantVersion));
  }
  if (g.access() != 1 && g.access() != 3) {
    return absl::DataLossError(
        absl::StrFormat("key grant: access %d is not read (1) or read-write (3)", g.access()));
  }
  if (g.entries_size() > kMaxKeyGrantEntries) {
    return absl::DataLossError(absl::StrFormat("key grant: %d entries, more than %d",
                                               g.entries_size(), kMaxKeyGrantEntries));
  }
  for (int i = 0; i < g.entries_size(); ++i) {
    if (g.entries(i).segment_offset() % kPage != 0) {
      return absl::DataLossError(absl::StrFormat("key grant: entry %d: offset %#x not page aligned",
                                                 i, g.entries(i).segment_offset()));
    }
  }
  return g;
}

}  // namespace rt
}  // namespace gasp

#include "runtime/key_grant.h"

#include <cstring>

#include "absl/strings/str_format.h"

namespace gasp {
namespace rt {
namespace {

// The format is little endian; so are the machines gasp runs on (x86-64,
// aarch64). A big-endian port would byte-swap here.
template <typename T>
void Put(std::vector<uint8_t>* out, T v) {
  const size_t n = out->size();
  out->resize(n + sizeof(T));
  std::memcpy(out->data() + n, &v, sizeof(T));
}

template <typename T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

std::vector<uint8_t> EncodeKeyGrant(const KeyGrant& grant) {
  std::vector<uint8_t> out;
  out.reserve(kKeyGrantHeaderBytes + 16 * grant.entries.size());
  Put<uint32_t>(&out, kKeyGrantMagic);
  Put<uint16_t>(&out, kKeyGrantVersion);
  Put<uint16_t>(&out, 0);
  Put<uint64_t>(&out, grant.epoch);
  Put<uint32_t>(&out, grant.domain);
  Put<uint8_t>(&out, grant.access);
  Put<uint8_t>(&out, 0);
  Put<uint8_t>(&out, 0);
  Put<uint8_t>(&out, 0);
  Put<uint32_t>(&out, static_cast<uint32_t>(grant.entries.size()));
  for (const KeyGrantEntry& e : grant.entries) {
    Put<uint64_t>(&out, e.segment_offset);
    Put<uint64_t>(&out, e.key);
  }
  return out;
}

absl::StatusOr<KeyGrant> DecodeKeyGrant(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kKeyGrantHeaderBytes) {
    return absl::DataLossError(
        absl::StrFormat("key grant: %d bytes, shorter than the %d-byte header", bytes.size(),
                        kKeyGrantHeaderBytes));
  }
  const uint8_t* p = bytes.data();
  if (Get<uint32_t>(p) != kKeyGrantMagic) return absl::DataLossError("key grant: bad magic");
  const uint16_t version = Get<uint16_t>(p + 4);
  if (version != kKeyGrantVersion) {
    return absl::DataLossError(absl::StrFormat(
        "key grant: version %d, this build speaks %d (mixed gasp versions in one job?)", version,
        kKeyGrantVersion));
  }
  if (Get<uint16_t>(p + 6) != 0 || p[21] != 0 || p[22] != 0 || p[23] != 0) {
    return absl::DataLossError("key grant: reserved bytes are not zero");
  }
  KeyGrant g;
  g.epoch = Get<uint64_t>(p + 8);
  g.domain = Get<uint32_t>(p + 16);
  g.access = p[20];
  if (g.access != 1 && g.access != 3) {
    return absl::DataLossError(absl::StrFormat("key grant: access %d is not read (1) or read-write (3)", g.access));
  }
  const uint32_t count = Get<uint32_t>(p + 24);
  if (count > kMaxKeyGrantEntries) {
    return absl::DataLossError(absl::StrFormat("key grant: %d entries, more than %d", count,
                                               kMaxKeyGrantEntries));
  }
  if (bytes.size() != kKeyGrantHeaderBytes + uint64_t{count} * 16) {
    return absl::DataLossError(absl::StrFormat("key grant: %d bytes for %d entries (want %d)",
                                               bytes.size(), count,
                                               kKeyGrantHeaderBytes + uint64_t{count} * 16));
  }
  g.entries.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = p + kKeyGrantHeaderBytes + 16 * i;
    g.entries[i].segment_offset = Get<uint64_t>(e);
    g.entries[i].key = Get<uint64_t>(e + 8);
    if (g.entries[i].segment_offset % 4096 != 0) {
      return absl::DataLossError(absl::StrFormat("key grant: entry %d: offset %#x not page aligned",
                                                 i, g.entries[i].segment_offset));
    }
  }
  return g;
}

}  // namespace rt
}  // namespace gasp

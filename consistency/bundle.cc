#include "consistency/bundle.h"

#include <cstring>

#include "absl/strings/str_format.h"

namespace gasp {
namespace consistency {
namespace {

constexpr size_t kHeaderBytes = 16;
constexpr size_t kEntryHeaderBytes = 16;

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool AllZero(const uint8_t* p) {
  uint64_t acc = 0;
  for (size_t i = 0; i < kBundlePageBytes; i += 8) acc |= Get<uint64_t>(p + i);
  return acc == 0;
}

}  // namespace

uint64_t PageHash(const uint8_t* page) {
  // Four independent lanes of multiply-rotate (the loop vectorizes), then a
  // final avalanche. Fixed constants: the value must be the same everywhere.
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t lane[4] = {0x243F6A8885A308D3ull, 0x13198A2E03707344ull, 0xA4093822299F31D0ull,
                      0x082EFA98EC4E6C89ull};
  for (size_t i = 0; i < kBundlePageBytes; i += 32) {
    for (int k = 0; k < 4; ++k) {
      uint64_t w = Get<uint64_t>(page + i + 8 * k);
      lane[k] = (lane[k] ^ (w * kMul));
      lane[k] = (lane[k] << 29 | lane[k] >> 35) * 0xBF58476D1CE4E5B9ull;
    }
  }
  uint64_t h = lane[0] ^ (lane[1] << 1) ^ (lane[2] << 2) ^ (lane[3] << 3);
  h ^= h >> 31;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 29;
  return h;
}

BundleWriter::BundleWriter(size_t expected_pages) {
  out_.reserve(kHeaderBytes + expected_pages * (kEntryHeaderBytes + kBundlePageBytes));
  out_.resize(kHeaderBytes);
}

void BundleWriter::Add(uint64_t page, const uint8_t* data) {
  const bool zero = AllZero(data);
  Put<uint64_t>(&out_, page);
  Put<uint16_t>(&out_, zero ? 1 : 0);
  Put<uint16_t>(&out_, 0);
  Put<uint32_t>(&out_, zero ? 0 : static_cast<uint32_t>(kBundlePageBytes));
  if (!zero) out_.append(reinterpret_cast<const char*>(data), kBundlePageBytes);
  ++count_;
}

void BundleWriter::AddUnchanged(uint64_t page, uint64_t hash) {
  Put<uint64_t>(&out_, page);
  Put<uint16_t>(&out_, 2);
  Put<uint16_t>(&out_, 0);
  Put<uint32_t>(&out_, 8);
  Put<uint64_t>(&out_, hash);
  ++count_;
}

std::string BundleWriter::Finish() {
  std::string header;
  Put<uint32_t>(&header, kBundleMagic);
  Put<uint16_t>(&header, kBundleVersion);
  Put<uint16_t>(&header, 0);
  Put<uint32_t>(&header, count_);
  Put<uint32_t>(&header, 0);
  std::memcpy(out_.data(), header.data(), kHeaderBytes);
  std::string result = std::move(out_);
  out_.assign(kHeaderBytes, '\0');
  count_ = 0;
  return result;
}

absl::StatusOr<std::vector<BundledPage>> DecodeBundle(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderBytes) {
    return absl::DataLossError(absl::StrFormat("page bundle: %d bytes, shorter than its header",
                                               bytes.size()));
  }
  const uint8_t* p = bytes.data();
  if (Get<uint32_t>(p) != kBundleMagic) return absl::DataLossError("page bundle: bad magic");
  if (Get<uint16_t>(p + 4) != kBundleVersion) {
    return absl::DataLossError(absl::StrFormat("page bundle: version %d, this build speaks %d",
                                               Get<uint16_t>(p + 4), kBundleVersion));
  }
  if (Get<uint16_t>(p + 6) != 0 || Get<uint32_t>(p + 12) != 0) {
    return absl::DataLossError("page bundle: reserved header bytes are not zero");
  }
  const uint32_t count = Get<uint32_t>(p + 8);
  if (count > kMaxBundlePages) {
    return absl::DataLossError(
        absl::StrFormat("page bundle: %d pages, more than %d", count, kMaxBundlePages));
  }
  // Every entry needs at least its header: reject absurd counts before
  // allocating.
  if (uint64_t{count} * kEntryHeaderBytes > bytes.size() - kHeaderBytes) {
    return absl::DataLossError(
        absl::StrFormat("page bundle: %d pages cannot fit in %d bytes", count, bytes.size()));
  }
  std::vector<BundledPage> pages;
  pages.reserve(count);
  size_t at = kHeaderBytes;
  for (uint32_t i = 0; i < count; ++i) {
    if (bytes.size() - at < kEntryHeaderBytes) {
      return absl::DataLossError(absl::StrFormat("page bundle: entry %d truncated", i));
    }
    const uint8_t* e = p + at;
    BundledPage bp;
    bp.page = Get<uint64_t>(e);
    const uint16_t kind = Get<uint16_t>(e + 8);
    const uint32_t length = Get<uint32_t>(e + 12);
    if (Get<uint16_t>(e + 10) != 0) {
      return absl::DataLossError(absl::StrFormat("page bundle: entry %d: reserved bytes", i));
    }
    if (!pages.empty() && bp.page <= pages.back().page) {
      return absl::DataLossError(
          absl::StrFormat("page bundle: entry %d: page %d not after page %d", i, bp.page,
                          pages.back().page));
    }
    at += kEntryHeaderBytes;
    if (kind == 0) {
      if (length != kBundlePageBytes || bytes.size() - at < kBundlePageBytes) {
        return absl::DataLossError(absl::StrFormat(
            "page bundle: entry %d: full page of %d bytes, %d left", i, length, bytes.size() - at));
      }
      bp.data = p + at;
      at += kBundlePageBytes;
    } else if (kind == 1) {
      if (length != 0) {
        return absl::DataLossError(absl::StrFormat("page bundle: entry %d: zero page with length %d", i, length));
      }
    } else if (kind == 2) {
      if (length != 8 || bytes.size() - at < 8) {
        return absl::DataLossError(absl::StrFormat(
            "page bundle: entry %d: unchanged page with length %d, %d left", i, length,
            bytes.size() - at));
      }
      bp.unchanged = true;
      bp.hash = Get<uint64_t>(p + at);
      at += 8;
    } else {
      return absl::DataLossError(absl::StrFormat("page bundle: entry %d: unknown kind %d", i, kind));
    }
    pages.push_back(bp);
  }
  if (at != bytes.size()) {
    return absl::DataLossError(
        absl::StrFormat("page bundle: %d trailing bytes", bytes.size() - at));
  }
  return pages;
}

}  // namespace consistency
}  // namespace gasp

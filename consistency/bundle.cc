#include "consistency/bundle.h"

#include <immintrin.h>

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

// PageHash's keys: 192 bytes from a fixed splitmix64 sequence.
struct HashKey {
  uint64_t w[24];
};
constexpr HashKey MakeHashKey() {
  HashKey k{};
  uint64_t x = 0x243F6A8885A308D3ull;
  for (uint64_t& w : k.w) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    w = z ^ (z >> 31);
  }
  return k;
}
constexpr HashKey kHashKey = MakeHashKey();
constexpr size_t kHashBlockBytes = 1024;  // 16 stripes of 64 bytes between scrambles

// Diff runs: offsets and lengths within a page (at most 4096) fit in two
// LEB128 bytes.
constexpr size_t kDiffHashBytes = 16;  // base hash, new hash

size_t VarintBytes(uint32_t v) { return v < 0x80 ? 1 : 2; }

uint8_t* PutVarint(uint8_t* out, uint32_t v) {
  if (v < 0x80) {
    *out++ = static_cast<uint8_t>(v);
  } else {
    *out++ = static_cast<uint8_t>(0x80 | (v & 0x7f));
    *out++ = static_cast<uint8_t>(v >> 7);
  }
  return out;
}

// memcpy for the short runs of a diff without a library call per run:
// two overlapping fixed-size copies cover any length up to twice their size.
inline void CopyRun(uint8_t* dst, const uint8_t* src, size_t n) {
  if (n >= 16) {
    std::memcpy(dst, src, n);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else if (n >= 2) {
    std::memcpy(dst, src, 2);
    std::memcpy(dst + n - 2, src + n - 2, 2);
  } else if (n == 1) {
    *dst = *src;
  }
}

// Reads a varint of at most two bytes in its shortest form from [*at, end).
bool GetVarint(const uint8_t* p, size_t end, size_t* at, uint32_t* v) {
  if (*at >= end) return false;
  const uint8_t b0 = p[(*at)++];
  if (b0 < 0x80) {
    *v = b0;
    return true;
  }
  if (*at >= end) return false;
  const uint8_t b1 = p[(*at)++];
  if (b1 == 0 || b1 >= 0x80) return false;  // not the shortest form, or longer than two bytes
  *v = (b0 & 0x7fu) | (uint32_t{b1} << 7);
  return true;
}

// Walks the runs of a kind-3 payload (`bytes`, after the two hashes):
// calls fn(offset, data, length) for each. Returns an empty string if they
// are well formed, else what is wrong.
template <typename Fn>
const char* WalkDiffRuns(absl::Span<const uint8_t> bytes, Fn&& fn) {
  size_t at = 0, pos = 0;
  bool first = true;
  while (at < bytes.size()) {
    uint32_t skip, length;
    if (!GetVarint(bytes.data(), bytes.size(), &at, &skip) ||
        !GetVarint(bytes.data(), bytes.size(), &at, &length)) {
      return "malformed run header";
    }
    if (!first && skip == 0) return "runs not apart";
    if (length == 0) return "empty run";
    if (skip > kBundlePageBytes - pos || length > kBundlePageBytes - pos - skip) {
      return "run outside the page";
    }
    if (length > bytes.size() - at) return "run truncated";
    pos += skip;
    fn(pos, bytes.data() + at, length);
    pos += length;
    at += length;
    first = false;
  }
  return first ? "no runs" : "";
}

}  // namespace

namespace {

// The 8 lanes' start, merged and avalanched at the end: the same for both
// loops below.
constexpr uint64_t kLaneStart[8] = {0x00000000C2B2AE3Dull, 0x9E3779B185EBCA87ull,
                                    0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull,
                                    0x85EBCA77C2B2AE63ull, 0x000000085EBCA77Bull,
                                    0x27D4EB2F165667C5ull, 0x000000009E3779B1ull};

uint64_t MergeLanes(const uint64_t lanes[8]) {
  uint64_t h = kBundlePageBytes * 0x9E3779B185EBCA87ull;
  for (int i = 0; i < 4; ++i) {
    const unsigned __int128 m =
        static_cast<unsigned __int128>(lanes[2 * i] ^ kHashKey.w[2 * i + 1]) *
        (lanes[2 * i + 1] ^ kHashKey.w[2 * i + 2]);
    h += static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
  }
  h ^= h >> 37;
  h *= 0x165667919E3779F9ull;
  h ^= h >> 32;
  return h;
}

// XXH3's long-input loop over one page: 8 lanes accumulate (word ^ key)
// lo32 x hi32 plus the neighbour lane's word, scrambled every 1 KiB. SSE2
// (every x86-64 has it) two lanes per instruction ...
uint64_t PageHashSse2(const uint8_t* page) {
  const uint8_t* key = reinterpret_cast<const uint8_t*>(kHashKey.w);
  __m128i acc[4];
  std::memcpy(acc, kLaneStart, sizeof(acc));
  const __m128i prime = _mm_set1_epi32(static_cast<int>(0x9E3779B1u));
  for (size_t block = 0; block < kBundlePageBytes / kHashBlockBytes; ++block) {
    for (size_t s = 0; s < kHashBlockBytes / 64; ++s) {
      const uint8_t* in = page + block * kHashBlockBytes + s * 64;
      const uint8_t* k = key + s * 8;
      for (int j = 0; j < 4; ++j) {
        const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 16 * j));
        const __m128i dk =
            _mm_xor_si128(d, _mm_loadu_si128(reinterpret_cast<const __m128i*>(k + 16 * j)));
        const __m128i product = _mm_mul_epu32(dk, _mm_shuffle_epi32(dk, _MM_SHUFFLE(0, 3, 0, 1)));
        const __m128i swapped = _mm_shuffle_epi32(d, _MM_SHUFFLE(1, 0, 3, 2));
        acc[j] = _mm_add_epi64(acc[j], _mm_add_epi64(product, swapped));
      }
    }
    const uint8_t* k = key + sizeof(kHashKey.w) - 64;
    for (int j = 0; j < 4; ++j) {
      __m128i a = _mm_xor_si128(acc[j], _mm_srli_epi64(acc[j], 47));
      a = _mm_xor_si128(a, _mm_loadu_si128(reinterpret_cast<const __m128i*>(k + 16 * j)));
      const __m128i lo = _mm_mul_epu32(a, prime);
      const __m128i hi = _mm_mul_epu32(_mm_shuffle_epi32(a, _MM_SHUFFLE(0, 3, 0, 1)), prime);
      acc[j] = _mm_add_epi64(lo, _mm_slli_epi64(hi, 32));
    }
  }
  uint64_t lanes[8];
  std::memcpy(lanes, acc, sizeof(lanes));
  return MergeLanes(lanes);
}

// ... and AVX2, four: the same lanes, the same value, twice as fast.
__attribute__((target("avx2"))) uint64_t PageHashAvx2(const uint8_t* page) {
  const uint8_t* key = reinterpret_cast<const uint8_t*>(kHashKey.w);
  __m256i acc[2];
  std::memcpy(acc, kLaneStart, sizeof(acc));
  const __m256i prime = _mm256_set1_epi32(static_cast<int>(0x9E3779B1u));
  for (size_t block = 0; block < kBundlePageBytes / kHashBlockBytes; ++block) {
    for (size_t s = 0; s < kHashBlockBytes / 64; ++s) {
      const uint8_t* in = page + block * kHashBlockBytes + s * 64;
      const uint8_t* k = key + s * 8;
      for (int j = 0; j < 2; ++j) {
        const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 32 * j));
        const __m256i dk =
            _mm256_xor_si256(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 32 * j)));
        const __m256i product =
            _mm256_mul_epu32(dk, _mm256_shuffle_epi32(dk, _MM_SHUFFLE(0, 3, 0, 1)));
        const __m256i swapped = _mm256_shuffle_epi32(d, _MM_SHUFFLE(1, 0, 3, 2));
        acc[j] = _mm256_add_epi64(acc[j], _mm256_add_epi64(product, swapped));
      }
    }
    const uint8_t* k = key + sizeof(kHashKey.w) - 64;
    for (int j = 0; j < 2; ++j) {
      __m256i a = _mm256_xor_si256(acc[j], _mm256_srli_epi64(acc[j], 47));
      a = _mm256_xor_si256(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 32 * j)));
      const __m256i lo = _mm256_mul_epu32(a, prime);
      const __m256i hi =
          _mm256_mul_epu32(_mm256_shuffle_epi32(a, _MM_SHUFFLE(0, 3, 0, 1)), prime);
      acc[j] = _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));
    }
  }
  uint64_t lanes[8];
  std::memcpy(lanes, acc, sizeof(lanes));
  // Clean upper halves: SSE code after this (ComputeDiff, most of libc
  // here) would otherwise run several times slower.
  _mm256_zeroupper();
  return MergeLanes(lanes);
}

using PageHashFn = uint64_t (*)(const uint8_t*);
const PageHashFn kPageHash = [] {
  __builtin_cpu_init();  // this may run before libgcc's own constructor
  return __builtin_cpu_supports("avx2") ? PageHashAvx2 : PageHashSse2;
}();

}  // namespace

uint64_t PageHash(const uint8_t* page) { return kPageHash(page); }

uint64_t PageHashPortable(const uint8_t* page) { return PageHashSse2(page); }

BundleWriter::BundleWriter(size_t expected_pages) {
  out_.reserve(kHeaderBytes + expected_pages * (kEntryHeaderBytes + kBundlePageBytes));
  out_.resize(kHeaderBytes);
}

void BundleWriter::Add(uint64_t page, const uint8_t* data) {
  const bool zero = AllZero(data);
  Put<uint64_t>(&out_, page);
  Put<uint16_t>(&out_, static_cast<uint16_t>(zero ? BundleKind::kZeros : BundleKind::kFull));
  Put<uint16_t>(&out_, 0);
  Put<uint32_t>(&out_, zero ? 0 : static_cast<uint32_t>(kBundlePageBytes));
  if (!zero) out_.append(reinterpret_cast<const char*>(data), kBundlePageBytes);
  ++count_;
}

void BundleWriter::AddUnchanged(uint64_t page, uint64_t hash) {
  Put<uint64_t>(&out_, page);
  Put<uint16_t>(&out_, static_cast<uint16_t>(BundleKind::kUnchanged));
  Put<uint16_t>(&out_, 0);
  Put<uint32_t>(&out_, 8);
  Put<uint64_t>(&out_, hash);
  ++count_;
}

size_t DiffEntryBytes(absl::Span<const DiffRun> runs) {
  size_t n = kDiffHashBytes, end = 0;
  for (const DiffRun& r : runs) {
    n += VarintBytes(r.offset - end) + VarintBytes(r.length) + r.length;
    end = r.offset + r.length;
  }
  return n;
}

bool BundleWriter::AddDiff(uint64_t page, const uint8_t* base, uint64_t base_hash,
                           const uint8_t* data, uint64_t new_hash) {
  DiffRun runs[MaxDiffRuns(kBundlePageBytes)];
  const size_t n = ComputeDiff(data, base, kBundlePageBytes, runs, MaxDiffRuns(kBundlePageBytes));
  return n != 0 && AddDiffRuns(page, base_hash, new_hash, absl::MakeConstSpan(runs, n), data);
}

bool BundleWriter::AddDiffRuns(uint64_t page, uint64_t base_hash, uint64_t new_hash,
                               absl::Span<const DiffRun> runs, const uint8_t* data) {
  const size_t length = DiffEntryBytes(runs);
  if (length >= kBundlePageBytes) return false;
  const size_t at = out_.size();
  out_.resize(at + kEntryHeaderBytes + length);
  uint8_t* o = reinterpret_cast<uint8_t*>(&out_[at]);
  auto put = [&o](auto v) {
    std::memcpy(o, &v, sizeof(v));
    o += sizeof(v);
  };
  put(page);
  put(static_cast<uint16_t>(BundleKind::kDiff));
  put(uint16_t{0});
  put(static_cast<uint32_t>(length));
  put(base_hash);
  put(new_hash);
  uint32_t end = 0;
  for (const DiffRun& r : runs) {
    o = PutVarint(o, r.offset - end);
    o = PutVarint(o, r.length);
    CopyRun(o, data + r.offset, r.length);
    o += r.length;
    end = r.offset + r.length;
  }
  ++count_;
  return true;
}

void ApplyBundleDiff(const BundledPage& p, uint8_t* page, std::vector<DiffRun>* runs) {
  WalkDiffRuns(p.runs, [&](size_t offset, const uint8_t* bytes, size_t length) {
    CopyRun(page + offset, bytes, length);
    if (runs != nullptr) {
      runs->push_back(DiffRun{static_cast<uint32_t>(offset), static_cast<uint32_t>(length)});
    }
  });
}

bool PatchedPage(const BundledPage& p, const uint8_t* copy, uint8_t* out) {
  if (p.kind != BundleKind::kDiff) return false;
  const uint64_t hash = PageHash(copy);
  std::memcpy(out, copy, kBundlePageBytes);
  if (hash == p.hash) return true;  // already the new contents (the receiver wrote them)
  if (hash != p.base_hash) return false;
  ApplyBundleDiff(p, out);
  return PageHash(out) == p.hash;
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
      bp.kind = BundleKind::kZeros;
      if (length != 0) {
        return absl::DataLossError(absl::StrFormat("page bundle: entry %d: zero page with length %d", i, length));
      }
    } else if (kind == 2) {
      if (length != 8 || bytes.size() - at < 8) {
        return absl::DataLossError(absl::StrFormat(
            "page bundle: entry %d: unchanged page with length %d, %d left", i, length,
            bytes.size() - at));
      }
      bp.kind = BundleKind::kUnchanged;
      bp.hash = Get<uint64_t>(p + at);
      at += 8;
    } else if (kind == 3) {
      if (length <= kDiffHashBytes || length >= kBundlePageBytes || bytes.size() - at < length) {
        return absl::DataLossError(absl::StrFormat(
            "page bundle: entry %d: diff of length %d, %d left", i, length, bytes.size() - at));
      }
      bp.kind = BundleKind::kDiff;
      bp.base_hash = Get<uint64_t>(p + at);
      bp.hash = Get<uint64_t>(p + at + 8);
      bp.runs = absl::MakeConstSpan(p + at + kDiffHashBytes, length - kDiffHashBytes);
      const char* wrong = WalkDiffRuns(bp.runs, [](size_t, const uint8_t*, size_t) {});
      if (*wrong != '\0') {
        return absl::DataLossError(absl::StrFormat("page bundle: entry %d: diff: %s", i, wrong));
      }
      at += length;
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

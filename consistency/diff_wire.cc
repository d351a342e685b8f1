#include "consistency/diff_wire.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace gasp {
namespace consistency {
namespace {

constexpr uint64_t kPage = 4096;
// The largest message the decoder accepts (the writer splits far below).
constexpr size_t kMaxDiffMessageBytes = size_t{64} << 20;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Writes a record header at o + *at and advances *at past it.
void PutRecordHeader(uint8_t* o, size_t* at, uint64_t offset, uint16_t length, RecordKind kind) {
  std::memcpy(o + *at, &offset, 8);
  std::memcpy(o + *at + 8, &length, 2);
  o[*at + 10] = static_cast<uint8_t>(kind);
  o[*at + 11] = 0;
  *at += kDiffRecordHeaderBytes;
}

}  // namespace

void DiffWriter::Start(uint64_t sequence, uint64_t rkey) {
  out_.clear();
  records_ = 0;
  const uint32_t magic = kDiffMagic, zero = 0;
  Put(&magic, 4);
  Put(&zero, 4);  // record count, patched by Finish
  Put(&sequence, 8);
  Put(&rkey, 8);
}

void DiffWriter::Put(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  out_.insert(out_.end(), b, b + n);
}

void DiffWriter::AddPage(uint64_t page_offset, const uint8_t* page_bytes,
                         absl::Span<const DiffRun> runs) {
  if (runs.empty()) return;
  size_t changed = 0;
  for (const DiffRun& r : runs) changed += r.length;
  const uint32_t first = runs.front().offset;
  const uint32_t span = runs.back().offset + runs.back().length - first;
  const size_t mask_bytes = (span + 7) / 8;
  const size_t as_runs = runs.size() * kDiffRecordHeaderBytes + changed;
  const size_t as_mask = kDiffRecordHeaderBytes + mask_bytes + changed;
  // Sized once, then filled through a pointer: hundreds of runs per page
  // must not mean hundreds of vector insertions.
  size_t at = out_.size();
  out_.resize(at + std::min(as_runs, as_mask));
  uint8_t* o = out_.data();
  auto header = [&](uint64_t offset, uint16_t length, RecordKind kind) {
    PutRecordHeader(o, &at, offset, length, kind);
    ++records_;
  };
  if (as_runs <= as_mask) {
    for (const DiffRun& r : runs) {
      header(page_offset + r.offset, static_cast<uint16_t>(r.length), RecordKind::kBytes);
      std::memcpy(o + at, page_bytes + r.offset, r.length);
      at += r.length;
    }
    return;
  }
  // One masked record over the span: the mask (built 64 bits at a time),
  // then the changed bytes in order.
  header(page_offset + first, static_cast<uint16_t>(span), RecordKind::kMasked);
  uint64_t mask[kMaxRecordBytes / 64] = {};
  for (const DiffRun& r : runs) {
    for (uint32_t b = r.offset - first, e = b + r.length; b < e;) {
      const uint32_t n = std::min<uint32_t>(e - b, 64 - b % 64);
      mask[b / 64] |= (n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << (b % 64);
      b += n;
    }
  }
  std::memcpy(o + at, mask, mask_bytes);
  at += mask_bytes;
  for (const DiffRun& r : runs) {
    std::memcpy(o + at, page_bytes + r.offset, r.length);
    at += r.length;
  }
}

void DiffWriter::AddPageMasks(uint64_t page_offset, const uint8_t* page_bytes,
                              const uint8_t* masks, const WordMaskSummary& sum) {
  if (sum.changed_bytes == 0) return;
  const uint32_t words = sum.last_word - sum.first_word + 1;
  const size_t as_runs = sum.runs * kDiffRecordHeaderBytes + sum.changed_bytes;
  const size_t as_mask = kDiffRecordHeaderBytes + words + sum.changed_bytes;
  size_t at = out_.size();
  out_.resize(at + std::min(as_runs, as_mask));
  uint8_t* o = out_.data();
  auto header = [&](uint64_t offset, uint16_t length, RecordKind kind) {
    PutRecordHeader(o, &at, offset, length, kind);
    ++records_;
  };
  if (as_runs <= as_mask) {
    // Few runs: walk the byte masks for them.
    uint32_t start = 0;
    bool open = false;
    auto close = [&](uint32_t end) {
      header(page_offset + start, static_cast<uint16_t>(end - start), RecordKind::kBytes);
      std::memcpy(o + at, page_bytes + start, end - start);
      at += end - start;
      open = false;
    };
    for (uint32_t w = sum.first_word; w <= sum.last_word; ++w) {
      for (uint32_t i = 0; i < 8; ++i) {
        const bool set = (masks[w] >> i) & 1;
        if (set && !open) {
          open = true;
          start = w * 8 + i;
        } else if (!set && open) {
          close(w * 8 + i);
        }
      }
    }
    if (open) close((sum.last_word + 1) * 8);
    return;
  }
  // One masked record over whole words: the word masks are the mask bytes.
  header(page_offset + sum.first_word * 8, static_cast<uint16_t>(words * 8), RecordKind::kMasked);
  std::memcpy(o + at, masks + sum.first_word, words);
  at += words;
  for (uint32_t w = sum.first_word; w <= sum.last_word; ++w) {
    unsigned m = masks[w];
    const uint8_t* src = page_bytes + w * 8;
    if (m == 0xff) {
      std::memcpy(o + at, src, 8);
      at += 8;
      continue;
    }
    while (m != 0) {  // each run of set bits is one copy
      const int b = __builtin_ctz(m);
      const int len = __builtin_ctz(~(m >> b));
      std::memcpy(o + at, src + b, static_cast<size_t>(len));
      at += static_cast<size_t>(len);
      m &= ~(((1u << len) - 1) << b);
    }
  }
}

absl::Span<const uint8_t> DiffWriter::Finish() {
  std::memcpy(out_.data() + 4, &records_, 4);
  return out_;
}

absl::StatusOr<DiffMessage> DecodeDiff(absl::Span<const uint8_t> bytes, uint64_t range_bytes) {
  if (bytes.size() < kDiffHeaderBytes) return absl::InvalidArgumentError("diff: truncated header");
  if (bytes.size() > kMaxDiffMessageBytes) {
    return absl::InvalidArgumentError(absl::StrFormat("diff: %u bytes is too long", bytes.size()));
  }
  const uint8_t* p = bytes.data();
  if (Load<uint32_t>(p) != kDiffMagic) return absl::InvalidArgumentError("diff: bad magic");
  const uint32_t n = Load<uint32_t>(p + 4);
  DiffMessage m;
  m.sequence = Load<uint64_t>(p + 8);
  m.rkey = Load<uint64_t>(p + 16);
  if (n > (bytes.size() - kDiffHeaderBytes) / (kDiffRecordHeaderBytes + 1)) {
    return absl::InvalidArgumentError(absl::StrFormat("diff: %u records cannot fit", n));
  }
  m.records.resize(n);
  size_t at = kDiffHeaderBytes;
  for (uint32_t i = 0; i < n; ++i) {
    if (bytes.size() - at < kDiffRecordHeaderBytes) {
      return absl::InvalidArgumentError(absl::StrFormat("diff: record %u truncated", i));
    }
    DiffRecord& r = m.records[i];
    r.offset = Load<uint64_t>(p + at);
    r.length = Load<uint16_t>(p + at + 8);
    const uint8_t kind = p[at + 10];
    if (p[at + 11] != 0 || kind > 1) {
      return absl::InvalidArgumentError(absl::StrFormat("diff: record %u of unknown kind", i));
    }
    r.kind = static_cast<RecordKind>(kind);
    at += kDiffRecordHeaderBytes;
    if (r.length == 0 || r.length > kMaxRecordBytes || r.offset >= range_bytes ||
        r.length > range_bytes - r.offset || r.offset / kPage != (r.offset + r.length - 1) / kPage) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "diff: record %u (offset %#x, %u bytes) is empty, too long, crosses a page or leaves "
          "the range",
          i, r.offset, r.length));
    }
    size_t data_bytes = r.length;
    if (r.kind == RecordKind::kMasked) {
      const size_t mask_bytes = (r.length + 7) / 8;
      if (bytes.size() - at < mask_bytes) {
        return absl::InvalidArgumentError(absl::StrFormat("diff: record %u mask truncated", i));
      }
      r.mask = p + at;
      data_bytes = 0;
      for (size_t b = 0; b < mask_bytes; b += 8) {
        uint64_t word = 0;
        std::memcpy(&word, r.mask + b, std::min<size_t>(8, mask_bytes - b));
        data_bytes += static_cast<size_t>(__builtin_popcountll(word));
      }
      if (r.length % 8 != 0 && (r.mask[mask_bytes - 1] >> (r.length % 8)) != 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("diff: record %u has mask bits past its length", i));
      }
      at += mask_bytes;
    }
    if (bytes.size() - at < data_bytes) {
      return absl::InvalidArgumentError(absl::StrFormat("diff: record %u data truncated", i));
    }
    r.data = p + at;
    at += data_bytes;
  }
  if (at != bytes.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("diff: %u trailing bytes", bytes.size() - at));
  }
  return m;
}

void ApplyRecord(const DiffRecord& r, uint8_t* base) {
  uint8_t* dst = base + r.offset;
  if (r.kind == RecordKind::kBytes) {
    std::memcpy(dst, r.data, r.length);
    return;
  }
  // 64 mask bits at a time; each run of set bits is one copy.
  const uint8_t* src = r.data;
  const size_t mask_bytes = (r.length + 7) / 8;
  for (size_t w = 0; w * 8 < mask_bytes; ++w) {
    uint64_t bits = 0;
    std::memcpy(&bits, r.mask + w * 8, std::min<size_t>(8, mask_bytes - w * 8));
    while (bits != 0) {
      const int start = __builtin_ctzll(bits);
      const uint64_t from_start = bits >> start;
      const int len = ~from_start == 0 ? 64 - start : __builtin_ctzll(~from_start);
      std::memcpy(dst + w * 64 + start, src, static_cast<size_t>(len));
      src += len;
      bits = len == 64 ? 0 : bits & ~(((uint64_t{1} << len) - 1) << start);
    }
  }
}

std::vector<uint8_t> EncodeDiffAck(uint64_t sequence, uint32_t status, const std::string& reason) {
  std::vector<uint8_t> out(16 + reason.size());
  const uint32_t magic = kDiffAckMagic;
  std::memcpy(out.data(), &magic, 4);
  std::memcpy(out.data() + 4, &status, 4);
  std::memcpy(out.data() + 8, &sequence, 8);
  std::memcpy(out.data() + 16, reason.data(), reason.size());
  return out;
}

absl::StatusOr<DiffAck> DecodeDiffAck(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < 16 || Load<uint32_t>(bytes.data()) != kDiffAckMagic) {
    return absl::InvalidArgumentError("diff reply: bad magic or truncated");
  }
  if (bytes.size() > 16 + 4096) return absl::InvalidArgumentError("diff reply: too long");
  DiffAck a;
  a.status = Load<uint32_t>(bytes.data() + 4);
  a.sequence = Load<uint64_t>(bytes.data() + 8);
  a.reason.assign(reinterpret_cast<const char*>(bytes.data() + 16), bytes.size() - 16);
  return a;
}

}  // namespace consistency
}  // namespace gasp

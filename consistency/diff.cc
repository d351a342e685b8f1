#include "consistency/diff.h"

#include <emmintrin.h>

#include <cstring>

namespace gasp {
namespace consistency {

namespace {
// Bit i set iff byte i of x is not zero.
inline unsigned ByteMask(uint64_t x) {
  uint64_t t = x | (x >> 4);
  t |= t >> 2;
  t |= t >> 1;
  return static_cast<unsigned>(((t & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56);
}
}  // namespace

WordMaskSummary ComputeWordMasks(const uint8_t* page, const uint8_t* twin, size_t length,
                                 uint8_t* masks) {
  WordMaskSummary s;
  unsigned prev_top = 0;  // whether the byte before this word differed
  uint32_t full_run = 0;
  bool any = false;
  for (size_t w = 0; w < length / 8; ++w) {
    uint64_t a, b;
    std::memcpy(&a, page + w * 8, 8);
    std::memcpy(&b, twin + w * 8, 8);
    const unsigned m = (a ^ b) == 0 ? 0 : ByteMask(a ^ b);
    masks[w] = static_cast<uint8_t>(m);
    if (m == 0) {
      prev_top = 0;
      full_run = 0;
      continue;
    }
    if (!any) s.first_word = static_cast<uint32_t>(w);
    any = true;
    s.last_word = static_cast<uint32_t>(w);
    s.changed_bytes += static_cast<uint32_t>(__builtin_popcount(m));
    // A run starts at every set bit whose lower neighbour is clear.
    s.runs += static_cast<uint32_t>(__builtin_popcount(m & ~((m << 1) | prev_top) & 0xffu));
    prev_top = (m >> 7) & 1;
    full_run = m == 0xff ? full_run + 8 : 0;
    if (full_run > s.longest_full) s.longest_full = full_run;
  }
  return s;
}

size_t RunsFromWordMasks(const uint8_t* masks, size_t words, DiffRun* out, size_t max_runs) {
  size_t n = 0, start = 0;
  bool open = false;
  auto emit = [&](size_t end) {
    if (n < max_runs) out[n] = DiffRun{static_cast<uint32_t>(start), static_cast<uint32_t>(end - start)};
    ++n;
    open = false;
  };
  for (size_t w = 0; w < words; ++w) {
    const unsigned m = masks[w];
    if (m == 0xff || m == 0) {  // whole words: extend or close without a byte walk
      if (m == 0xff && !open) {
        open = true;
        start = w * 8;
      } else if (m == 0 && open) {
        emit(w * 8);
      }
      continue;
    }
    for (size_t i = 0; i < 8; ++i) {
      const bool set = (m >> i) & 1;
      if (set && !open) {
        open = true;
        start = w * 8 + i;
      } else if (!set && open) {
        emit(w * 8 + i);
      }
    }
  }
  if (open) emit(words * 8);
  return n;
}

size_t ComputeDiff(const uint8_t* page, const uint8_t* twin, size_t length, DiffRun* out,
                   size_t max_runs) {
  size_t n = 0;
  bool open = false;  // a run is open from `run_start`
  size_t run_start = 0;
  auto emit = [&](size_t end) {
    if (n < max_runs) {
      out[n] = DiffRun{static_cast<uint32_t>(run_start), static_cast<uint32_t>(end - run_start)};
    }
    ++n;
    open = false;
  };
  // Runs in `diff` (bit i: byte base + i differs; `width` bits), found by
  // bit scans, not a walk over the bytes. A run open from before continues
  // only through bit 0; one that reaches the top bit may go on.
  auto scan = [&](uint64_t diff, size_t base, unsigned width) {
    if (open && (diff & 1) == 0) emit(base);
    while (diff != 0) {
      const unsigned i = static_cast<unsigned>(__builtin_ctzll(diff));
      const uint64_t rest = ~(diff >> i);  // not zero: diff is not all ones here
      const unsigned len = static_cast<unsigned>(__builtin_ctzll(rest));
      if (!open) {
        open = true;
        run_start = base + i;
      }
      if (i + len >= width) break;  // reaches the top: may go on
      emit(base + i + len);
      diff &= ~uint64_t{0} << (i + len);
    }
  };
  size_t w = 0;
  // 64 bytes at a time: SSE2 byte compares give a 64-bit mask of the bytes
  // that differ; equal stretches (the common case) cost a few instructions.
  for (; w + 64 <= length; w += 64) {
    uint64_t equal = 0;
    for (int k = 0; k < 4; ++k) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(page + w + 16 * k));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(twin + w + 16 * k));
      equal |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(a, b))))
               << (16 * k);
    }
    const uint64_t diff = ~equal;
    if (diff == 0) {
      if (open) emit(w);
    } else if (diff == ~uint64_t{0}) {  // every byte differs: the dense case
      if (!open) {
        open = true;
        run_start = w;
      }
    } else {
      scan(diff, w, 64);
    }
  }
  for (; w < length; w += 8) {
    uint64_t a, b;
    std::memcpy(&a, page + w, 8);
    std::memcpy(&b, twin + w, 8);
    const uint64_t x = a ^ b;
    const unsigned mask = x == 0 ? 0 : ByteMask(x);
    if (mask == 0xff) {
      if (!open) {
        open = true;
        run_start = w;
      }
    } else {
      scan(mask, w, 8);
    }
  }
  if (open) emit(length);
  return n;
}

}  // namespace consistency
}  // namespace gasp

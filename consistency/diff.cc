#include "consistency/diff.h"

#include <cstring>

namespace gasp {
namespace consistency {

size_t ComputeDiff(const uint8_t* page, const uint8_t* twin, size_t length, DiffRun* out,
                   size_t max_runs) {
  size_t n = 0;
  bool open = false;  // a run is open and ends at `run_end`
  size_t run_start = 0, run_end = 0;
  auto emit = [&]() {
    if (n < max_runs) {
      out[n] = DiffRun{static_cast<uint32_t>(run_start), static_cast<uint32_t>(run_end - run_start)};
    }
    ++n;
    open = false;
  };
  for (size_t w = 0; w < length; w += 8) {
    uint64_t a, b;
    std::memcpy(&a, page + w, 8);
    std::memcpy(&b, twin + w, 8);
    uint64_t x = a ^ b;
    if (x == 0) {
      if (open) emit();
      continue;
    }
    // Which bytes differ, as 8 bits (little-endian: byte i is bits
    // 8i..8i+7): fold each byte onto its low bit, then gather the low bits.
    uint64_t t = x | (x >> 4);
    t |= t >> 2;
    t |= t >> 1;
    const unsigned mask =
        static_cast<unsigned>(((t & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56);
    if (mask == 0xff) {  // the whole word differs: the common dense case
      if (!open) {
        open = true;
        run_start = w;
      }
      run_end = w + 8;
      continue;
    }
    for (size_t i = 0; i < 8; ++i) {
      bool differs = ((mask >> i) & 1) != 0;
      size_t pos = w + i;
      if (differs) {
        if (!open) {
          open = true;
          run_start = pos;
        }
        run_end = pos + 1;
      } else if (open) {
        emit();
      }
    }
  }
  if (open) emit();
  return n;
}

}  // namespace consistency
}  // namespace gasp

// Fuzz target for packed diff messages and their replies
// (consistency/diff_wire.h): bytes a home receives from other ranks.
// Checks, besides "no crash, no sanitizer report": every accepted record
// stays inside the range and inside one page, and applying it writes only
// inside [offset, offset + length).
//   libFuzzer: bazel build --config=fuzz //consistency:diff_wire_fuzzer
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "consistency/diff_wire.h"

using gasp::consistency::ApplyRecord;
using gasp::consistency::DecodeDiff;
using gasp::consistency::DecodeDiffAck;
using gasp::consistency::DiffRecord;
using gasp::consistency::DiffRun;
using gasp::consistency::DiffWriter;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kRange = 8 * 4096;
  DecodeDiffAck(absl::MakeConstSpan(data, size)).IgnoreError();
  auto m = DecodeDiff(absl::MakeConstSpan(data, size), kRange);
  if (!m.ok()) return 0;
  static std::vector<uint8_t> mem(kRange);
  for (const DiffRecord& r : m->records) {
    if (r.length == 0 || r.offset + r.length > kRange || r.offset / 4096 != (r.offset + r.length - 1) / 4096) {
      std::fprintf(stderr, "diff_wire_fuzzer: accepted a record outside the range or a page\n");
      std::abort();
    }
    std::fill(mem.begin(), mem.end(), 0xA5);
    ApplyRecord(r, mem.data());
    for (uint64_t i = 0; i < kRange; ++i) {
      if ((i < r.offset || i >= r.offset + r.length) && mem[i] != 0xA5) {
        std::fprintf(stderr, "diff_wire_fuzzer: a record wrote outside itself\n");
        std::abort();
      }
    }
  }
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  std::vector<uint8_t> page(4096);
  for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(i);
  const DiffRun sparse[] = {{3, 2}, {100, 9}};
  std::vector<DiffRun> dense;
  for (uint32_t o = 0; o < 512; o += 8) dense.push_back({o, 6});
  DiffWriter w;
  w.Start(1, 7);
  w.AddPage(4096, page.data(), sparse);
  w.AddPage(2 * 4096, page.data(), dense);
  auto msg = w.Finish();
  add(ctx, msg.data(), msg.size());
}

// Fuzz target for the key-grant decoder (runtime/key_grant.h): bytes a rank
// receives from a peer when it is granted a protection domain.
//
// Checks, besides "no crash, no sanitizer report": the decoder is
// canonical (what it accepts re-encodes to exactly the same bytes).
//
// libFuzzer: bazel build --config=fuzz //runtime:key_grant_fuzzer
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/key_grant.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<gasp::rt::KeyGrant> g =
      gasp::rt::DecodeKeyGrant(absl::MakeConstSpan(data, size));
  if (!g.ok()) return 0;
  std::vector<uint8_t> again = gasp::rt::EncodeKeyGrant(*g);
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) {
    std::fprintf(stderr, "key_grant_fuzzer: accepted bytes do not re-encode identically\n");
    std::abort();
  }
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  for (uint32_t n : {0u, 1u, 3u}) {
    gasp::rt::KeyGrant g;
    g.epoch = n + 1;
    g.domain = 2;
    g.access = n % 2 == 0 ? 3 : 1;
    for (uint32_t i = 0; i < n; ++i) g.entries.push_back({uint64_t{i} << 21, 0x100000001ull * (i + 1)});
    std::vector<uint8_t> b = gasp::rt::EncodeKeyGrant(g);
    add(ctx, b.data(), b.size());
  }
}

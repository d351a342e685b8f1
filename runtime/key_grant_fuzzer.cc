// Fuzz target for the key-grant decoder (runtime/key_grant.h): bytes a rank
// receives from a peer when it is granted a protection domain.
//
// Checks, besides "no crash, no sanitizer report": an accepted grant is
// within its limits, and re-encodes to bytes that decode to the same grant.
//
// libFuzzer: bazel build --config=fuzz //runtime:key_grant_fuzzer
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "runtime/key_grant.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "key_grant_fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<gasp::rt::KeyGrant> g =
      gasp::rt::DecodeKeyGrant(absl::MakeConstSpan(data, size));
  if (!g.ok()) return 0;
  Check(g->access() == 1 || g->access() == 3, "access");
  Check(g->entries_size() <= gasp::rt::kMaxKeyGrantEntries, "entry count");
  const std::vector<uint8_t> once = gasp::rt::EncodeKeyGrant(*g);
  absl::StatusOr<gasp::rt::KeyGrant> again = gasp::rt::DecodeKeyGrant(once);
  Check(again.ok(), "re-encoded grant decodes");
  Check(gasp::rt::EncodeKeyGrant(*again) == once, "round trip keeps the fields");
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  for (uint32_t n : {0u, 1u, 3u}) {
    gasp::rt::KeyGrant g = gasp::rt::MakeKeyGrant(n + 1, 2, n % 2 == 0 ? 3 : 1);
    for (uint32_t i = 0; i < n; ++i) {
      gasp::rt::KeyGrantEntry* e = g.add_entries();
      e->set_segment_offset(uint64_t{i} << 21);
      e->set_key(0x100000001ull * (i + 1));
    }
    std::vector<uint8_t> b = gasp::rt::EncodeKeyGrant(g);
    add(ctx, b.data(), b.size());
  }
}

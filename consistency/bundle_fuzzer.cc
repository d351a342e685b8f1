// Fuzz target for the page-bundle decoder (consistency/bundle.h): bytes a
// rank receives in a function-shipping request or reply.
// Checks, besides "no crash, no sanitizer report": what the decoder accepts
// re-encodes to the same bytes, except that a kind-0 page of zeros comes
// back as kind 1 (the writer's canonical form).
//   libFuzzer: bazel build --config=fuzz //consistency:bundle_fuzzer
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "consistency/bundle.h"

using gasp::consistency::BundleWriter;
using gasp::consistency::DecodeBundle;
using gasp::consistency::kBundlePageBytes;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto pages = DecodeBundle(absl::MakeConstSpan(data, size));
  if (!pages.ok()) return 0;
  static const std::vector<uint8_t> zeros(kBundlePageBytes, 0);
  BundleWriter w;
  for (const auto& p : *pages) {
    if (p.unchanged) {
      w.AddUnchanged(p.page, p.hash);
    } else {
      w.Add(p.page, p.data != nullptr ? p.data : zeros.data());
    }
  }
  std::string again = w.Finish();
  auto back = DecodeBundle(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(again.data()), again.size()));
  if (!back.ok() || back->size() != pages->size()) {
    std::fprintf(stderr, "bundle_fuzzer: re-encoded bundle does not decode the same\n");
    std::abort();
  }
  for (size_t i = 0; i < pages->size(); ++i) {
    const uint8_t* a = (*pages)[i].data != nullptr ? (*pages)[i].data : zeros.data();
    const uint8_t* b = (*back)[i].data != nullptr ? (*back)[i].data : zeros.data();
    if ((*back)[i].unchanged != (*pages)[i].unchanged || (*back)[i].hash != (*pages)[i].hash) {
      std::fprintf(stderr, "bundle_fuzzer: entry %zu changed kind in a round trip\n", i);
      std::abort();
    }
    if ((*back)[i].page != (*pages)[i].page || std::memcmp(a, b, kBundlePageBytes) != 0) {
      std::fprintf(stderr, "bundle_fuzzer: page %zu changed in a round trip\n", i);
      std::abort();
    }
  }
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  std::vector<uint8_t> page(kBundlePageBytes, 0);
  page[7] = 7;
  for (int n = 0; n < 3; ++n) {
    BundleWriter w;
    for (int i = 0; i < n; ++i) w.Add(i * 2, i % 2 == 0 ? page.data() : std::vector<uint8_t>(kBundlePageBytes, 0).data());
    w.AddUnchanged(100 + n, 0x1234 + n);
    std::string b = w.Finish();
    add(ctx, reinterpret_cast<const uint8_t*>(b.data()), b.size());
  }
}

// Fuzz target for the page-bundle decoder (consistency/bundle.h): bytes a
// rank receives in a function-shipping request or reply.
// Checks, besides "no crash, no sanitizer report": what the decoder accepts
// re-encodes to the same bytes, except that a kind-0 page of zeros comes
// back as kind 1 (the writer's canonical form); a diff (kind 3) keeps its
// hashes and runs, and patches a page the same way after the round trip.
//   libFuzzer: bazel build --config=fuzz //consistency:bundle_fuzzer
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "consistency/bundle.h"

using gasp::consistency::ApplyBundleDiff;
using gasp::consistency::BundledPage;
using gasp::consistency::BundleKind;
using gasp::consistency::BundleWriter;
using gasp::consistency::DecodeBundle;
using gasp::consistency::DiffRun;
using gasp::consistency::kBundlePageBytes;
using gasp::consistency::PageHash;

namespace {

[[noreturn]] void Fail(const char* what, size_t i) {
  std::fprintf(stderr, "bundle_fuzzer: entry %zu: %s\n", i, what);
  std::abort();
}

// The page a decoded entry stands for, from a base filled with `fill`
// (zeros for kind 1, the data for kind 0, the base patched for kind 3).
std::vector<uint8_t> Contents(const BundledPage& p, uint8_t fill, std::vector<DiffRun>* runs) {
  std::vector<uint8_t> page(kBundlePageBytes, p.kind == BundleKind::kZeros ? 0 : fill);
  if (p.kind == BundleKind::kFull) std::memcpy(page.data(), p.data, kBundlePageBytes);
  if (p.kind == BundleKind::kDiff) ApplyBundleDiff(p, page.data(), runs);
  return page;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto pages = DecodeBundle(absl::MakeConstSpan(data, size));
  if (!pages.ok()) return 0;
  BundleWriter w;
  for (const BundledPage& p : *pages) {
    if (p.kind == BundleKind::kUnchanged) {
      w.AddUnchanged(p.page, p.hash);
    } else if (p.kind == BundleKind::kDiff) {
      std::vector<DiffRun> runs;
      std::vector<uint8_t> patched = Contents(p, 0x5a, &runs);
      if (!w.AddDiffRuns(p.page, p.base_hash, p.hash, runs, patched.data())) {
        Fail("a decoded diff is not smaller than a page", &p - pages->data());
      }
    } else {
      w.Add(p.page, Contents(p, 0, nullptr).data());
    }
  }
  std::string again = w.Finish();
  auto back = DecodeBundle(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(again.data()), again.size()));
  if (!back.ok() || back->size() != pages->size()) {
    std::fprintf(stderr, "bundle_fuzzer: re-encoded bundle does not decode the same\n");
    std::abort();
  }
  const bool zero_full_page = [&] {
    for (const BundledPage& p : *pages) {
      if (p.kind == BundleKind::kFull && Contents(p, 0, nullptr) ==
                                             std::vector<uint8_t>(kBundlePageBytes, 0)) {
        return true;
      }
    }
    return false;
  }();
  if (!zero_full_page && (again.size() != size || std::memcmp(again.data(), data, size) != 0)) {
    std::fprintf(stderr, "bundle_fuzzer: the bundle does not re-encode to the same bytes\n");
    std::abort();
  }
  for (size_t i = 0; i < pages->size(); ++i) {
    const BundledPage& a = (*pages)[i];
    const BundledPage& b = (*back)[i];
    const bool zero_kinds = (a.kind == BundleKind::kFull || a.kind == BundleKind::kZeros) &&
                            (b.kind == BundleKind::kFull || b.kind == BundleKind::kZeros);
    if (a.kind != b.kind && !zero_kinds) Fail("changed kind in a round trip", i);
    if (a.page != b.page || a.hash != b.hash || a.base_hash != b.base_hash) {
      Fail("page or hashes changed in a round trip", i);
    }
    for (uint8_t fill : {uint8_t{0}, uint8_t{0xff}}) {
      if (Contents(a, fill, nullptr) != Contents(b, fill, nullptr)) {
        Fail("contents changed in a round trip", i);
      }
    }
    if (a.kind == BundleKind::kDiff) {
      // The receiver's check: the page patched from a copy with the base
      // hash is kept only if it has the new hash.
      std::vector<uint8_t> base(kBundlePageBytes, 0x5a), out(kBundlePageBytes);
      const bool kept = gasp::consistency::PatchedPage(a, base.data(), out.data());
      const bool should = PageHash(base.data()) == a.hash ||
                          (PageHash(base.data()) == a.base_hash &&
                           PageHash(Contents(a, 0x5a, nullptr).data()) == a.hash);
      if (kept != should) Fail("PatchedPage disagrees with the hashes", i);
    }
  }
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  std::vector<uint8_t> page(kBundlePageBytes, 0), zeros(kBundlePageBytes, 0);
  page[7] = 7;
  for (int n = 0; n < 3; ++n) {
    BundleWriter w;
    for (int i = 0; i < n; ++i) w.Add(i * 2, i % 2 == 0 ? page.data() : zeros.data());
    w.AddUnchanged(100 + n, 0x1234 + n);
    std::string b = w.Finish();
    add(ctx, reinterpret_cast<const uint8_t*>(b.data()), b.size());
  }
  // Diffs: one byte, sparse bytes (a tree's counters), a long run and
  // runs at both ends of the page, the first with matching hashes.
  std::vector<uint8_t> base(kBundlePageBytes, 0x5a);
  BundleWriter w;
  uint64_t p = 200;
  auto diff = [&](std::vector<uint8_t> now) {
    w.AddDiff(p++, base.data(), PageHash(base.data()), now.data(), PageHash(now.data()));
  };
  std::vector<uint8_t> one = base, sparse = base, ends = base;
  one[100] = 1;
  for (size_t i = 8; i < kBundlePageBytes; i += 32) sparse[i] += 1;
  for (size_t i = 1000; i < 1300; ++i) ends[i] ^= 0x33;
  ends[0] = 0;
  ends[kBundlePageBytes - 1] = 0;
  diff(one);
  diff(sparse);
  diff(ends);
  std::string b = w.Finish();
  add(ctx, reinterpret_cast<const uint8_t*>(b.data()), b.size());
}

// Page bundles: the pages a function-shipping call carries with its request
// or reply (docs/services.md), so the other side installs them instead of
// faulting them in. The sender bundles only pages it is the home of: a home
// copy receives every released write, so it is always current, and
// installing it can never take a reader backwards.
//
// Wire format (little endian):
//   u32 magic "GPGB"  u16 version (1)  u16 reserved (0)  u32 count  u32 reserved (0)
//   count x { u64 page (index in the global range)  u16 kind  u16 reserved (0)
//             u32 length  length bytes }
//   kind 0: a full page (length 4096); kind 1: a page of zeros (length 0).
// Pages are strictly increasing. Decoding is strict: anything else is
// DataLoss and nothing is returned.
#ifndef GASP_CONSISTENCY_BUNDLE_H_
#define GASP_CONSISTENCY_BUNDLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace gasp {
namespace consistency {

inline constexpr uint32_t kBundleMagic = 0x42475047;  // "GPGB"
inline constexpr uint16_t kBundleVersion = 1;
inline constexpr uint32_t kMaxBundlePages = 1u << 16;  // 256 MiB of pages
inline constexpr size_t kBundlePageBytes = 4096;

struct BundledPage {
  uint64_t page = 0;
  const uint8_t* data = nullptr;  // kBundlePageBytes bytes; nullptr: zeros
};

// Appends pages to a bundle under construction.
class BundleWriter {
 public:
  BundleWriter();
  // REQUIRES: pages strictly increasing, fewer than kMaxBundlePages.
  // `data` (kBundlePageBytes) is copied; an all-zero page is sent as kind 1.
  void Add(uint64_t page, const uint8_t* data);
  size_t pages() const { return count_; }
  // The encoded bundle (the writer may be reused after Clear).
  std::string Finish();

 private:
  std::string out_;
  uint32_t count_ = 0;
};

// Parses a bundle. The returned pointers point into `bytes`.
absl::StatusOr<std::vector<BundledPage>> DecodeBundle(absl::Span<const uint8_t> bytes);

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_BUNDLE_H_

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
//   kind 0: a full page (length 4096); kind 1: a page of zeros (length 0);
//   kind 2: unchanged since the sender last sent it to this receiver
//           (length 8: the PageHash of its contents). The receiver keeps its
//           cached copy if that copy has the same hash, else drops it (and
//           fetches the page from its home when touched), so a repeated call
//           with the same by-reference data moves 24 bytes per page, not 4 KiB.
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
  bool unchanged = false;         // kind 2: only `hash` is sent
  uint64_t hash = 0;
};

// A 64-bit hash of a page's contents, the same in every process and build
// (not cryptographic: it detects changes, it does not stop forgery).
uint64_t PageHash(const uint8_t* page);

// Appends pages to a bundle under construction.
class BundleWriter {
 public:
  // `expected_pages`: reserves room for that many full pages up front (a
  // bundle is large; growing it page by page would copy it repeatedly).
  explicit BundleWriter(size_t expected_pages = 0);
  // REQUIRES: pages strictly increasing, fewer than kMaxBundlePages.
  // `data` (kBundlePageBytes) is copied; an all-zero page is sent as kind 1.
  void Add(uint64_t page, const uint8_t* data);
  // An unchanged page (kind 2). Same ordering rule as Add.
  void AddUnchanged(uint64_t page, uint64_t hash);
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

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
//   kind 3: changed since the sender last sent it to this receiver, as the
//           bytes that differ from that copy: u64 base hash (PageHash of the
//           copy last sent), u64 new hash (PageHash of the page now), then
//           runs of changed bytes, each {varint skip, varint length, length
//           bytes}: `skip` counts the bytes from the end of the previous run
//           (from the start of the page for the first) to the run. Varints
//           are LEB128 in their shortest form; runs have at least one byte,
//           are apart by at least one byte (maximal), lie inside the page,
//           and there is at least one. length < 4096: a diff is sent only
//           when smaller than the page. The receiver applies it only to a
//           clean copy whose hash is the base hash, and keeps the result
//           only if it hashes to the new hash (a copy that already hashes
//           to the new hash is kept as it is); otherwise it drops its copy
//           (the page is fetched from its home when touched).
// Pages are strictly increasing. Decoding is strict: anything else is
// DataLoss and nothing is returned.
#ifndef GASP_CONSISTENCY_BUNDLE_H_
#define GASP_CONSISTENCY_BUNDLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "consistency/diff.h"

namespace gasp {
namespace consistency {

inline constexpr uint32_t kBundleMagic = 0x42475047;  // "GPGB"
inline constexpr uint16_t kBundleVersion = 1;
inline constexpr uint32_t kMaxBundlePages = 1u << 16;  // 256 MiB of pages
inline constexpr size_t kBundlePageBytes = 4096;

enum class BundleKind : uint16_t { kFull = 0, kZeros = 1, kUnchanged = 2, kDiff = 3 };

struct BundledPage {
  uint64_t page = 0;
  BundleKind kind = BundleKind::kFull;
  const uint8_t* data = nullptr;  // kFull: kBundlePageBytes bytes; nullptr otherwise
  uint64_t hash = 0;              // kUnchanged: the page's hash; kDiff: its hash after the change
  uint64_t base_hash = 0;         // kDiff: the hash of the copy the change applies to
  absl::Span<const uint8_t> runs;  // kDiff: the encoded runs (checked by DecodeBundle)
};

// A 64-bit hash of a page's contents, the same in every process and build
// (not cryptographic: it detects changes, it does not stop forgery).
// XXH3's loop over the page, with AVX2 where the CPU has it.
uint64_t PageHash(const uint8_t* page);
// The same value computed without AVX2 (tests compare the two).
uint64_t PageHashPortable(const uint8_t* page);

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
  // A changed page as the bytes where `data` differs from `base` (the copy
  // the receiver was last sent, whose PageHash is `base_hash`; `new_hash`
  // is PageHash(data)), if that is smaller than the full page. Returns
  // false, adding nothing, if it is not (or nothing differs). Same
  // ordering rule as Add.
  bool AddDiff(uint64_t page, const uint8_t* base, uint64_t base_hash, const uint8_t* data,
               uint64_t new_hash);
  // The same from runs already computed: `runs` of `data` (ascending,
  // maximal as ComputeDiff finds them, at least one, all inside the page).
  // Returns false, adding nothing, if their encoding is not smaller than
  // the page (DiffEntryBytes). AddDiff uses it; so does the fuzzer, to
  // encode decoded runs again.
  bool AddDiffRuns(uint64_t page, uint64_t base_hash, uint64_t new_hash,
                   absl::Span<const DiffRun> runs, const uint8_t* data);
  size_t pages() const { return count_; }
  // The encoded bundle (the writer may be reused after Clear).
  std::string Finish();

 private:
  std::string out_;
  uint32_t count_ = 0;
};

// Parses a bundle. The returned pointers point into `bytes`.
absl::StatusOr<std::vector<BundledPage>> DecodeBundle(absl::Span<const uint8_t> bytes);

// The payload bytes (after the 16-byte entry header) of a kind-3 entry
// with these runs; a diff is sent only when this is < kBundlePageBytes.
size_t DiffEntryBytes(absl::Span<const DiffRun> runs);

// Writes the runs of a decoded kDiff page over `page` (kBundlePageBytes: a
// copy of the base) and, if `runs` is not null, appends them to it.
// REQUIRES: `p` comes from DecodeBundle (its runs were checked there).
void ApplyBundleDiff(const BundledPage& p, uint8_t* page, std::vector<DiffRun>* runs = nullptr);

// What the receiver of a kDiff page checks: true, with `out`
// (kBundlePageBytes) holding the new contents, iff PageHash(copy) is the
// base hash and the patched page's PageHash is the new hash, or the copy
// already hashes to the new hash (it has the new contents: the receiver
// wrote them itself, through a reference, and released them to the home).
// On false, `out` holds nothing to install and the copy must be dropped.
bool PatchedPage(const BundledPage& p, const uint8_t* copy, uint8_t* out);

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_BUNDLE_H_

// Packed diff messages: the byte runs of one release that go to one home,
// in one message (or a few of bounded size), applied at the home by its
// diff thread with the checks of a one-sided WRITE (docs/protocol.md,
// "Packed diffs"). Decoded from the network: fuzzed by
// //consistency:diff_wire_fuzz_test.
//
// Message (little-endian):
//   u32 magic kDiffMagic, u32 records, u64 sequence, u64 remote key
//   records, each: u64 offset (from the range base), u16 length, u8 kind,
//   u8 zero, then
//     kind 0 (bytes):  `length` bytes, written to [offset, offset+length)
//     kind 1 (masked): ceil(length/8) mask bytes, then one byte for each set
//                      bit; byte j of [offset, offset+length) is written
//                      iff bit j is set (bits past `length` must be zero)
// Reply (kDiffAckTag): u32 magic kDiffAckMagic, u32 status (0: applied;
// else the message was refused and nothing of it was written), u64
// sequence, then the reason as text.
#ifndef GASP_CONSISTENCY_DIFF_WIRE_H_
#define GASP_CONSISTENCY_DIFF_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "consistency/diff.h"

namespace gasp {
namespace consistency {

inline constexpr uint32_t kDiffMagic = 0x46464944;     // "DIFF"
inline constexpr uint32_t kDiffAckMagic = 0x4b434144;  // "DACK"
inline constexpr size_t kDiffHeaderBytes = 24;
inline constexpr size_t kDiffRecordHeaderBytes = 12;
// Longest record: one page (records never cross pages).
inline constexpr uint32_t kMaxRecordBytes = 4096;

enum class RecordKind : uint8_t { kBytes = 0, kMasked = 1 };

// Builds one message. Not thread-safe; reusable after Finish.
class DiffWriter {
 public:
  void Start(uint64_t sequence, uint64_t rkey);
  // Adds the changed bytes of one page: `runs` (from ComputeDiff, offsets
  // within the page, ascending) of `page_bytes` (the page's current
  // contents) at range offset `page_offset`; picks per page whichever of
  // run records or one masked record is smaller.
  void AddPage(uint64_t page_offset, const uint8_t* page_bytes, absl::Span<const DiffRun> runs);
  // The same from per-word byte masks (ComputeWordMasks): `masks[w]` says
  // which bytes of word w of the page changed. Faster for dense diffs.
  void AddPageMasks(uint64_t page_offset, const uint8_t* page_bytes, const uint8_t* masks,
                    const WordMaskSummary& summary);
  size_t size() const { return out_.size(); }
  uint32_t records() const { return records_; }
  // The finished message (valid until the next Start).
  absl::Span<const uint8_t> Finish();

 private:
  void Put(const void* p, size_t n);
  std::vector<uint8_t> out_;
  uint32_t records_ = 0;
};

// One decoded record; `data` points into the message.
struct DiffRecord {
  uint64_t offset = 0;
  uint16_t length = 0;
  RecordKind kind = RecordKind::kBytes;
  const uint8_t* mask = nullptr;  // kMasked only
  const uint8_t* data = nullptr;
};

struct DiffMessage {
  uint64_t sequence = 0;
  uint64_t rkey = 0;
  std::vector<DiffRecord> records;
};

// Strict decoder: InvalidArgument naming the defect for a bad magic, a
// truncated or over-long message, an unknown kind, a non-zero pad byte, an
// empty or over-long record, a record that crosses a page boundary or
// leaves [0, range_bytes), or mask bits past the record's length.
absl::StatusOr<DiffMessage> DecodeDiff(absl::Span<const uint8_t> bytes, uint64_t range_bytes);

// Writes a decoded record into `base` (the range's first byte).
void ApplyRecord(const DiffRecord& r, uint8_t* base);

// Replies.
std::vector<uint8_t> EncodeDiffAck(uint64_t sequence, uint32_t status, const std::string& reason);
struct DiffAck {
  uint64_t sequence = 0;
  uint32_t status = 0;
  std::string reason;
};
absl::StatusOr<DiffAck> DecodeDiffAck(absl::Span<const uint8_t> bytes);

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_DIFF_WIRE_H_

// Byte-exact diffs of a dirty page against its twin.
//
// C++ allows different ranks to write adjacent bytes of one word between
// synchronizations, so a diff must never carry an unchanged byte: writing
// back an unchanged neighbour would overwrite another rank's write at the
// home. Pages are compared by 8-byte words for speed; each differing word
// is narrowed to its exact differing bytes, and runs are maximal sequences
// of differing bytes.
#ifndef GASP_CONSISTENCY_DIFF_H_
#define GASP_CONSISTENCY_DIFF_H_

#include <cstddef>
#include <cstdint>

namespace gasp {
namespace consistency {

struct DiffRun {
  uint32_t offset;  // from the start of the page
  uint32_t length;  // bytes, all differing from the twin
};

// Writes the runs where `page` differs from `twin` (both `length` bytes,
// length a multiple of 8, 8-byte aligned) into `out`, at most `max_runs`.
// Returns the number of runs found; if it exceeds max_runs, only the first
// max_runs were written and the caller should retry with a larger buffer
// (a 4 KiB page has at most 2048 runs).
size_t ComputeDiff(const uint8_t* page, const uint8_t* twin, size_t length, DiffRun* out,
                   size_t max_runs);

// One pass over a page that finds, for each 8-byte word, which of its
// bytes differ from the twin (bit i: byte i), without building runs: the
// input of a packed diff when the page has no long run.
struct WordMaskSummary {
  uint32_t changed_bytes = 0;
  uint32_t runs = 0;             // maximal runs of differing bytes
  uint32_t longest_full = 0;     // bytes in the longest stretch of fully differing words
  uint32_t first_word = 0;       // first and last word with a difference (if any)
  uint32_t last_word = 0;
};
// `masks` receives length/8 bytes. REQUIRES: as ComputeDiff.
WordMaskSummary ComputeWordMasks(const uint8_t* page, const uint8_t* twin, size_t length,
                                 uint8_t* masks);

// The runs of differing bytes that word masks describe (as ComputeDiff
// would find them); returns their number, writing at most max_runs.
size_t RunsFromWordMasks(const uint8_t* masks, size_t words, DiffRun* out, size_t max_runs);

// The most runs a page of `length` bytes can have.
inline constexpr size_t MaxDiffRuns(size_t length) { return (length + 1) / 2; }

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_DIFF_H_

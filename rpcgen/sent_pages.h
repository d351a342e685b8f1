// What a rank last sent each other rank in function-shipping bundles
// (pages.h), so that a page goes as little as the receiver needs:
//
//   unchanged since it was last sent to that rank  -> its hash only (kind 2);
//   changed, and a copy of what was last sent kept -> the bytes that differ
//                                                     from it (kind 3), when
//                                                     smaller than the page;
//   otherwise                                      -> the full page.
//
// Always correct: the receiver checks hashes and drops its copy when they
// do not match (consistency/bundle.h), so forgetting is only slower.
//
// Bounded memory. Hashes: at `capacity` pages in all, the table of the rank
// being added to is forgotten (every table, if the others alone fill the
// capacity), and those pages go in full once more. Copies: at most
// `copy_pages` pages (4 KiB each) over all ranks, allocated as they are
// needed; when they are all in use, the least recently sent one is given
// up (clock order), and its page goes in full the next time it changes.
#ifndef GASP_RPCGEN_SENT_PAGES_H_
#define GASP_RPCGEN_SENT_PAGES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "consistency/bundle.h"

namespace gasp {
namespace rpc {

class SentPages {
 public:
  // About 20 bytes per page remembered: the default bounds the hashes near
  // 20 MiB however many pages and ranks a job ships to.
  static constexpr size_t kDefaultCapacity = size_t{1} << 20;
  // GASP_SHIP_COPY_PAGES's default: 32 MiB of copies at most.
  static constexpr size_t kDefaultCopyPages = 8192;

  explicit SentPages(size_t capacity = kDefaultCapacity,
                     size_t copy_pages = kDefaultCopyPages);

  enum class Sent { kFull, kUnchanged, kDiff };

  // Appends `page`, whose contents are now `data` (4 KiB; read once, so a
  // concurrent writer cannot make the hash and the bytes sent disagree), to
  // bundle `w` for rank `rank` in the smallest form above, and records
  // what was sent. REQUIRES: w's ordering rule. Thread-safe.
  Sent Add(int rank, uint64_t page, const uint8_t* data, consistency::BundleWriter* w);

  // Pages whose hash is remembered now, and of those whose copy is kept,
  // over all ranks.
  size_t size() const;
  size_t copies() const;

 private:
  static constexpr uint32_t kNoSlot = ~uint32_t{0};
  static constexpr size_t kChunkPages = 64;  // copies are allocated 256 KiB at a time
  struct Entry {
    uint64_t hash = 0;
    uint32_t slot = kNoSlot;  // the copy of what was sent, if kept
  };
  struct Slot {
    int rank = -1;  // -1: free
    uint64_t page = 0;
    bool recent = false;  // sent from since the clock hand last passed
  };

  uint8_t* SlotBytes(uint32_t slot) {
    return chunks_[slot / kChunkPages].get() + (slot % kChunkPages) * consistency::kBundlePageBytes;
  }
  // A slot for a copy of `page` for `rank`, or kNoSlot when copies are off.
  uint32_t AllocSlotLocked(int rank, uint64_t page);
  void FreeSlotsLocked(const absl::flat_hash_map<uint64_t, Entry>& table);
  // Makes room for one more hash (see the class comment); returns the
  // table of `rank`, which may have been emptied.
  absl::flat_hash_map<uint64_t, Entry>* RoomForLocked(int rank);

  const size_t capacity_;
  const size_t copy_pages_;
  mutable std::mutex mu_;
  size_t total_ = 0;  // guarded by mu_
  absl::flat_hash_map<int, absl::flat_hash_map<uint64_t, Entry>> sent_;  // guarded by mu_
  std::vector<std::unique_ptr<uint8_t[]>> chunks_;  // guarded by mu_
  std::vector<Slot> slots_;                         // guarded by mu_
  std::vector<uint32_t> free_slots_;                // guarded by mu_
  size_t used_slots_ = 0;                           // guarded by mu_
  size_t hand_ = 0;                                 // guarded by mu_
  std::vector<consistency::DiffRun> runs_;          // guarded by mu_: scratch
  uint8_t now_[consistency::kBundlePageBytes];      // guarded by mu_: the page as read
};

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_SENT_PAGES_H_

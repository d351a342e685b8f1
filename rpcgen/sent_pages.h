// What a rank last sent each other rank in function-shipping bundles: page
// -> content hash, so that a page unchanged since goes as its hash only
// (pages.h). Bounded: at `capacity` pages in all, the table of the rank
// being added to is forgotten (every table, if the others alone fill the
// capacity), and those pages go in full once more. Always correct:
// "unchanged" is an optimization the receiver checks.
#ifndef GASP_RPCGEN_SENT_PAGES_H_
#define GASP_RPCGEN_SENT_PAGES_H_

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_map.h"

namespace gasp {
namespace rpc {

class SentPages {
 public:
  // About 20 bytes per page remembered: the default bounds the table near
  // 20 MiB however many pages and ranks a job ships to.
  static constexpr size_t kDefaultCapacity = size_t{1} << 20;

  explicit SentPages(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // True (and nothing recorded) if `page` went to `rank` with `hash` last
  // time; otherwise records it and returns false. A zero hash is never
  // "the same". Thread-safe.
  bool SameAsLast(int rank, uint64_t page, uint64_t hash);

  // Pages remembered now, over all ranks.
  size_t size() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  size_t total_ = 0;
  absl::flat_hash_map<int, absl::flat_hash_map<uint64_t, uint64_t>> sent_;
};

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_SENT_PAGES_H_

// The notice log: how a lock hand-off (or a release/acquire pair of
// atomics) carries the write notices of the releases that happened before
// it, transitively, without any CPU at the log's home.
//
// One ring of fixed-size entries (consistency/notices.h) in a collective
// allocation homed at rank 0, after a 64-byte header whose first word is the
// tail (entries ever appended). A release appends its notices: FETCH_ADD on
// the tail reserves slots, one WRITE (two at the ring's end) fills them,
// and only then is the lock word freed. An acquire reads the tail and the
// entries from its own position up to it with one READ, and invalidates the
// pages other ranks named. Every release that happened before the acquire
// completed its WRITE before the acquire's READ, so its entries are there;
// an entry that is not there yet (or is torn) belongs to a concurrent
// release, and the position stops before it so that it is read again later.
// A reader lapped by the writers (more than the ring's capacity behind)
// drops its whole cache instead: notices may have been overwritten.
#ifndef GASP_CONSISTENCY_NOTICE_LOG_H_
#define GASP_CONSISTENCY_NOTICE_LOG_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "consistency/coherence.h"
#include "consistency/notices.h"
#include "transport/transport.h"

namespace gasp {
namespace consistency {

class NoticeLog {
 public:
  // Header bytes before the ring.
  static constexpr uint64_t kHeaderBytes = 64;
  // Bytes of global memory a log of `entries` entries needs.
  static uint64_t BytesFor(uint64_t entries) { return kHeaderBytes + entries * sizeof(LogEntry); }

  // `addr`: the log's global address (allocated, homed at one rank, zero
  // filled); `entries`: the ring's capacity. All must outlive the log.
  NoticeLog(Coherence* coherence, transport::Transport* transport, int rank, int nranks,
            uint64_t addr, uint64_t entries, absl::Duration timeout,
            std::function<std::string(int)> describe_rank);

  // Appends the runs of `by_origin` (this rank's notices since its last
  // publication, and those of other ranks it relays for shipped calls),
  // each entry naming its origin. Returns once the entries are at the log's
  // home. Not thread-safe: the caller serializes publications and
  // collections of its process.
  absl::Status Publish(absl::Span<const Contribution> by_origin);

  // Reads the entries appended since the last call and invalidates the
  // pages other ranks named (everything, if the log lapped this reader).
  absl::Status Collect();
  // The same up to `tail` instead of the log's current tail (no FETCH_ADD):
  // a lock hand-off passes the releaser's known_tail(), which covers every
  // release that happened before the hand-off.
  absl::Status CollectTo(uint64_t tail);
  // Entries of every release this process knows to have happened: the
  // largest tail it collected up to or published to.
  uint64_t known_tail() const { return known_tail_; }

 private:
  absl::StatusOr<uint64_t> Tail(uint64_t add);
  absl::Status Transfer(transport::OpType type, uint64_t first_slot, uint64_t n, LogEntry* buf);

  Coherence* const coherence_;
  transport::Transport* const transport_;
  const int rank_;
  const int nranks_;
  const uint64_t addr_;
  const uint64_t entries_;
  const absl::Duration timeout_;
  const std::function<std::string(int)> describe_rank_;
  int home_ = 0;
  uint64_t position_ = 0;  // entries before it have been collected
  uint64_t known_tail_ = 0;
  std::vector<LogEntry> buf_;
  std::vector<PageRun> runs_;
};

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_NOTICE_LOG_H_

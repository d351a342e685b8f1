// Internal to the shm backend: the shared memory of one connection and the
// single-producer / single-consumer byte rings in it.
//
// A connection's segment is a sealed memfd the connector creates and passes
// to the acceptor over the unix socket (SCM_RIGHTS):
//   [0, kCtlBytes)                       control words of both rings
//   [kCtlBytes, +kRingBytes)             request ring: connector -> acceptor
//                                        (requests and messages)
//   [kCtlBytes + kRingBytes, +kRingBytes) response ring: acceptor -> connector
// Records (shm_wire.h) are written whole, then published by advancing the
// ring's tail; the consumer advances its head once done with one. Positions
// grow without bound; a byte's place is position % kRingBytes.
//
// Wake-ups: a consumer about to sleep sets consumer_sleeping and looks at
// the tail again (a Dekker pair with the producer's tail store and flag
// load, all seq_cst); the producer that finds the flag set clears it and
// rings the consumer's doorbell. A producer short of space sets
// producer_waiting the same way; the consumer then bumps space_seq and
// wakes it (a futex on a shared word, or the producer's doorbell).
//
// Nothing in the segment is trusted by the side that did not write it:
// the peer may scribble over it at any time. Positions that cannot be are
// reported as corruption (the caller drops the peer with kProtocolError),
// headers are copied out before they are decoded, and the memfd's size is
// sealed so the peer cannot truncate it under us (SIGBUS).
#ifndef GASP_TRANSPORT_SHM_RING_H_
#define GASP_TRANSPORT_SHM_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/shm_wire.h"

namespace gasp {
namespace transport {
namespace shm {

inline constexpr uint64_t kRingBytes = uint64_t{1} << 20;
inline constexpr size_t kCtlBytes = 4096;
inline constexpr size_t kSegmentBytes = kCtlBytes + 2 * kRingBytes;

// Control words of one ring, in shared memory (each on its own cache line).
struct RingCtl {
  alignas(64) std::atomic<uint64_t> tail;  // written by the producer
  alignas(64) std::atomic<uint64_t> head;  // written by the consumer
  alignas(64) std::atomic<uint32_t> consumer_sleeping;
  alignas(64) std::atomic<uint32_t> producer_waiting;
  std::atomic<uint32_t> space_seq;  // futex word: bumped when space was freed
  // Threads of the consumer's process sleeping on this ring themselves (a
  // Wait or Recv in GASP_WAIT_MODE=block or after its spin), and the futex
  // word the producer bumps for them instead of ringing the doorbell.
  alignas(64) std::atomic<uint32_t> direct_waiters;
  std::atomic<uint32_t> direct_seq;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared atomics must be lock-free");
static_assert(2 * sizeof(RingCtl) <= kCtlBytes, "control page too small");

// A mapped segment. Create: a new sealed memfd (connector side). Map: a
// received memfd, checked for size and seals (acceptor side). Unmaps and
// closes on destruction.
class Segment {
 public:
  static absl::StatusOr<Segment> Create(const char* name);
  static absl::StatusOr<Segment> Map(int memfd);
  Segment() = default;
  Segment(Segment&& o) noexcept;
  Segment& operator=(Segment&& o) noexcept;
  ~Segment();

  int fd() const { return fd_; }
  RingCtl* req_ctl() const;
  RingCtl* resp_ctl() const;
  uint8_t* req_data() const { return base_ + kCtlBytes; }
  uint8_t* resp_data() const { return base_ + kCtlBytes + kRingBytes; }
  // ThreadSanitizer: one address per ring that both mappings of the
  // memfd in this process agree on (null outside TSan builds).
  void* req_sync() const { return sync_; }
  void* resp_sync() const { return sync_ == nullptr ? nullptr : static_cast<char*>(sync_) + 1; }

 private:
  void Reset();
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  void* sync_ = nullptr;
};

// The producing side of one ring. One thread at a time (the caller
// serializes).
class RingProducer {
 public:
  RingProducer() = default;
  RingProducer(RingCtl* ctl, uint8_t* data, void* sync);

  // Free bytes in the ring; false when the consumer's head is impossible
  // (the peer corrupted it).
  bool Free(uint64_t* bytes) const;
  // Appends one record with h.length bytes of `payload` and publishes it.
  // REQUIRES: Free() >= RecordBytes(h.length).
  void Put(const RecordHeader& h, const uint8_t* payload);
  // After Put: wakes the consumer's threads that sleep on this ring
  // directly (shared futex) and returns false; otherwise true (and the
  // flag cleared) when the consumer's progress thread sleeps and its
  // doorbell must be rung.
  bool ConsumerNeedsWake();
  // Announces that this producer waits for space; returns the space_seq
  // value to wait on (check Free again before sleeping).
  uint32_t AnnounceWait();
  void ClearWait();
  const std::atomic<uint32_t>* space_word() const { return &ctl_->space_seq; }

 private:
  void CopyIn(const uint8_t* src, uint64_t n);
  RingCtl* ctl_ = nullptr;
  uint8_t* data_ = nullptr;
  void* sync_ = nullptr;
  uint64_t tail_ = 0;  // our copy; the shared one is only ever written
};

// The consuming side of one ring (one thread at a time).
class RingConsumer {
 public:
  enum class Next { kEmpty, kRecord, kCorrupt };

  RingConsumer() = default;
  RingConsumer(RingCtl* ctl, uint8_t* data, void* sync);

  // Looks at the next record: kRecord with its validated header in *h,
  // kEmpty, or kCorrupt with the reason in *why (a DataLoss status).
  Next Peek(RecordHeader* h, absl::Status* why);
  // Copies the peeked record's payload (h.length bytes) to `dst`.
  void CopyPayload(uint8_t* dst, uint64_t n) const;
  // Consumes the peeked record.
  void Pop();
  // True (and the flag cleared, space_seq bumped and futex-woken) when the
  // producer waits for space and must be told.
  bool ProducerNeedsWake();
  // Before sleeping: sets consumer_sleeping; true when a record arrived
  // meanwhile (then do not sleep). ClearSleep after waking. Both only touch
  // shared words: any thread may call them while another one consumes.
  bool AnnounceSleep() const;
  void ClearSleep() const;
  // Published bytes not consumed yet (0 when corrupt).
  uint64_t Pending() const;

  // A thread of this process about to sleep on the ring itself: announces
  // it and returns the direct_seq value to sleep on (look at the ring and
  // the condition again before sleeping). RetireDirect when done; then
  // true when records wait that nobody may have been told about.
  uint32_t AnnounceDirect() const;
  bool RetireDirect() const;
  const std::atomic<uint32_t>* direct_word() const { return &ctl_->direct_seq; }
  // After consuming (perhaps for others): wakes the threads sleeping on the
  // ring directly (their op may be done, their message in the inbox) when
  // there are more than `self` of them (1 when the caller is one).
  void WakeDirect(uint32_t self = 0) const;

 private:
  RingCtl* ctl_ = nullptr;
  uint8_t* data_ = nullptr;
  void* sync_ = nullptr;
  uint64_t head_ = 0;       // our copy
  uint64_t peeked_ = 0;     // bytes of the peeked record (0: none)
};

// Wakes every futex waiter on a word in shared memory (not FUTEX_PRIVATE).
void WakeShared(const std::atomic<uint32_t>* word);
// Sleeps while *word == value, at most until `deadline` (shared futex).
void SleepShared(const std::atomic<uint32_t>* word, uint32_t value, absl::Time deadline);

}  // namespace shm
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_SHM_RING_H_

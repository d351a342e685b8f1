#include "transport/shm_ring.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "absl/strings/str_format.h"
#include "base/status.h"

#if defined(__SANITIZE_THREAD__)
#define GASP_SHM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GASP_SHM_TSAN 1
#endif
#endif
#ifdef GASP_SHM_TSAN
extern "C" void __tsan_acquire(void* addr);  // NOLINT
extern "C" void __tsan_release(void* addr);  // NOLINT
#endif

namespace gasp {
namespace transport {
namespace shm {
namespace {

constexpr unsigned kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

// ThreadSanitizer sees the two mappings of a segment (in tests both ends
// live in one process) as unrelated memory, so a release on one and the
// acquire on the other would not order anything. Both ends agree on the
// memfd's inode; this gives each inode one pair of sync addresses.
void* SyncFor(int fd) {
#ifdef GASP_SHM_TSAN
  static std::mutex mu;
  static auto* by_inode = new std::unordered_map<ino_t, char*>();
  struct stat st {};
  if (fstat(fd, &st) != 0) return nullptr;
  std::lock_guard<std::mutex> l(mu);
  char*& sync = (*by_inode)[st.st_ino];
  if (sync == nullptr) sync = new char[2];
  return sync;
#else
  (void)fd;
  return nullptr;
#endif
}

void Release(void* sync) {
#ifdef GASP_SHM_TSAN
  if (sync != nullptr) __tsan_release(sync);
#else
  (void)sync;
#endif
}

void Acquire(void* sync) {
#ifdef GASP_SHM_TSAN
  if (sync != nullptr) __tsan_acquire(sync);
#else
  (void)sync;
#endif
}

// Copies between a ring and flat memory, wrapping at the ring's end.
void CopyFromRing(const uint8_t* ring, uint64_t pos, uint8_t* dst, uint64_t n) {
  const uint64_t at = pos % kRingBytes;
  const uint64_t first = std::min(n, kRingBytes - at);
  std::memcpy(dst, ring + at, first);
  if (n > first) std::memcpy(dst + first, ring, n - first);
}

}  // namespace

// ---------------------------------------------------------------------------
// Segment

absl::StatusOr<Segment> Segment::Create(const char* name) {
  Segment s;
  s.fd_ = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (s.fd_ < 0) return ErrnoError("shm transport: memfd_create", errno);
  if (ftruncate(s.fd_, kSegmentBytes) != 0) return ErrnoError("shm transport: ftruncate", errno);
  if (fcntl(s.fd_, F_ADD_SEALS, kSeals) != 0) {
    return ErrnoError("shm transport: sealing the ring memfd", errno);
  }
  void* p = mmap(nullptr, kSegmentBytes, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd_, 0);
  if (p == MAP_FAILED) return ErrnoError("shm transport: mmap of the rings", errno);
  s.base_ = static_cast<uint8_t*>(p);
  s.sync_ = SyncFor(s.fd_);
  return s;
}

absl::StatusOr<Segment> Segment::Map(int memfd) {
  Segment s;
  s.fd_ = memfd;
  struct stat st {};
  if (fstat(memfd, &st) != 0) return ErrnoError("shm transport: fstat of a peer's memfd", errno);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != kSegmentBytes) {
    return absl::DataLossError(absl::StrFormat(
        "the peer's ring memfd has %d bytes, expected %d", st.st_size, kSegmentBytes));
  }
  const int seals = fcntl(memfd, F_GET_SEALS);
  if (seals < 0 || (static_cast<unsigned>(seals) & F_SEAL_SHRINK) == 0) {
    return absl::DataLossError("the peer's ring memfd is not sealed against shrinking");
  }
  void* p = mmap(nullptr, kSegmentBytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (p == MAP_FAILED) return ErrnoError("shm transport: mmap of a peer's rings", errno);
  s.base_ = static_cast<uint8_t*>(p);
  s.sync_ = SyncFor(memfd);
  return s;
}

Segment::Segment(Segment&& o) noexcept { *this = std::move(o); }

Segment& Segment::operator=(Segment&& o) noexcept {
  if (this != &o) {
    Reset();
    fd_ = o.fd_;
    base_ = o.base_;
    sync_ = o.sync_;
    o.fd_ = -1;
    o.base_ = nullptr;
    o.sync_ = nullptr;
  }
  return *this;
}

Segment::~Segment() { Reset(); }

void Segment::Reset() {
  if (base_ != nullptr) munmap(base_, kSegmentBytes);
  if (fd_ >= 0) close(fd_);
  base_ = nullptr;
  fd_ = -1;
}

RingCtl* Segment::req_ctl() const { return reinterpret_cast<RingCtl*>(base_); }
RingCtl* Segment::resp_ctl() const { return reinterpret_cast<RingCtl*>(base_) + 1; }

// ---------------------------------------------------------------------------
// Producer

RingProducer::RingProducer(RingCtl* ctl, uint8_t* data, void* sync)
    : ctl_(ctl), data_(data), sync_(sync), tail_(ctl->tail.load(std::memory_order_relaxed)) {}

bool RingProducer::Free(uint64_t* bytes) const {
  const uint64_t used = tail_ - ctl_->head.load(std::memory_order_seq_cst);
  if (used > kRingBytes) return false;
  *bytes = kRingBytes - used;
  return true;
}

void RingProducer::CopyIn(const uint8_t* src, uint64_t n) {
  const uint64_t at = tail_ % kRingBytes;
  const uint64_t first = std::min(n, kRingBytes - at);
  std::memcpy(data_ + at, src, first);
  if (n > first) std::memcpy(data_, src + first, n - first);
  tail_ += n;
}

void RingProducer::Put(const RecordHeader& h, const uint8_t* payload) {
  uint8_t header[kRecordHeaderSize];
  EncodeRecord(h, header);
  const uint64_t end = tail_ + RecordBytes(h.length);
  CopyIn(header, sizeof(header));
  if (h.length > 0) CopyIn(payload, h.length);
  tail_ = end;  // skip the padding
  Release(sync_);
  ctl_->tail.store(tail_, std::memory_order_seq_cst);
}

bool RingProducer::ConsumerNeedsWake() {
  if (ctl_->direct_waiters.load(std::memory_order_seq_cst) != 0) {
    // The waiting thread consumes; it tells its progress thread about
    // anything it leaves behind (RetireDirect).
    ctl_->direct_seq.fetch_add(1, std::memory_order_seq_cst);
    WakeShared(&ctl_->direct_seq);
    return false;
  }
  if (ctl_->consumer_sleeping.load(std::memory_order_seq_cst) == 0) return false;
  return ctl_->consumer_sleeping.exchange(0, std::memory_order_seq_cst) != 0;
}

uint32_t RingProducer::AnnounceWait() {
  const uint32_t seq = ctl_->space_seq.load(std::memory_order_seq_cst);
  ctl_->producer_waiting.store(1, std::memory_order_seq_cst);
  return seq;
}

void RingProducer::ClearWait() { ctl_->producer_waiting.store(0, std::memory_order_relaxed); }

// ---------------------------------------------------------------------------
// Consumer

RingConsumer::RingConsumer(RingCtl* ctl, uint8_t* data, void* sync)
    : ctl_(ctl), data_(data), sync_(sync), head_(ctl->head.load(std::memory_order_relaxed)) {}

RingConsumer::Next RingConsumer::Peek(RecordHeader* h, absl::Status* why) {
  const uint64_t tail = ctl_->tail.load(std::memory_order_seq_cst);
  Acquire(sync_);
  const uint64_t avail = tail - head_;
  if (avail == 0) return Next::kEmpty;
  if (avail > kRingBytes || avail < kRecordHeaderSize) {
    *why = absl::DataLossError(absl::StrFormat(
        "ring tail %d is %d bytes past the head %d: not a whole record", tail, avail, head_));
    return Next::kCorrupt;
  }
  uint8_t header[kRecordHeaderSize];
  CopyFromRing(data_, head_, header, sizeof(header));
  absl::StatusOr<RecordHeader> decoded = DecodeRecord(absl::MakeConstSpan(header));
  if (!decoded.ok()) {
    *why = decoded.status();
    return Next::kCorrupt;
  }
  if (RecordBytes(decoded->length) > avail) {
    *why = absl::DataLossError(absl::StrFormat(
        "%s record of %d payload bytes but only %d bytes published",
        RecordTypeName(decoded->type), decoded->length, avail));
    return Next::kCorrupt;
  }
  *h = *decoded;
  peeked_ = RecordBytes(decoded->length);
  return Next::kRecord;
}

void RingConsumer::CopyPayload(uint8_t* dst, uint64_t n) const {
  if (n > 0) CopyFromRing(data_, head_ + kRecordHeaderSize, dst, n);
}

void RingConsumer::Pop() {
  head_ += peeked_;
  peeked_ = 0;
  ctl_->head.store(head_, std::memory_order_seq_cst);
}

bool RingConsumer::ProducerNeedsWake() {
  if (ctl_->producer_waiting.load(std::memory_order_seq_cst) == 0) return false;
  if (ctl_->producer_waiting.exchange(0, std::memory_order_seq_cst) == 0) return false;
  ctl_->space_seq.fetch_add(1, std::memory_order_seq_cst);
  WakeShared(&ctl_->space_seq);
  return true;
}

bool RingConsumer::AnnounceSleep() const {
  ctl_->consumer_sleeping.store(1, std::memory_order_seq_cst);
  // The shared head, not head_: another thread may be consuming (it
  // publishes head at every Pop).
  return ctl_->tail.load(std::memory_order_seq_cst) != ctl_->head.load(std::memory_order_seq_cst);
}

void RingConsumer::ClearSleep() const { ctl_->consumer_sleeping.store(0, std::memory_order_relaxed); }

uint64_t RingConsumer::Pending() const {
  const uint64_t avail = ctl_->tail.load(std::memory_order_seq_cst) - head_;
  return avail > kRingBytes ? 0 : avail;
}

uint32_t RingConsumer::AnnounceDirect() const {
  const uint32_t seq = ctl_->direct_seq.load(std::memory_order_seq_cst);
  ctl_->direct_waiters.fetch_add(1, std::memory_order_seq_cst);
  return seq;
}

bool RingConsumer::RetireDirect() const {
  ctl_->direct_waiters.fetch_sub(1, std::memory_order_seq_cst);
  return ctl_->tail.load(std::memory_order_seq_cst) != ctl_->head.load(std::memory_order_seq_cst);
}

void RingConsumer::WakeDirect(uint32_t self) const {
  if (ctl_->direct_waiters.load(std::memory_order_seq_cst) <= self) return;
  ctl_->direct_seq.fetch_add(1, std::memory_order_seq_cst);
  WakeShared(&ctl_->direct_seq);
}

// ---------------------------------------------------------------------------
// Futexes on shared words

void WakeShared(const std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<const uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr,
          nullptr, 0);
}

void SleepShared(const std::atomic<uint32_t>* word, uint32_t value, absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return;
  const timespec ts = absl::ToTimespec(left);
  const int saved = errno;
  syscall(SYS_futex, reinterpret_cast<const uint32_t*>(word), FUTEX_WAIT, value, &ts, nullptr, 0);
  errno = saved;
}

}  // namespace shm
}  // namespace transport
}  // namespace gasp

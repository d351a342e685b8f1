// Internal to the tcp backend: this rank's registered regions, checked on
// every incoming request the way a NIC checks its memory translation table.
//
// rkey = 64 random bits from the kernel's CSPRNG, fresh for every
// registration and mapped to the region's slot here: a peer that was not
// handed a key cannot guess one (2^64 tries per region), and a stale rkey
// of a deregistered (or re-registered) region is refused. Requests that touch memory over several progress-loop
// iterations (a WRITE payload arriving in pieces, a READ response waiting in
// an output queue) pin the region; Deregister waits for the pins to drain,
// like deregistering memory waits for in-flight DMA.
#ifndef GASP_TRANSPORT_TCP_REGION_TABLE_H_
#define GASP_TRANSPORT_TCP_REGION_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace tcp {

class RegionTable {
 public:
  explicit RegionTable(size_t capacity);
  RegionTable(const RegionTable&) = delete;
  RegionTable& operator=(const RegionTable&) = delete;

  // Registers [addr, addr+length) with `access` (Access bits).
  // Errors: InvalidArgument (null/zero-length/wrapping range, unknown
  // access bits), ResourceExhausted (table full).
  absl::StatusOr<Region> Register(void* addr, size_t length, uint32_t access);

  // Makes later requests on `region` fail, then waits (when `wait`) until
  // no request still uses its memory, at most until `deadline`.
  // Errors: NotFound (not registered), DeadlineExceeded (still pinned).
  absl::Status Deregister(const Region& region, absl::Time deadline, bool wait);

  // Checks that `rkey` names a live region granting `access` and covering
  // [addr, addr+length). On success returns kSuccess, the local address in
  // `*ptr` and a pin in `*pin` that the caller must Unpin() once it no
  // longer touches the memory. Otherwise kRemoteAccessError.
  CompletionCode Pin(uint64_t rkey, uint64_t addr, uint64_t length, uint32_t access,
                     uint8_t** ptr, uint32_t* pin);
  void Unpin(uint32_t pin);

  // Executes an 8-byte CAS or FETCH_ADD (`type`) on the word at `addr` with
  // the same checks (kRemoteAtomic), using __atomic builtins so it is
  // atomic with the target's CPU atomics too. `*old` receives the previous
  // value on success.
  CompletionCode Atomic(OpType type, uint64_t rkey, uint64_t addr, uint64_t compare,
                        uint64_t operand, uint64_t* old);

 private:
  struct Entry {
    bool valid = false;
    uint64_t key = 0;
    uintptr_t base = 0;
    size_t length = 0;
    uint32_t access = 0;
    std::atomic<uint32_t> pins{0};
    // Deregister is waiting for the pins to drain: only then does the last
    // Unpin make the futex call that wakes it.
    std::atomic<uint32_t> draining{0};
  };

  // Finds the entry for `rkey` and checks bounds and rights; nullptr when
  // the request must be refused. REQUIRES: mu_ held (reader is enough).
  Entry* Check(uint64_t rkey, uint64_t addr, uint64_t length, uint32_t access)
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  std::unique_ptr<Entry[]> entries_;  // region id = index + 1
  std::shared_mutex mu_;  // readers: request checks; writer: (de)registration
  std::vector<uint32_t> free_ids_ ABSL_GUARDED_BY(mu_);
  // rkey -> region id of every valid entry.
  absl::flat_hash_map<uint64_t, uint32_t> ids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TCP_REGION_TABLE_H_

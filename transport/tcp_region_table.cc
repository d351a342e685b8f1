#include "transport/tcp_region_table.h"

#include <mutex>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"
#include "base/crypto.h"
#include "base/wait.h"

namespace gasp {
namespace transport {
namespace tcp {

RegionTable::RegionTable(size_t capacity) : capacity_(capacity), entries_(new Entry[capacity]) {
  std::unique_lock<std::shared_mutex> l(mu_);
  free_ids_.reserve(capacity);
  for (size_t i = capacity; i > 0; --i) free_ids_.push_back(static_cast<uint32_t>(i));
}

absl::StatusOr<Region> RegionTable::Register(void* addr, size_t length, uint32_t access) {
  if (addr == nullptr || length == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot register %p with length %d: need a non-null, non-empty range",
                        addr, length));
  }
  const uintptr_t base = reinterpret_cast<uintptr_t>(addr);
  if (base + length < base) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot register %p with length %d: the range wraps around", addr, length));
  }
  if ((access & ~static_cast<uint32_t>(kRemoteAll)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown access bits 0x%x in a registration", access));
  }
  std::unique_lock<std::shared_mutex> l(mu_);
  if (free_ids_.empty()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "all %d region slots of the tcp transport are registered; deregister unused regions",
        capacity_));
  }
  const uint32_t id = free_ids_.back();
  free_ids_.pop_back();
  Entry& e = entries_[id - 1];
  uint64_t key = 0;
  while (key == 0 || ids_.contains(key)) key = RandomU64();
  ids_[key] = id;
  e.valid = true;
  e.key = key;
  e.base = base;
  e.length = length;
  e.access = access;
  Region r;
  r.id = id;
  r.addr = addr;
  r.length = length;
  r.access = access;
  r.rkey.packed = key;
  return r;
}

absl::Status RegionTable::Deregister(const Region& region, absl::Time deadline, bool wait) {
  Entry* e = nullptr;
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    if (region.id == 0 || region.id > capacity_) {
      return absl::NotFoundError(absl::StrFormat("region id %d is not a tcp registration", region.id));
    }
    e = &entries_[region.id - 1];
    if (!e->valid || e->key != region.rkey.packed) {
      return absl::NotFoundError(absl::StrFormat(
          "region id %d (rkey 0x%x) is not registered (deregistered twice?)", region.id,
          region.rkey.packed));
    }
    e->valid = false;  // from here on every request on it is refused
    ids_.erase(e->key);
  }
  if (wait) {
    e->draining.fetch_add(1, std::memory_order_seq_cst);
    absl::Cleanup done = [e] { e->draining.fetch_sub(1, std::memory_order_seq_cst); };
    for (uint32_t pins = e->pins.load(std::memory_order_seq_cst); pins != 0;
         pins = e->pins.load(std::memory_order_seq_cst)) {
      if (!WaitWhileEqual(&e->pins, pins, deadline) && absl::Now() >= deadline) {
        // The id is not reused: the late request still holds a pin on it.
        return absl::DeadlineExceededError(absl::StrFormat(
            "region %p (%d bytes) is still used by %d incoming remote operation(s) after the "
            "deadline (GASP_TIMEOUT); it is no longer accessible remotely but its id is retired",
            region.addr, region.length, e->pins.load()));
      }
    }
  } else if (e->pins.load(std::memory_order_acquire) != 0) {
    return absl::OkStatus();  // retire the id: a pin is still out
  }
  std::unique_lock<std::shared_mutex> l(mu_);
  free_ids_.push_back(static_cast<uint32_t>(region.id));
  return absl::OkStatus();
}

RegionTable::Entry* RegionTable::Check(uint64_t rkey, uint64_t addr, uint64_t length,
                                       uint32_t access) {
  const auto it = ids_.find(rkey);
  if (it == ids_.end()) return nullptr;
  Entry* e = &entries_[it->second - 1];
  if (!e->valid || e->key != rkey) return nullptr;
  if ((e->access & access) != access) return nullptr;
  // Overflow-safe: addr in [base, base+len] and length <= base+len-addr.
  if (addr < e->base) return nullptr;
  const uint64_t offset = addr - e->base;
  if (offset > e->length || length > e->length - offset) return nullptr;
  return e;
}

CompletionCode RegionTable::Pin(uint64_t rkey, uint64_t addr, uint64_t length, uint32_t access,
                                uint8_t** ptr, uint32_t* pin) {
  std::shared_lock<std::shared_mutex> l(mu_);
  Entry* e = Check(rkey, addr, length, access);
  if (e == nullptr) return CompletionCode::kRemoteAccessError;
  e->pins.fetch_add(1, std::memory_order_acq_rel);
  *ptr = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(addr));
  *pin = static_cast<uint32_t>(e - entries_.get()) + 1;  // the region id
  return CompletionCode::kSuccess;
}

void RegionTable::Unpin(uint32_t pin) {
  Entry* e = &entries_[pin - 1];
  // Both sides seq_cst: either this sees the drainer, or the drainer's
  // next load of pins sees this decrement.
  if (e->pins.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      e->draining.load(std::memory_order_seq_cst) != 0) {
    WakeAll(&e->pins);
  }
}

CompletionCode RegionTable::Atomic(OpType type, uint64_t rkey, uint64_t addr, uint64_t compare,
                                   uint64_t operand, uint64_t* old) {
  if (addr % 8 != 0) return CompletionCode::kRemoteAccessError;
  // Executed under the reader lock: Deregister (a writer) cannot finish
  // while the word is being modified.
  std::shared_lock<std::shared_mutex> l(mu_);
  if (Check(rkey, addr, 8, kRemoteAtomic) == nullptr) return CompletionCode::kRemoteAccessError;
  auto* word = reinterpret_cast<uint64_t*>(static_cast<uintptr_t>(addr));
  if (type == OpType::kCompareSwap) {
    uint64_t expected = compare;
    __atomic_compare_exchange_n(word, &expected, operand, /*weak=*/false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    *old = expected;  // the value seen: equals `compare` iff the swap happened
  } else {
    *old = __atomic_fetch_add(word, operand, __ATOMIC_SEQ_CST);
  }
  return CompletionCode::kSuccess;
}

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#include "rpcgen/sent_pages.h"

#include <algorithm>
#include <cstring>

namespace gasp {
namespace rpc {

using consistency::kBundlePageBytes;
using consistency::PageHash;

SentPages::SentPages(size_t capacity, size_t copy_pages)
    : capacity_(capacity),
      copy_pages_(std::min<size_t>(copy_pages, kNoSlot)),
      runs_(consistency::MaxDiffRuns(kBundlePageBytes)) {}

SentPages::Sent SentPages::Add(int rank, uint64_t page, const uint8_t* data,
                               consistency::BundleWriter* w) {
  std::lock_guard<std::mutex> lock(mu_);
  auto* table = &sent_[rank];
  auto it = table->find(page);
  if (it == table->end()) {
    table = RoomForLocked(rank);
    it = table->emplace(page, Entry{}).first;
    ++total_;
  } else if (it->second.slot != kNoSlot) {
    // A copy of what the receiver was sent: send what differs from it.
    Entry& e = it->second;
    uint8_t* copy = SlotBytes(e.slot);
    slots_[e.slot].recent = true;
    if (std::memcmp(copy, data, kBundlePageBytes) == 0) {  // faster than any diff
      w->AddUnchanged(page, e.hash);
      return Sent::kUnchanged;
    }
    std::memcpy(now_, data, kBundlePageBytes);  // diffed, hashed and sent as read once
    const size_t n = consistency::ComputeDiff(now_, copy, kBundlePageBytes, runs_.data(),
                                              runs_.size());
    if (n == 0) {  // changed back since the comparison above
      w->AddUnchanged(page, e.hash);
      return Sent::kUnchanged;
    }
    const uint64_t hash = PageHash(now_);
    const bool diff =
        w->AddDiffRuns(page, e.hash, hash, absl::MakeConstSpan(runs_.data(), n), now_);
    if (!diff) w->Add(page, now_);
    std::memcpy(copy, now_, kBundlePageBytes);
    e.hash = hash;
    return diff ? Sent::kDiff : Sent::kFull;
  }
  // New, or only its hash remembered: keep a copy from now on.
  Entry& e = it->second;
  std::memcpy(now_, data, kBundlePageBytes);  // hashed and sent as read once
  const uint64_t hash = PageHash(now_);
  const bool same = hash == e.hash && hash != 0;
  e.hash = hash;
  e.slot = AllocSlotLocked(rank, page);
  if (e.slot != kNoSlot) std::memcpy(SlotBytes(e.slot), now_, kBundlePageBytes);
  if (same) {
    w->AddUnchanged(page, hash);
    return Sent::kUnchanged;
  }
  w->Add(page, now_);
  return Sent::kFull;
}

uint32_t SentPages::AllocSlotLocked(int rank, uint64_t page) {
  if (copy_pages_ == 0) return kNoSlot;
  uint32_t s;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else if (slots_.size() < copy_pages_) {
    s = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
    if (s % kChunkPages == 0) {
      // Not value-initialized: the memory is touched only as copies land.
      chunks_.emplace_back(new uint8_t[kChunkPages * kBundlePageBytes]);
    }
  } else {
    // Clock: pass over the copies sent from since the hand last came by;
    // give up the first one that was not.
    for (;;) {
      Slot& c = slots_[hand_];
      s = static_cast<uint32_t>(hand_);
      hand_ = (hand_ + 1) % slots_.size();
      if (c.recent) {
        c.recent = false;
        continue;
      }
      sent_.find(c.rank)->second.find(c.page)->second.slot = kNoSlot;
      --used_slots_;
      break;
    }
  }
  slots_[s] = Slot{rank, page, true};
  ++used_slots_;
  return s;
}

void SentPages::FreeSlotsLocked(const absl::flat_hash_map<uint64_t, Entry>& table) {
  for (const auto& [page, e] : table) {
    if (e.slot == kNoSlot) continue;
    slots_[e.slot] = Slot{};
    free_slots_.push_back(e.slot);
    --used_slots_;
  }
}

absl::flat_hash_map<uint64_t, SentPages::Entry>* SentPages::RoomForLocked(int rank) {
  auto* table = &sent_[rank];
  if (total_ < capacity_) return table;
  // Forget this rank's table: its pages go in full once more. (Dropping
  // the table being grown, not another rank's, keeps a rank that ships a
  // working set that fits from losing it to one that does not.) If the
  // others alone fill the capacity, forget everything.
  FreeSlotsLocked(*table);
  total_ -= table->size();
  table->clear();
  if (total_ >= capacity_) {
    for (const auto& [r, t] : sent_) FreeSlotsLocked(t);
    sent_.clear();
    total_ = 0;
    table = &sent_[rank];
  }
  return table;
}

size_t SentPages::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

size_t SentPages::copies() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_slots_;
}

}  // namespace rpc
}  // namespace gasp

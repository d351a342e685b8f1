#include "rpcgen/sent_pages.h"

namespace gasp {
namespace rpc {

bool SentPages::SameAsLast(int rank, uint64_t page, uint64_t hash) {
  std::lock_guard<std::mutex> lock(mu_);
  auto* table = &sent_[rank];
  auto it = table->find(page);
  if (it != table->end()) {
    if (it->second == hash && hash != 0) return true;
    it->second = hash;
    return false;
  }
  if (total_ >= capacity_) {
    // Forget this rank's table: its pages go in full once more. (Dropping
    // the table being grown, not another rank's, keeps a rank that ships
    // a working set that fits from losing it to one that does not.) If the
    // others alone fill the capacity, forget everything.
    total_ -= table->size();
    table->clear();
    if (total_ >= capacity_) {
      sent_.clear();
      total_ = 0;
      table = &sent_[rank];
    }
  }
  table->emplace(page, hash);
  ++total_;
  return false;
}

size_t SentPages::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

}  // namespace rpc
}  // namespace gasp

#include "base/log_limit.h"

namespace gasp {

bool LogLimiter::Allow(absl::Time now, uint64_t* held_back) {
  std::lock_guard<std::mutex> lock(mu_);
  if (now - last_ < interval_) {
    ++held_back_;
    return false;
  }
  last_ = now;
  *held_back = held_back_;
  held_back_ = 0;
  return true;
}

}  // namespace gasp

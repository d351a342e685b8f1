// Rate-limited logging for causes an outsider can repeat at will (garbage
// connections, descriptor exhaustion): one line per cause per interval,
// carrying the count of the lines held back since the last one, so that a
// flood costs a few lines instead of a full disk.
#ifndef GASP_BASE_LOG_LIMIT_H_
#define GASP_BASE_LOG_LIMIT_H_

#include <cstdint>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gasp {

class LogLimiter {
 public:
  explicit LogLimiter(absl::Duration interval = absl::Seconds(10)) : interval_(interval) {}

  // True when a line may be written at `now`; `*held_back` is then the
  // number of lines refused since the previous one. Thread-safe.
  bool Allow(absl::Time now, uint64_t* held_back);
  bool Allow(uint64_t* held_back) { return Allow(absl::Now(), held_back); }

 private:
  const absl::Duration interval_;
  std::mutex mu_;
  absl::Time last_ = absl::InfinitePast();
  uint64_t held_back_ = 0;
};

}  // namespace gasp

#endif  // GASP_BASE_LOG_LIMIT_H_

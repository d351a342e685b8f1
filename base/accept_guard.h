// Accepting connections from anyone, shared by every gasp listener (the tcp
// transport, gasprun's coordinator, the function-shipping server's preface
// gate): an outsider may open connections at will, so
//
//  * AcceptGuard never spins: at EMFILE/ENFILE it sheds the waiting
//    connection with a spare descriptor; when it has none left, or accept
//    fails otherwise, it tells the caller to stop watching the listener for
//    a while; each cause is logged at most once per 10 s with a count;
//  * SourceCaps counts connections that have not proven anything yet, per
//    source address and in all, so that no source and no flood can hold
//    more than a bounded number of them.
#ifndef GASP_BASE_ACCEPT_GUARD_H_
#define GASP_BASE_ACCEPT_GUARD_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "base/log_limit.h"

namespace gasp {

struct AcceptedConn {
  int fd = -1;       // non-blocking, close-on-exec; the caller owns it
  uint32_t ip = 0;   // IPv4 source address, host byte order
  uint16_t port = 0;
};

class AcceptGuard {
 public:
  // `what` names the listener in log lines ("tcp transport"). Opens the
  // spare descriptor.
  explicit AcceptGuard(std::string what);
  ~AcceptGuard();
  AcceptGuard(const AcceptGuard&) = delete;
  AcceptGuard& operator=(const AcceptGuard&) = delete;

  // The next connection waiting on the non-blocking IPv4 `listen_fd`, or
  // nullopt: the queue is empty, or the caller must not watch the listener
  // before paused_until().
  std::optional<AcceptedConn> Next(int listen_fd);

  // When the listener may be watched again; InfinitePast when it may now.
  absl::Time paused_until() const { return paused_until_; }

  // Logs "<what>: refusing a connection from <peer>: <why>" at most once
  // per 10 s with the count of lines held back (for the caller's caps).
  void LogRefusal(const std::string& peer, const std::string& why);

 private:
  void Pause(const char* why, int err);

  const std::string what_;
  int spare_ = -1;
  absl::Time paused_until_ = absl::InfinitePast();
  LogLimiter shed_log_, refuse_log_;
};

class SourceCaps {
 public:
  SourceCaps(int per_source, int total) : per_source_(per_source), total_cap_(total) {}

  // Counts a connection from `ip` and returns true, or returns false (and
  // counts nothing) when `ip` or everybody is at the cap.
  bool Admit(uint32_t ip);
  // The connection from `ip` proved itself or closed.
  void Release(uint32_t ip);

  int total() const { return total_; }
  int from(uint32_t ip) const;

 private:
  const int per_source_, total_cap_;
  int total_ = 0;
  absl::flat_hash_map<uint32_t, int> by_source_;
};

// "a.b.c.d:port" of an address in host byte order.
std::string FormatIpv4(uint32_t ip, uint16_t port);

// TCP_NODELAY: gasp's requests and control messages are small and
// latency-bound.
void SetNoDelay(int fd);

}  // namespace gasp

#endif  // GASP_BASE_ACCEPT_GUARD_H_

// What the software backends (tcp, shm) know about each peer's liveness,
// and the peer-failure notifications they owe the application: a peer is
// alive, departed (it said goodbye) or failed (with the completion code its
// ops get), and each failure is reported once to the PeerFailureHandler.
#ifndef GASP_TRANSPORT_PEER_FAILURES_H_
#define GASP_TRANSPORT_PEER_FAILURES_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

class PeerFailures {
 public:
  // `size` peers, all alive; `backend` ("tcp") prefixes the log lines.
  PeerFailures(int size, std::string backend);

  // kSuccess while `peer` is alive; kPeerUnreachable once it departed;
  // the code it failed with otherwise. Lock-free.
  CompletionCode FailCode(int peer) const;

  // Marks an alive `peer` failed with `code` (atomically with the code),
  // logs `why` (an error for kProtocolError, else a warning) and queues
  // the notification. False (and nothing done) when it was not alive.
  bool MarkFailed(int peer, CompletionCode code, const absl::Status& why);
  // Marks an alive `peer` departed (no notification); false otherwise.
  bool MarkDeparted(int peer);

  // Replaces the handler.
  void SetHandler(PeerFailureHandler handler);
  // Calls the handler for every queued notification (the caller's thread;
  // without a handler they are dropped: already logged).
  void Deliver();
  // Drops the queued notifications (shutdown).
  void Clear();

 private:
  // state | code << 8, so a reader never sees "failed" without its code.
  static constexpr int kAlive = 0;
  static constexpr int kDeparted = 1;
  static constexpr int kFailed = 2;

  const std::string backend_;
  std::unique_ptr<std::atomic<int>[]> state_;
  std::mutex mu_;
  PeerFailureHandler handler_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int, absl::Status>> queued_ ABSL_GUARDED_BY(mu_);
};

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_PEER_FAILURES_H_

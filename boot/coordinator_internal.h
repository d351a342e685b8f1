// Internal to the coordinator (boot/coordinator.h): the server's state and
// the helpers its files share. coordinator_server.cc: the socket side
// (accepting, reading, writing, timers, the server thread) and the public
// Coordinator methods; coordinator_rounds.cc: the protocol (HELLO,
// collectives, deaths and aborts); coordinator_client.cc: the rank side.
#ifndef GASP_BOOT_COORDINATOR_INTERNAL_H_
#define GASP_BOOT_COORDINATOR_INTERNAL_H_

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "base/accept_guard.h"
#include "base/log_limit.h"
#include "boot/coordinator.h"
#include "boot/coordinator_wire.h"
#include "boot/net.h"

namespace gasp {
namespace boot {
namespace coord {
// How long a client waits past its own deadline for the coordinator's
// explanation of a failed round (which names the missing ranks).
inline constexpr absl::Duration kReplyGrace = absl::Milliseconds(500);
// A refused connection gets this long to receive its ERROR frame.
inline constexpr absl::Duration kCloseFlushTimeout = absl::Seconds(1);
inline constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one connection per poll round (fairness).
inline constexpr size_t kMaxReadPerRound = 4 * kReadChunk;
// Connections that have not sent HELLO yet, beyond the job size.
inline constexpr size_t kMaxPendingConnections = 1024;
// Failed rounds remembered to answer late contributors.
inline constexpr size_t kMaxFailedRoundsKept = 64;
// Largest wait a rank may ask for (a week, like GASP_TIMEOUT's bound).
inline constexpr int64_t kMaxWaitMs = int64_t{7} * 24 * 3600 * 1000;

inline std::string DurationText(int64_t ms) { return absl::FormatDuration(absl::Milliseconds(ms)); }

// "1", "1, 3, 5", "0, 1, 2, 3, 4, 5, 6, 7, ... (40 ranks in all)"
inline std::string JoinRanks(const std::vector<std::string>& items) {
  constexpr size_t kShown = 8;
  if (items.size() <= kShown) return absl::StrJoin(items, ", ");
  std::vector<std::string> head(items.begin(), items.begin() + kShown);
  return absl::StrCat(absl::StrJoin(head, ", "), ", ... (", items.size(), " ranks in all)");
}

inline void WakeEventFd(int fd) {
  uint64_t one = 1;
  ssize_t rc;
  do {
    rc = write(fd, &one, sizeof(one));
  } while (rc < 0 && errno == EINTR);
}

inline void DrainEventFd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof(v)) > 0) {
  }
}

}  // namespace coord

struct Coordinator::Impl {
  enum class SlotState { kAbsent, kConnected, kFinalized, kDied, kAborted };

  struct Conn {
    uint64_t id = 0;
    UniqueFd fd;
    std::string peer;  // "a.b.c.d:port"
    std::string in;
    std::deque<std::shared_ptr<const std::string>> out;
    size_t out_offset = 0;
    int rank = -1;  // set once HELLO is accepted
    absl::Time hello_deadline = absl::InfiniteFuture();
    bool closing = false;  // refused: close once the ERROR frame is out
    absl::Time close_deadline = absl::InfiniteFuture();
    bool gone = false;  // to be closed at the end of this poll round
  };

  struct Slot {
    SlotState state = SlotState::kAbsent;
    uint64_t conn_id = 0;  // 0 when not connected
    std::string host;
    int pid = 0;
    int64_t timeout_ms = 0;
    // Connection dropped without FINALIZE; RANK_DIED goes out at
    // lost_report_at unless NotifyRankDied brings the real cause first.
    bool lost_pending = false;
    absl::Time lost_report_at = absl::InfiniteFuture();
    std::string lost_reason;
  };

  struct Round {
    wire::CollectiveKind kind = wire::COLLECTIVE_ALLGATHER;
    int first_rank = -1;
    std::vector<std::optional<std::string>> blobs;
    int count = 0;
    size_t total_bytes = 0;
    absl::Time deadline = absl::InfiniteFuture();
    int64_t timeout_ms = 0;  // GASP_TIMEOUT of the rank that set the deadline
  };

  CoordinatorOptions opts;
  UniqueFd listen_fd;
  UniqueFd wake_fd;
  // A spare descriptor: at EMFILE it is closed to accept and drop the
  // waiting connection, so the listener does not stay readable and spin.
  AcceptGuard accept_guard{"coordinator"};
  LogLimiter refuse_log;  // ERRORs sent to processes that are not (yet) ranks
  int port = 0;
  std::string address;
  std::thread thread;

  mutable std::mutex mu;
  // Signalled after every poll round of the server thread and on Stop, for
  // WaitAllLeft and AbortJob.
  std::condition_variable cv;
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::map<uint64_t, std::unique_ptr<Conn>> conns ABSL_GUARDED_BY(mu);
  uint64_t next_conn_id ABSL_GUARDED_BY(mu) = 1;
  std::vector<Slot> slots ABSL_GUARDED_BY(mu);
  int terminal_count ABSL_GUARDED_BY(mu) = 0;  // finalized + died + aborted
  std::map<uint64_t, Round> rounds ABSL_GUARDED_BY(mu);
  std::map<uint64_t, wire::AllgatherFail> failed_rounds ABSL_GUARDED_BY(mu);
  std::string failure ABSL_GUARDED_BY(mu);
  int failure_rank ABSL_GUARDED_BY(mu) = -1;
  std::string job_id ABSL_GUARDED_BY(mu);
  std::deque<std::pair<int, std::string>> notified ABSL_GUARDED_BY(mu);
  std::vector<std::pair<uint64_t, std::string>> lost_conns ABSL_GUARDED_BY(mu);

  // ---- helpers (all with mu held) ----

  std::string Who(int rank) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  static bool Terminal(SlotState s);

  void SetState(int rank, SlotState st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  Conn* FindConn(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void MarkGone(Conn* c, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void TryFlush(Conn* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void Send(Conn* c, std::shared_ptr<const std::string> frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void SendTo(Conn* c, wire::MsgType type, const std::string& payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Connection of a rank that is still connected, else nullptr.
  Conn* RankConn(int rank) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void Broadcast(wire::MsgType type, const std::string& payload, int except_rank)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Sends ERROR and closes `c` once it is written. Logged: the refused
  // process prints it too, but the operator of the coordinator should see
  // why a rank was turned away.
  void Refuse(Conn* c, absl::StatusCode code, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // A peer broke the protocol. An identified rank is then lost: it can no
  // longer take part in collectives.
  void ProtocolError(Conn* c, const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // ---- collectives ----

  void FailRound(uint64_t seq, absl::StatusCode code, const std::string& message,
                 std::vector<int32_t> missing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  std::string RoundName(uint64_t seq, const Round& rd) const;

  // Fails every open round `rank` has not joined (it never will).
  void FailRoundsMissing(int rank, absl::StatusCode code, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // A round just opened: fail it at once if a rank already left.
  void CheckNewRound(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void CompleteRound(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void TimeoutRound(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // ---- rank lifecycle ----

  void RankLost(int rank, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void RankAborted(int rank, int code, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // The connection of `rank` dropped without FINALIZE.
  void ConnectionLost(int rank, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void HandleHello(Conn* c, const wire::Frame& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void HandleAllgather(Conn* c, const wire::Frame& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void HandleFrame(Conn* c, const wire::Frame& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void ReadConn(Conn* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void AcceptAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  absl::Time NextTimer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void RunTimers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void ProcessQueues() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void Reap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void Run();

  void Wake() { coord::WakeEventFd(wake_fd.get()); }

  bool AllOutputFlushed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
};

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_COORDINATOR_INTERNAL_H_

#include "boot/coordinator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "base/status.h"
#include "base/thread.h"
#include "boot/coordinator_wire.h"
#include "boot/deadline_wait.h"
#include "boot/net.h"

namespace gasp {
namespace boot {
namespace {

// How long a client waits past its own deadline for the coordinator's
// explanation of a failed round (which names the missing ranks).
constexpr absl::Duration kReplyGrace = absl::Milliseconds(500);
// A refused connection gets this long to receive its ERROR frame.
constexpr absl::Duration kCloseFlushTimeout = absl::Seconds(1);
constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one connection per poll round (fairness).
constexpr size_t kMaxReadPerRound = 4 * kReadChunk;
// Connections that have not sent HELLO yet, beyond the job size.
constexpr size_t kMaxPendingConnections = 1024;
// Failed rounds remembered to answer late contributors.
constexpr size_t kMaxFailedRoundsKept = 64;
// Largest wait a rank may ask for (a week, like GASP_TIMEOUT's bound).
constexpr int64_t kMaxWaitMs = int64_t{7} * 24 * 3600 * 1000;

std::string DurationText(int64_t ms) { return absl::FormatDuration(absl::Milliseconds(ms)); }

// "1", "1, 3, 5", "0, 1, 2, 3, 4, 5, 6, 7, ... (40 ranks in all)"
std::string JoinRanks(const std::vector<std::string>& items) {
  constexpr size_t kShown = 8;
  if (items.size() <= kShown) return absl::StrJoin(items, ", ");
  std::vector<std::string> head(items.begin(), items.begin() + kShown);
  return absl::StrCat(absl::StrJoin(head, ", "), ", ... (", items.size(), " ranks in all)");
}

void WakeEventFd(int fd) {
  uint64_t one = 1;
  ssize_t rc;
  do {
    rc = write(fd, &one, sizeof(one));
  } while (rc < 0 && errno == EINTR);
}

void DrainEventFd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof(v)) > 0) {
  }
}

}  // namespace

// ===================================================================== server

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
    uint8_t kind = 0;
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
  UniqueFd reserve_fd{open("/dev/null", O_RDONLY | O_CLOEXEC)};
  LogLimiter accept_log;  // accept failures and refusals an outsider can repeat
  absl::Time accept_resume = absl::InfinitePast();  // listener not polled before
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

  std::string Who(int rank) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const Slot& s = slots[rank];
    if (s.host.empty()) return absl::StrCat("rank ", rank);
    return absl::StrFormat("rank %d (%s:%d)", rank, s.host, s.pid);
  }

  static bool Terminal(SlotState s) {
    return s == SlotState::kFinalized || s == SlotState::kDied || s == SlotState::kAborted;
  }

  void SetState(int rank, SlotState st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Slot& s = slots[rank];
    if (!Terminal(s.state) && Terminal(st)) ++terminal_count;
    s.state = st;
  }

  Conn* FindConn(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second->gone) return nullptr;
    return it->second.get();
  }

  void MarkGone(Conn* c, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (c->gone) return;
    c->gone = true;
    if (c->rank >= 0) lost_conns.emplace_back(c->id, why);
  }

  void TryFlush(Conn* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!c->gone && !c->out.empty()) {
      const std::string& f = *c->out.front();
      ssize_t n =
          send(c->fd.get(), f.data() + c->out_offset, f.size() - c->out_offset, MSG_NOSIGNAL);
      if (n > 0) {
        c->out_offset += static_cast<size_t>(n);
        if (c->out_offset == f.size()) {
          c->out.pop_front();
          c->out_offset = 0;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      MarkGone(c, absl::StrCat("send failed: ", std::strerror(errno)));
    }
  }

  void Send(Conn* c, std::shared_ptr<const std::string> frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (c == nullptr || c->gone) return;
    c->out.push_back(std::move(frame));
    TryFlush(c);
  }

  void SendTo(Conn* c, wire::MsgType type, const std::string& payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Send(c, std::make_shared<const std::string>(
                wire::EncodeFrame(static_cast<uint16_t>(type), payload)));
  }

  // Connection of a rank that is still connected, else nullptr.
  Conn* RankConn(int rank) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const Slot& s = slots[rank];
    if (s.state != SlotState::kConnected || s.conn_id == 0) return nullptr;
    return FindConn(s.conn_id);
  }

  void Broadcast(wire::MsgType type, const std::string& payload, int except_rank)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto frame = std::make_shared<const std::string>(
        wire::EncodeFrame(static_cast<uint16_t>(type), payload));
    for (int r = 0; r < static_cast<int>(slots.size()); ++r) {
      if (r == except_rank) continue;
      Send(RankConn(r), frame);
    }
  }

  // Sends ERROR and closes `c` once it is written. Logged: the refused
  // process prints it too, but the operator of the coordinator should see
  // why a rank was turned away.
  void Refuse(Conn* c, absl::StatusCode code, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    GASP_LOG(Error) << "coordinator " << address << ": refusing connection from " << c->peer << ": "
                    << message;
    wire::Error e;
    e.code = static_cast<uint32_t>(code);
    e.message = message;
    SendTo(c, wire::MsgType::kError, wire::EncodeError(e));
    c->closing = true;
    c->close_deadline = absl::Now() + kCloseFlushTimeout;
  }

  // A peer broke the protocol. An identified rank is then lost: it can no
  // longer take part in collectives.
  void ProtocolError(Conn* c, const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::string who = c->rank >= 0 ? Who(c->rank) : absl::StrCat("a process at ", c->peer);
    std::string msg = absl::StrCat(who, " broke the coordinator protocol: ", what);
    int rank = c->rank;
    Refuse(c, absl::StatusCode::kInvalidArgument, msg);
    if (rank >= 0) {
      c->rank = -1;  // its loss is reported here, not again when it closes
      RankLost(rank, msg);
    }
  }

  // ---- collectives ----

  void FailRound(uint64_t seq, absl::StatusCode code, const std::string& message,
                 std::vector<int32_t> missing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = rounds.find(seq);
    if (it == rounds.end()) return;
    wire::AllgatherFail f;
    f.seq = seq;
    f.code = static_cast<uint32_t>(code);
    f.missing = std::move(missing);
    f.message = message;
    auto frame = std::make_shared<const std::string>(wire::EncodeFrame(
        static_cast<uint16_t>(wire::MsgType::kAllgatherFail), wire::EncodeAllgatherFail(f)));
    for (int r = 0; r < static_cast<int>(it->second.blobs.size()); ++r) {
      if (it->second.blobs[r].has_value()) Send(RankConn(r), frame);
    }
    GASP_LOG(Info) << "coordinator " << address << ": " << message;
    rounds.erase(it);
    failed_rounds[seq] = std::move(f);
    while (failed_rounds.size() > kMaxFailedRoundsKept) failed_rounds.erase(failed_rounds.begin());
  }

  std::string RoundName(uint64_t seq, const Round& rd) const {
    return absl::StrCat(wire::CollectiveName(rd.kind), " #", seq);
  }

  // Fails every open round `rank` has not joined (it never will).
  void FailRoundsMissing(int rank, absl::StatusCode code, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<uint64_t> doomed;
    for (auto& [seq, rd] : rounds) {
      if (!rd.blobs[rank].has_value()) doomed.push_back(seq);
    }
    for (uint64_t seq : doomed) {
      std::string name = RoundName(seq, rounds[seq]);
      FailRound(seq, code, absl::StrCat(name, " cannot complete: ", why), {rank});
    }
  }

  // A round just opened: fail it at once if a rank already left.
  void CheckNewRound(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (terminal_count == 0) return;
    for (int r = 0; r < static_cast<int>(slots.size()); ++r) {
      const Slot& s = slots[r];
      if (!Terminal(s.state)) continue;
      auto it = rounds.find(seq);
      if (it == rounds.end() || it->second.blobs[r].has_value()) return;
      std::string how = s.state == SlotState::kFinalized ? "already finalized"
                        : s.state == SlotState::kAborted ? "aborted the job"
                                                         : "died";
      FailRound(seq,
                s.state == SlotState::kFinalized ? absl::StatusCode::kFailedPrecondition
                                                 : absl::StatusCode::kAborted,
                absl::StrCat(RoundName(seq, it->second), " cannot complete: ", Who(r), " ", how,
                             s.state == SlotState::kFinalized
                                 ? " (every rank must make the same sequence of collective calls)"
                                 : ""),
                {r});
      return;
    }
  }

  void CompleteRound(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Round& rd = rounds[seq];
    size_t need = 12 + rd.blobs.size() * 4 + rd.total_bytes;
    if (need > wire::kMaxServerPayload) {
      FailRound(seq, absl::StatusCode::kResourceExhausted,
                absl::StrFormat("%s: the blobs of all %d ranks take %d bytes, more than the "
                                "coordinator's limit of %d",
                                RoundName(seq, rd), rd.blobs.size(), need, wire::kMaxServerPayload),
                {});
      return;
    }
    wire::AllgatherResult res;
    res.seq = seq;
    res.blobs.reserve(rd.blobs.size());
    for (auto& b : rd.blobs) res.blobs.push_back(std::move(*b));
    auto frame = std::make_shared<const std::string>(wire::EncodeFrame(
        static_cast<uint16_t>(wire::MsgType::kAllgatherResult), wire::EncodeAllgatherResult(res)));
    rounds.erase(seq);
    for (int r = 0; r < static_cast<int>(slots.size()); ++r) Send(RankConn(r), frame);
  }

  void TimeoutRound(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Round& rd = rounds[seq];
    std::string within = absl::StrCat("within GASP_TIMEOUT=", DurationText(rd.timeout_ms));
    std::vector<int32_t> missing;
    std::vector<std::string> never, absent, lost;
    for (int r = 0; r < static_cast<int>(rd.blobs.size()); ++r) {
      if (rd.blobs[r].has_value()) continue;
      missing.push_back(r);
      const Slot& s = slots[r];
      if (s.state == SlotState::kAbsent) {
        never.push_back(absl::StrCat(r));
      } else if (s.lost_pending) {
        lost.push_back(Who(r));
      } else {
        absent.push_back(Who(r));
      }
    }
    int n = static_cast<int>(rd.blobs.size());
    std::vector<std::string> parts;
    if (!never.empty()) {
      parts.push_back(absl::StrFormat("%s %s of %d never arrived at the coordinator %s %s",
                                      never.size() == 1 ? "rank" : "ranks", JoinRanks(never), n,
                                      address, within));
    }
    if (!absent.empty()) {
      parts.push_back(absl::StrFormat(
          "%s of %d %s connected but did not reach %s %s (every rank must make the same sequence "
          "of collective calls)",
          JoinRanks(absent), n, absent.size() == 1 ? "is" : "are", RoundName(seq, rd), within));
    }
    if (!lost.empty()) {
      parts.push_back(
          absl::StrFormat("%s of %d lost the connection to the coordinator", JoinRanks(lost), n));
    }
    FailRound(seq, absl::StatusCode::kDeadlineExceeded,
              absl::StrCat(RoundName(seq, rd), " failed: ", absl::StrJoin(parts, "; ")),
              std::move(missing));
  }

  // ---- rank lifecycle ----

  void RankLost(int rank, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Slot& s = slots[rank];
    if (Terminal(s.state)) return;
    if (Conn* c = FindConn(s.conn_id)) {
      c->rank = -1;
      if (!c->closing) MarkGone(c, "");
    }
    s.conn_id = 0;
    s.lost_pending = false;
    SetState(rank, SlotState::kDied);
    if (failure.empty()) {
      failure = reason;
      failure_rank = rank;
    }
    GASP_LOG(Info) << "coordinator " << address << ": " << reason;
    wire::RankDied d;
    d.rank = rank;
    d.pid = s.pid;
    d.host = s.host;
    d.reason = reason;
    Broadcast(wire::MsgType::kRankDied, wire::EncodeRankDied(d), rank);
    FailRoundsMissing(rank, absl::StatusCode::kAborted, reason);
  }

  void RankAborted(int rank, int code, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::string who = rank >= 0 && rank < static_cast<int>(slots.size())
                          ? Who(rank)
                          : std::string("the launcher");
    std::string sentence =
        absl::StrFormat("%s aborted the job (exit code %d): %s", who, code, message);
    if (failure.empty()) {
      failure = sentence;
      failure_rank = rank;
    }
    wire::Abort a;
    a.rank = rank;
    a.code = code;
    a.message = message;
    if (rank >= 0 && rank < static_cast<int>(slots.size())) {
      a.host = slots[rank].host;
      a.pid = slots[rank].pid;
      slots[rank].lost_pending = false;
      SetState(rank, SlotState::kAborted);
    }
    GASP_LOG(Info) << "coordinator " << address << ": " << sentence;
    Broadcast(wire::MsgType::kAbort, wire::EncodeAbort(a), rank);
    if (rank >= 0 && rank < static_cast<int>(slots.size())) {
      FailRoundsMissing(rank, absl::StatusCode::kAborted, sentence);
    } else {
      std::vector<uint64_t> all;
      for (auto& [seq, rd] : rounds) all.push_back(seq);
      for (uint64_t seq : all) FailRound(seq, absl::StatusCode::kAborted, sentence, {});
    }
  }

  // The connection of `rank` dropped without FINALIZE.
  void ConnectionLost(int rank, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Slot& s = slots[rank];
    if (s.state != SlotState::kConnected) return;
    s.conn_id = 0;
    std::string reason = absl::StrCat(
        Who(rank), " lost its connection to the coordinator without finalizing (",
        why.empty() ? "it crashed, was killed, or exited without finalizing" : why, ")");
    if (opts.death_report_delay <= absl::ZeroDuration()) {
      RankLost(rank, reason);
      return;
    }
    s.lost_pending = true;
    s.lost_report_at = absl::Now() + opts.death_report_delay;
    s.lost_reason = reason;
  }

  void HandleHello(Conn* c, const wire::Frame& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::StatusOr<uint16_t> ver = wire::PeekHelloVersion(f.payload);
    if (!ver.ok()) return ProtocolError(c, std::string(ver.status().message()));
    absl::StatusOr<wire::Hello> h = wire::DecodeHello(f.payload);
    if (f.version != wire::kProtocolVersion || *ver != wire::kProtocolVersion) {
      std::string who = h.ok() ? absl::StrFormat("rank %d (%s:%d)", h->rank, h->host, h->pid)
                               : absl::StrCat("the process at ", c->peer);
      uint16_t theirs = f.version != wire::kProtocolVersion ? f.version : *ver;
      return Refuse(c, absl::StatusCode::kFailedPrecondition,
                    absl::StrFormat("%s speaks coordinator protocol version %d but the "
                                    "coordinator at %s (%s) speaks version %d: rebuild every rank "
                                    "and gasprun from the same gasp",
                                    who, theirs, address, opts.owner, wire::kProtocolVersion));
    }
    if (!h.ok()) return ProtocolError(c, std::string(h.status().message()));
    std::string who = absl::StrFormat("rank %d (%s:%d)", h->rank, h->host, h->pid);
    if (h->size != opts.size) {
      return Refuse(c, absl::StatusCode::kInvalidArgument,
                    absl::StrFormat("%s was launched as one of %d ranks but the coordinator at %s "
                                    "(%s) runs a job of %d ranks: every rank must come from the "
                                    "same launch (is another job using the same GASP_COORDINATOR?)",
                                    who, h->size, address, opts.owner, opts.size));
    }
    if (h->rank < 0 || h->rank >= opts.size) {
      return Refuse(c, absl::StatusCode::kInvalidArgument,
                    absl::StrFormat("%s: rank out of range [0, %d)", who, opts.size));
    }
    if (!job_id.empty() && h->job_id != job_id) {
      return Refuse(c, absl::StatusCode::kFailedPrecondition,
                    absl::StrFormat("%s belongs to job '%s' but the coordinator at %s (%s) serves "
                                    "job '%s': two jobs use the same GASP_COORDINATOR; give each "
                                    "job its own port",
                                    who, h->job_id, address, opts.owner, job_id));
    }
    if (!failure.empty()) {
      return Refuse(c, absl::StatusCode::kAborted,
                    absl::StrCat("the job already failed: ", failure));
    }
    Slot& s = slots[h->rank];
    if (s.state == SlotState::kConnected) {
      return Refuse(c, absl::StatusCode::kAlreadyExists,
                    absl::StrFormat("rank %d is already connected from %s:%d; %s claims the same "
                                    "rank: the launcher started two processes with rank %d "
                                    "(check the rank variables of both)",
                                    h->rank, s.host, s.pid, who, h->rank));
    }
    if (s.state != SlotState::kAbsent) {
      return Refuse(c, absl::StatusCode::kFailedPrecondition,
                    absl::StrFormat("%s: rank %d already left this job", who, h->rank));
    }
    if (job_id.empty()) job_id = h->job_id;
    s.state = SlotState::kConnected;
    s.conn_id = c->id;
    s.host = h->host;
    s.pid = h->pid;
    s.timeout_ms = h->timeout_ms;
    c->rank = h->rank;
    c->hello_deadline = absl::InfiniteFuture();
    wire::Welcome w;
    w.size = opts.size;
    w.owner = opts.owner;
    SendTo(c, wire::MsgType::kWelcome, wire::EncodeWelcome(w));
    GASP_LOG(Debug) << "coordinator " << address << ": " << who << " joined from " << c->peer;
  }

  void HandleAllgather(Conn* c, const wire::Frame& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::StatusOr<wire::Allgather> m = wire::DecodeAllgather(f.payload);
    if (!m.ok()) return ProtocolError(c, std::string(m.status().message()));
    int r = c->rank;
    if (auto it = failed_rounds.find(m->seq); it != failed_rounds.end()) {
      SendTo(c, wire::MsgType::kAllgatherFail, wire::EncodeAllgatherFail(it->second));
      return;
    }
    bool fresh = rounds.find(m->seq) == rounds.end();
    Round& rd = rounds[m->seq];
    if (fresh) {
      rd.kind = m->kind;
      rd.first_rank = r;
      rd.blobs.resize(slots.size());
    }
    if (rd.blobs[r].has_value()) {
      return ProtocolError(c, absl::StrFormat("joined %s twice", RoundName(m->seq, rd)));
    }
    int64_t wait_ms = std::clamp<int64_t>(m->wait_ms, 0, kMaxWaitMs);
    absl::Time deadline = absl::Now() + absl::Milliseconds(wait_ms);
    if (deadline < rd.deadline) {
      rd.deadline = deadline;
      rd.timeout_ms = slots[r].timeout_ms;
    }
    if (m->kind != rd.kind) {
      rd.blobs[r] = std::string();  // so that r hears about the failure
      return FailRound(
          m->seq, absl::StatusCode::kFailedPrecondition,
          absl::StrFormat("collective #%d is a %s on %s but a %s on %s: every rank must make "
                          "the same sequence of collective calls",
                          m->seq, wire::CollectiveName(rd.kind), Who(rd.first_rank),
                          wire::CollectiveName(m->kind), Who(r)),
          {});
    }
    rd.total_bytes += m->blob.size();
    rd.blobs[r] = std::move(m->blob);
    ++rd.count;
    if (rd.count == static_cast<int>(rd.blobs.size())) return CompleteRound(m->seq);
    if (fresh) CheckNewRound(m->seq);
  }

  void HandleFrame(Conn* c, const wire::Frame& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (c->rank < 0) {
      if (f.type != static_cast<uint16_t>(wire::MsgType::kHello)) {
        return ProtocolError(c, absl::StrCat("expected HELLO, got ", wire::MsgTypeName(f.type)));
      }
      return HandleHello(c, f);
    }
    if (f.version != wire::kProtocolVersion) {
      return ProtocolError(c, absl::StrFormat("frame of protocol version %d after HELLO of %d",
                                              f.version, wire::kProtocolVersion));
    }
    switch (static_cast<wire::MsgType>(f.type)) {
      case wire::MsgType::kAllgather:
        return HandleAllgather(c, f);
      case wire::MsgType::kAbort: {
        absl::StatusOr<wire::Abort> a = wire::DecodeAbort(f.payload);
        if (!a.ok()) return ProtocolError(c, std::string(a.status().message()));
        int r = c->rank;
        c->rank = -1;  // its connection closing next is expected
        slots[r].conn_id = 0;
        return RankAborted(r, a->code, a->message);
      }
      case wire::MsgType::kFinalize: {
        if (absl::Status s = wire::DecodeEmpty(f.payload, f.type); !s.ok()) {
          return ProtocolError(c, std::string(s.message()));
        }
        int r = c->rank;
        SetState(r, SlotState::kFinalized);
        SendTo(c, wire::MsgType::kFinalizeAck, "");
        c->rank = -1;
        slots[r].conn_id = 0;
        c->closing = true;  // the rank closes after the ACK; do not wait for it forever
        c->close_deadline = absl::Now() + kCloseFlushTimeout;
        FailRoundsMissing(r, absl::StatusCode::kFailedPrecondition,
                          absl::StrCat(Who(r),
                                       " finalized first (every rank must make the same sequence "
                                       "of collective calls)"));
        return;
      }
      default:
        return ProtocolError(c, absl::StrCat("unexpected ", wire::MsgTypeName(f.type)));
    }
  }

  void ReadConn(Conn* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    char buf[kReadChunk];
    bool eof = false;
    std::string err;
    size_t total = 0;
    while (total < kMaxReadPerRound) {
      ssize_t n = recv(c->fd.get(), buf, sizeof(buf), 0);
      if (n > 0) {
        c->in.append(buf, static_cast<size_t>(n));
        total += static_cast<size_t>(n);
        continue;
      }
      if (n == 0) {
        eof = true;
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        eof = true;
        err = std::strerror(errno);
      }
      break;
    }
    // Frames already received count even if the peer closed right after
    // them (FINALIZE or ABORT followed by exit).
    size_t off = 0;
    while (!c->gone && !c->closing) {
      size_t consumed = 0;
      absl::StatusOr<std::optional<wire::Frame>> f = wire::DecodeFrame(
          absl::string_view(c->in).substr(off), wire::kMaxClientPayload, &consumed);
      if (!f.ok()) {
        ProtocolError(c, std::string(f.status().message()));
        break;
      }
      if (!f->has_value()) break;
      off += consumed;
      HandleFrame(c, **f);
    }
    if (c->closing) {
      c->in.clear();
    } else {
      c->in.erase(0, off);
    }
    if (eof) MarkGone(c, err);
  }

  void AcceptAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    size_t pending = 0;
    for (auto& [id, c] : conns) pending += (c->rank < 0 && !c->gone) ? 1 : 0;
    for (;;) {
      sockaddr_in addr;
      socklen_t len = sizeof(addr);
      int fd = accept4(listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        if (err == EINTR || err == ECONNABORTED) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        uint64_t held = 0;
        if (accept_log.Allow(&held)) {
          GASP_LOG(Warn) << "coordinator " << address << ": accept: " << std::strerror(err)
                         << (err == EMFILE || err == ENFILE ? " (raise `ulimit -n`)" : "") << " ("
                         << held << " more without a line since the last one)";
        }
        if ((err == EMFILE || err == ENFILE) && reserve_fd.valid()) {
          reserve_fd.reset(-1);  // shed the waiting connection with the spare descriptor
          const int shed = accept(listen_fd.get(), nullptr, nullptr);
          reserve_fd.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
          // accept reports EMFILE before it looks at the queue: nothing
          // may be waiting at all.
          if (shed < 0) return;
          close(shed);
          continue;
        }
        if (err == EMFILE || err == ENFILE) {
          accept_resume = absl::Now() + absl::Milliseconds(100);  // no spare: back off
        }
        return;
      }
      if (pending >= kMaxPendingConnections + slots.size()) {
        uint64_t held = 0;
        if (accept_log.Allow(&held)) {
          GASP_LOG(Warn) << "coordinator " << address << ": too many connections without HELLO; "
                         << "dropping one from " << FormatAddress(addr) << " (" << held
                         << " more without a line since the last one)";
        }
        close(fd);
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<Conn>();
      c->id = next_conn_id++;
      c->fd.reset(fd);
      c->peer = FormatAddress(addr);
      c->hello_deadline = absl::Now() + opts.hello_timeout;
      conns[c->id] = std::move(c);
      ++pending;
    }
  }

  absl::Time NextTimer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::Time t = absl::InfiniteFuture();
    for (auto& [seq, rd] : rounds) t = std::min(t, rd.deadline);
    for (const Slot& s : slots) {
      if (s.lost_pending) t = std::min(t, s.lost_report_at);
    }
    for (auto& [id, c] : conns) {
      if (c->rank < 0) t = std::min(t, c->closing ? c->close_deadline : c->hello_deadline);
    }
    return t;
  }

  void RunTimers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::Time now = absl::Now();
    std::vector<uint64_t> expired;
    for (auto& [seq, rd] : rounds) {
      if (rd.deadline <= now) expired.push_back(seq);
    }
    for (uint64_t seq : expired) {
      if (rounds.count(seq)) TimeoutRound(seq);
    }
    for (int r = 0; r < static_cast<int>(slots.size()); ++r) {
      if (slots[r].lost_pending && slots[r].lost_report_at <= now) {
        RankLost(r, slots[r].lost_reason);
      }
    }
    for (auto& [id, c] : conns) {
      if (c->gone || c->rank >= 0) continue;
      if (c->closing && c->close_deadline <= now) {
        MarkGone(c.get(), "");
      } else if (!c->closing && c->hello_deadline <= now) {
        GASP_LOG(Warn) << "coordinator " << address << ": " << c->peer << " sent no HELLO within "
                       << opts.hello_timeout << "; closing it";
        MarkGone(c.get(), "");
      }
    }
  }

  void ProcessQueues() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!notified.empty()) {
      auto [rank, reason] = std::move(notified.front());
      notified.pop_front();
      if (rank < 0 || rank >= static_cast<int>(slots.size())) continue;
      RankLost(rank, reason);
    }
    while (!lost_conns.empty()) {
      auto lost = std::move(lost_conns);
      lost_conns.clear();
      for (auto& [id, why] : lost) {
        auto it = conns.find(id);
        if (it == conns.end() || it->second->rank < 0) continue;
        int rank = it->second->rank;
        it->second->rank = -1;
        if (slots[rank].conn_id == id) ConnectionLost(rank, why);
      }
    }
  }

  void Reap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto it = conns.begin(); it != conns.end();) {
      Conn* c = it->second.get();
      if (c->closing && c->out.empty()) MarkGone(c, "");
      if (c->gone) {
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Run() {
    SetThreadName("gasp-coord");
    std::vector<pollfd> pfds;
    std::vector<uint64_t> ids;
    for (;;) {
      absl::Time next;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (stop) break;
        pfds.clear();
        ids.clear();
        const bool accepting = absl::Now() >= accept_resume;
        pfds.push_back({listen_fd.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
        pfds.push_back({wake_fd.get(), POLLIN, 0});
        for (auto& [id, c] : conns) {
          short ev = 0;
          if (!c->closing) ev |= POLLIN;
          if (!c->out.empty()) ev |= POLLOUT;
          pfds.push_back({c->fd.get(), ev, 0});
          ids.push_back(id);
        }
        next = NextTimer();
        if (!accepting) next = std::min(next, accept_resume);
      }
      int rc = poll(pfds.data(), pfds.size(), PollTimeoutMs(next));
      if (rc < 0 && errno != EINTR) {
        GASP_LOG(Error) << "coordinator " << address << ": poll: " << std::strerror(errno);
        absl::SleepFor(absl::Milliseconds(10));  // not expected; avoid a hot loop
      }
      std::unique_lock<std::mutex> lock(mu);
      if (stop) break;
      if (rc > 0) {
        if (pfds[1].revents & POLLIN) DrainEventFd(wake_fd.get());
        if (pfds[0].revents & POLLIN) AcceptAll();
        for (size_t i = 0; i < ids.size(); ++i) {
          short rev = pfds[i + 2].revents;
          if (rev == 0) continue;
          Conn* c = FindConn(ids[i]);
          if (c == nullptr) continue;
          if (rev & POLLOUT) TryFlush(c);
          if (!c->gone && (rev & (POLLIN | POLLHUP | POLLERR))) {
            if (c->closing) {
              MarkGone(c, "");
            } else {
              ReadConn(c);
            }
          }
        }
      }
      ProcessQueues();
      RunTimers();
      ProcessQueues();
      Reap();
      cv.notify_all();
    }
    std::unique_lock<std::mutex> lock(mu);
    conns.clear();
    cv.notify_all();
  }

  void Wake() { WakeEventFd(wake_fd.get()); }

  bool AllOutputFlushed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (stop) return true;
    for (auto& [id, c] : conns) {
      if (!c->gone && !c->out.empty()) return false;
    }
    return true;
  }
};

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Coordinator::~Coordinator() { Stop(); }

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const CoordinatorOptions& options) {
  if (options.size < 1 || options.size > wire::kMaxRanks) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "coordinator: job size %d out of range [1, %d]", options.size, wire::kMaxRanks));
  }
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  sockaddr_in addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (options.bind_host.empty() || options.bind_host == "0.0.0.0") {
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
  } else {
    GASP_ASSIGN_OR_RETURN(addr, ResolveIPv4(options.bind_host, options.port));
  }
  std::string where =
      absl::StrCat(options.bind_host.empty() ? "0.0.0.0" : options.bind_host, ":", options.port);
  impl->listen_fd.reset(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!impl->listen_fd.valid()) return ErrnoError("coordinator: socket", errno);
  int one = 1;
  setsockopt(impl->listen_fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(impl->listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    absl::Status s = ErrnoError(absl::StrCat("coordinator: cannot listen on ", where), e);
    if (e == EADDRINUSE) return absl::UnavailableError(s.message());
    if (e == EADDRNOTAVAIL) {
      return absl::InvalidArgumentError(
          absl::StrCat(s.message(), " (the address is not one of this host's)"));
    }
    return s;
  }
  if (listen(impl->listen_fd.get(), SOMAXCONN) != 0) {
    return ErrnoError(absl::StrCat("coordinator: listen on ", where), errno);
  }
  sockaddr_in bound;
  socklen_t len = sizeof(bound);
  getsockname(impl->listen_fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  impl->port = ntohs(bound.sin_port);
  impl->address =
      options.advertised_address.empty()
          ? absl::StrCat(options.bind_host.empty() ? "0.0.0.0" : options.bind_host, ":", impl->port)
          : options.advertised_address;
  impl->wake_fd.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!impl->wake_fd.valid()) return ErrnoError("coordinator: eventfd", errno);
  {
    std::unique_lock<std::mutex> lock(impl->mu);
    impl->slots.resize(options.size);
    impl->job_id = options.job_id;
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  GASP_LOG(Debug) << "coordinator for " << options.size << " ranks listening on " << impl->address;
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

std::string Coordinator::address() const { return impl_->address; }

int Coordinator::port() const { return impl_->port; }

void Coordinator::NotifyRankDied(int rank, const std::string& reason) {
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->notified.emplace_back(rank, reason);
  }
  impl_->Wake();
}

void Coordinator::AbortJob(int origin_rank, int exit_code, const std::string& message,
                           absl::Time deadline) {
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    if (impl_->stop) return;
    if (origin_rank >= 0 && origin_rank < static_cast<int>(impl_->slots.size())) {
      // The origin's own connection is expected to drop now.
      Impl::Slot& s = impl_->slots[origin_rank];
      if (Impl::Conn* c = impl_->FindConn(s.conn_id)) c->rank = -1;
      s.conn_id = 0;
    }
    impl_->RankAborted(origin_rank, exit_code, message);
  }
  impl_->Wake();
  std::unique_lock<std::mutex> lock(impl_->mu);
  Impl* impl = impl_.get();
  WaitUntil(impl->cv, lock, deadline, [impl] { return impl->AllOutputFlushed(); });
}

absl::Status Coordinator::WaitAllLeft(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  Impl* impl = impl_.get();
  auto all_left = [impl] {
    return impl->stop || impl->terminal_count == static_cast<int>(impl->slots.size());
  };
  if (WaitUntil(impl->cv, lock, deadline, all_left)) return absl::OkStatus();
  std::vector<std::string> running;
  for (int r = 0; r < static_cast<int>(impl->slots.size()); ++r) {
    if (!Impl::Terminal(impl->slots[r].state)) running.push_back(impl->Who(r));
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "%s of %d did not finalize in time (the coordinator at %s must outlive every rank)",
      JoinRanks(running), impl->slots.size(), impl->address));
}

std::string Coordinator::FailureReason() const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->failure;
}

int Coordinator::FailureRank() const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->failure_rank;
}

void Coordinator::Stop() {
  if (!impl_) return;
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->stop = true;
    impl_->cv.notify_all();
  }
  impl_->Wake();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->listen_fd.reset();  // later connects are refused, not left queued
}

// ===================================================================== client

struct CoordinatorClient::State {
  CoordinatorClientOptions opts;
  UniqueFd fd;
  UniqueFd wake;
  std::string local_address;
  std::string owner;
  std::string inbuf;  // monitor thread only
  std::thread monitor;

  struct Reply {
    bool ok = false;
    std::vector<std::string> blobs;
    absl::Status error;
  };

  std::mutex mu;
  std::condition_variable cv;  // signalled on every change of the fields below
  std::map<uint64_t, Reply> replies ABSL_GUARDED_BY(mu);
  absl::Status failure ABSL_GUARDED_BY(mu);
  bool leaving ABSL_GUARDED_BY(mu) = false;  // FINALIZE or ABORT sent: EOF is expected
  bool finalize_acked ABSL_GUARDED_BY(mu) = false;
  bool closed ABSL_GUARDED_BY(mu) = false;  // monitor thread ended
  bool stopping ABSL_GUARDED_BY(mu) = false;
  JobFailureHandler handler ABSL_GUARDED_BY(mu);

  std::mutex send_mu;
  std::mutex call_mu;
  uint64_t next_seq ABSL_GUARDED_BY(call_mu) = 1;

  std::string Where() const {
    return absl::StrFormat("the coordinator at %s (%s)", opts.coordinator,
                           owner.empty() ? opts.expected_owner : owner);
  }

  absl::Status SendFrame(wire::MsgType type, const std::string& payload, absl::Time deadline) {
    std::string frame = wire::EncodeFrame(static_cast<uint16_t>(type), payload);
    std::unique_lock<std::mutex> lock(send_mu);
    absl::Status s = SendAll(fd.get(), frame, deadline);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrFormat("rank %d: cannot send %s to %s: %s", opts.rank,
                                                    wire::MsgTypeName(static_cast<uint16_t>(type)),
                                                    Where(), s.message()));
    }
    return absl::OkStatus();
  }

  // Tells the handler about a job failure (monitor thread), then makes
  // pending and later collectives fail with it. The handler runs first so
  // that its report (by default: log and _exit) is what the user sees, not
  // the error of a collective that raced with it.
  void Fail(int rank, const std::string& why) {
    JobFailureHandler h;
    bool done;
    {
      std::unique_lock<std::mutex> lock(mu);
      done = leaving;  // this rank is done; the others' fate is not its concern
      h = handler;
    }
    if (!done) {
      if (h) {
        h(rank, why);
      } else {
        DefaultJobFailureHandler(rank, why);
      }
    }
    std::unique_lock<std::mutex> lock(mu);
    if (failure.ok()) failure = absl::AbortedError(absl::StrCat("the job failed: ", why));
    cv.notify_all();
  }

  void Dispatch(const wire::Frame& f) {
    switch (static_cast<wire::MsgType>(f.type)) {
      case wire::MsgType::kAllgatherResult: {
        absl::StatusOr<wire::AllgatherResult> m = wire::DecodeAllgatherResult(f.payload);
        if (!m.ok()) return Fail(-1, BadFrame(m.status()));
        std::unique_lock<std::mutex> lock(mu);
        Reply& r = replies[m->seq];
        r.ok = true;
        r.blobs = std::move(m->blobs);
        cv.notify_all();
        return;
      }
      case wire::MsgType::kAllgatherFail: {
        absl::StatusOr<wire::AllgatherFail> m = wire::DecodeAllgatherFail(f.payload);
        if (!m.ok()) return Fail(-1, BadFrame(m.status()));
        absl::StatusCode code = static_cast<absl::StatusCode>(m->code);
        if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
        std::unique_lock<std::mutex> lock(mu);
        Reply& r = replies[m->seq];
        r.ok = false;
        r.error = absl::Status(code, m->message);
        cv.notify_all();
        return;
      }
      case wire::MsgType::kFinalizeAck: {
        std::unique_lock<std::mutex> lock(mu);
        finalize_acked = true;
        cv.notify_all();
        return;
      }
      case wire::MsgType::kRankDied: {
        absl::StatusOr<wire::RankDied> m = wire::DecodeRankDied(f.payload);
        if (!m.ok()) return Fail(-1, BadFrame(m.status()));
        return Fail(m->rank, m->reason);
      }
      case wire::MsgType::kAbort: {
        absl::StatusOr<wire::Abort> m = wire::DecodeAbort(f.payload);
        if (!m.ok()) return Fail(-1, BadFrame(m.status()));
        std::string who = m->rank < 0
                              ? std::string("the launcher")
                              : absl::StrFormat("rank %d (%s:%d)", m->rank, m->host, m->pid);
        return Fail(m->rank, absl::StrFormat("%s aborted the job (exit code %d): %s", who, m->code,
                                             m->message));
      }
      case wire::MsgType::kError: {
        absl::StatusOr<wire::Error> m = wire::DecodeError(f.payload);
        if (!m.ok()) return Fail(-1, BadFrame(m.status()));
        return Fail(-1, absl::StrCat(Where(), " reported: ", m->message));
      }
      default:
        return Fail(-1, absl::StrCat(Where(), " sent an unexpected ", wire::MsgTypeName(f.type)));
    }
  }

  std::string BadFrame(const absl::Status& s) const {
    return absl::StrCat(Where(), " sent a malformed frame: ", s.message());
  }

  static void MonitorLoop(std::shared_ptr<State> st) {
    SetThreadName("gasp-monitor");
    char buf[kReadChunk];
    for (;;) {
      // Frames that arrived with WELCOME, or in the last read.
      size_t off = 0;
      bool broken = false;
      for (;;) {
        size_t consumed = 0;
        absl::StatusOr<std::optional<wire::Frame>> f = wire::DecodeFrame(
            absl::string_view(st->inbuf).substr(off), wire::kMaxServerPayload, &consumed);
        if (!f.ok()) {
          st->Fail(-1, st->BadFrame(f.status()));
          broken = true;
          break;
        }
        if (!f->has_value()) break;
        off += consumed;
        st->Dispatch(**f);
      }
      st->inbuf.erase(0, off);
      if (broken) break;
      pollfd p[2] = {{st->fd.get(), POLLIN, 0}, {st->wake.get(), POLLIN, 0}};
      // Waits for asynchronous events for the life of the connection; the
      // destructor and Finalize wake it through the eventfd.
      int rc = poll(p, 2, -1);
      if (rc < 0) {
        if (errno == EINTR) continue;
        st->Fail(-1, absl::StrCat("poll on the coordinator connection: ", std::strerror(errno)));
        break;
      }
      if (p[1].revents & POLLIN) {
        std::unique_lock<std::mutex> lock(st->mu);
        if (st->stopping) break;
      }
      if (p[0].revents == 0) continue;
      ssize_t n = recv(st->fd.get(), buf, sizeof(buf), 0);
      if (n > 0) {
        st->inbuf.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      std::string why = n == 0 ? "connection closed" : std::strerror(errno);
      bool expected;
      {
        std::unique_lock<std::mutex> lock(st->mu);
        expected = st->leaving || st->stopping;
      }
      if (!expected) {
        st->Fail(-1, absl::StrFormat("rank %d lost the connection to %s (%s): %s died or the "
                                     "network failed",
                                     st->opts.rank, st->Where(), why,
                                     st->owner.empty() ? st->opts.expected_owner : st->owner));
      }
      break;
    }
    std::unique_lock<std::mutex> lock(st->mu);
    st->closed = true;
    st->cv.notify_all();
  }

  void StopMonitor() {
    {
      std::unique_lock<std::mutex> lock(mu);
      stopping = true;
    }
    WakeEventFd(wake.get());
    if (!monitor.joinable()) return;
    if (monitor.get_id() == std::this_thread::get_id()) {
      monitor.detach();  // called from the failure handler; the thread holds a reference
    } else {
      monitor.join();
    }
  }
};

CoordinatorClient::CoordinatorClient(std::shared_ptr<State> state) : state_(std::move(state)) {}

CoordinatorClient::~CoordinatorClient() {
  if (state_) state_->StopMonitor();
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Connect(
    const CoordinatorClientOptions& options, absl::Time deadline) {
  auto st = std::make_shared<State>();
  st->opts = options;
  if (st->opts.host.empty()) st->opts.host = ShortHostName();
  if (st->opts.pid == 0) st->opts.pid = getpid();
  const CoordinatorClientOptions& o = st->opts;
  GASP_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(o.coordinator, "GASP_COORDINATOR"));
  absl::StatusOr<sockaddr_in> addr = ResolveIPv4(hp.host, hp.port);
  if (!addr.ok()) {
    return absl::Status(addr.status().code(), absl::StrCat("GASP_COORDINATOR=", o.coordinator, ": ",
                                                           addr.status().message()));
  }
  std::string hint =
      o.expected_owner == "gasprun"
          ? "gasprun runs the coordinator: is gasprun still running?"
          : absl::StrCat(o.expected_owner,
                         " hosts the coordinator there: check that it started, runs on that host, "
                         "and that the port is reachable from this host");
  auto timed_out = [&](const std::string& what) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "rank %d %s the coordinator at GASP_COORDINATOR=%s (%s) within GASP_TIMEOUT=%s; %s", o.rank,
        what, o.coordinator, FormatAddress(*addr), absl::FormatDuration(o.timeout), hint));
  };

  // Connect, retrying while nobody listens yet.
  absl::Duration backoff = absl::Milliseconds(10);
  absl::Status last;
  for (;;) {
    absl::Time attempt_deadline = std::min(deadline, absl::Now() + absl::Seconds(10));
    absl::StatusOr<UniqueFd> fd = ConnectOnce(*addr, attempt_deadline);
    if (fd.ok()) {
      st->fd = std::move(*fd);
      break;
    }
    last = fd.status();
    if (!absl::IsUnavailable(last) && !absl::IsDeadlineExceeded(last)) {
      return absl::Status(last.code(), absl::StrFormat("rank %d cannot connect to "
                                                       "GASP_COORDINATOR=%s: %s",
                                                       o.rank, o.coordinator, last.message()));
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return timed_out(absl::StrCat("could not connect to (last error: ", last.message(), ") "));
    }
    absl::SleepFor(std::min(backoff, left));
    backoff = std::min(backoff * 2, absl::Milliseconds(250));
  }
  st->local_address = LocalIPv4(st->fd.get());

  wire::Hello h;
  h.rank = o.rank;
  h.size = o.size;
  h.pid = o.pid;
  h.timeout_ms = absl::ToInt64Milliseconds(o.timeout);
  h.job_id = o.job_id;
  h.host = o.host;
  GASP_RETURN_IF_ERROR(st->SendFrame(wire::MsgType::kHello, wire::EncodeHello(h), deadline));

  // Wait for WELCOME or ERROR.
  char buf[kReadChunk];
  for (;;) {
    size_t consumed = 0;
    absl::StatusOr<std::optional<wire::Frame>> f =
        wire::DecodeFrame(st->inbuf, wire::kMaxServerPayload, &consumed);
    if (!f.ok()) return absl::InternalError(st->BadFrame(f.status()));
    if (f->has_value()) {
      const wire::Frame& fr = **f;
      st->inbuf.erase(0, consumed);
      if (fr.type == static_cast<uint16_t>(wire::MsgType::kError)) {
        absl::StatusOr<wire::Error> e = wire::DecodeError(fr.payload);
        if (!e.ok()) return absl::InternalError(st->BadFrame(e.status()));
        absl::StatusCode code = static_cast<absl::StatusCode>(e->code);
        if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
        return absl::Status(code,
                            absl::StrCat("the coordinator at GASP_COORDINATOR=", o.coordinator,
                                         " refused rank ", o.rank, ": ", e->message));
      }
      if (fr.type != static_cast<uint16_t>(wire::MsgType::kWelcome) ||
          fr.version != wire::kProtocolVersion) {
        return absl::InternalError(absl::StrCat(st->Where(), " answered HELLO with ",
                                                wire::MsgTypeName(fr.type), " version ",
                                                fr.version));
      }
      absl::StatusOr<wire::Welcome> w = wire::DecodeWelcome(fr.payload);
      if (!w.ok()) return absl::InternalError(st->BadFrame(w.status()));
      st->owner = w->owner;
      break;
    }
    GASP_ASSIGN_OR_RETURN(short rev, PollOne(st->fd.get(), POLLIN, deadline));
    if (rev == 0) return timed_out("got no answer to HELLO from");
    ssize_t n = recv(st->fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      st->inbuf.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
      return absl::UnavailableError(absl::StrFormat(
          "rank %d: the coordinator at GASP_COORDINATOR=%s closed the connection during HELLO "
          "(%s)",
          o.rank, o.coordinator, n == 0 ? "end of stream" : std::strerror(errno)));
    }
  }

  st->wake.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!st->wake.valid()) return ErrnoError("eventfd", errno);
  st->monitor = std::thread(&State::MonitorLoop, st);
  GASP_LOG(Debug) << "rank " << o.rank << " joined " << st->Where();
  return std::unique_ptr<CoordinatorClient>(new CoordinatorClient(std::move(st)));
}

absl::StatusOr<std::vector<std::string>> CoordinatorClient::Allgather(absl::string_view mine,
                                                                      absl::Time deadline) {
  return AllgatherKind(mine, deadline, 0);
}

absl::StatusOr<std::vector<std::string>> CoordinatorClient::AllgatherKind(absl::string_view mine,
                                                                          absl::Time deadline,
                                                                          int kind) {
  State* st = state_.get();
  if (mine.size() > wire::kMaxBlobBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("allgather blob of %d bytes exceeds the coordinator's limit of %d",
                        mine.size(), wire::kMaxBlobBytes));
  }
  std::unique_lock<std::mutex> call(st->call_mu);
  uint64_t seq = st->next_seq++;
  {
    std::unique_lock<std::mutex> lock(st->mu);
    if (!st->failure.ok()) return st->failure;
    if (st->leaving || st->closed) {
      return absl::FailedPreconditionError("collective after Finalize or Abort");
    }
  }
  wire::Allgather m;
  m.seq = seq;
  m.kind = static_cast<uint8_t>(kind);
  m.wait_ms = std::max<int64_t>(
      0, absl::ToInt64Milliseconds(absl::Ceil(deadline - absl::Now(), absl::Milliseconds(1))));
  if (deadline == absl::InfiniteFuture()) m.wait_ms = kMaxWaitMs;
  m.blob = std::string(mine);
  GASP_RETURN_IF_ERROR(
      st->SendFrame(wire::MsgType::kAllgather, wire::EncodeAllgather(m), deadline + kReplyGrace));
  std::unique_lock<std::mutex> lock(st->mu);
  auto ready = [st, seq] { return st->replies.count(seq) > 0 || !st->failure.ok() || st->closed; };
  WaitUntil(st->cv, lock, deadline + kReplyGrace, ready);
  auto it = st->replies.find(seq);
  if (it != st->replies.end()) {
    State::Reply r = std::move(it->second);
    st->replies.erase(it);
    if (!r.ok) return r.error;
    if (static_cast<int>(r.blobs.size()) != st->opts.size) {
      return absl::InternalError(absl::StrFormat("%s returned %d blobs for a job of %d ranks",
                                                 st->Where(), r.blobs.size(), st->opts.size));
    }
    return std::move(r.blobs);
  }
  if (!st->failure.ok()) return st->failure;
  if (st->closed) {
    return absl::UnavailableError(absl::StrCat("lost the connection to ", st->Where()));
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "%s #%d: no answer from %s within GASP_TIMEOUT=%s (it did not even report which ranks are "
      "missing: it is overloaded or hung)",
      wire::CollectiveName(static_cast<uint8_t>(kind)), seq, st->Where(),
      absl::FormatDuration(st->opts.timeout)));
}

absl::Status CoordinatorClient::Barrier(absl::Time deadline) {
  return AllgatherKind("", deadline, static_cast<int>(wire::CollectiveKind::kBarrier)).status();
}

absl::Status CoordinatorClient::SendAbort(int exit_code, absl::string_view message,
                                          absl::Time deadline) {
  State* st = state_.get();
  {
    std::unique_lock<std::mutex> lock(st->mu);
    st->leaving = true;
  }
  wire::Abort a;
  a.rank = st->opts.rank;
  a.code = exit_code;
  a.host = st->opts.host;
  a.pid = st->opts.pid;
  a.message = std::string(message.substr(0, wire::kMaxStringBytes));
  return st->SendFrame(wire::MsgType::kAbort, wire::EncodeAbort(a), deadline);
}

absl::Status CoordinatorClient::Finalize(absl::Time deadline) {
  State* st = state_.get();
  {
    std::unique_lock<std::mutex> lock(st->mu);
    if (st->leaving) return absl::FailedPreconditionError("Finalize after Finalize or Abort");
    st->leaving = true;
  }
  absl::Status sent = st->SendFrame(wire::MsgType::kFinalize, "", deadline);
  bool acked = false;
  if (sent.ok()) {
    std::unique_lock<std::mutex> lock(st->mu);
    auto done = [st] { return st->finalize_acked || st->closed; };
    WaitUntil(st->cv, lock, deadline, done);
    acked = st->finalize_acked;
  }
  st->StopMonitor();
  GASP_RETURN_IF_ERROR(sent);
  if (!acked) {
    return absl::DeadlineExceededError(
        absl::StrFormat("rank %d: %s did not acknowledge FINALIZE within GASP_TIMEOUT=%s",
                        st->opts.rank, st->Where(), absl::FormatDuration(st->opts.timeout)));
  }
  return absl::OkStatus();
}

void CoordinatorClient::SetJobFailureHandler(JobFailureHandler handler) {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->handler = std::move(handler);
}

std::string CoordinatorClient::LocalAddress() const { return state_->local_address; }

std::string CoordinatorClient::owner() const { return state_->owner; }

void DefaultJobFailureHandler(int rank, const std::string& why) {
  GASP_LOG(Error) << "job failure: " << why << "; this rank exits with status 1";
  _exit(1);
}

}  // namespace boot
}  // namespace gasp

// The rank side of the TCP rendezvous (boot/coordinator.h).
#include "boot/coordinator.h"
#include "boot/coordinator_internal.h"

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
#include "base/status.h"
#include "base/thread.h"
#include "boot/coordinator_wire.h"
#include "boot/deadline_wait.h"
#include "boot/net.h"

namespace gasp {
namespace boot {

using coord::kReplyGrace;
using coord::kReadChunk;
using coord::kMaxWaitMs;
using coord::WakeEventFd;

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
        Reply& r = replies[m->seq()];
        r.ok = true;
        r.blobs.assign(std::make_move_iterator(m->mutable_blobs()->begin()),
                       std::make_move_iterator(m->mutable_blobs()->end()));
        cv.notify_all();
        return;
      }
      case wire::MsgType::kAllgatherFail: {
        absl::StatusOr<wire::AllgatherFail> m = wire::DecodeAllgatherFail(f.payload);
        if (!m.ok()) return Fail(-1, BadFrame(m.status()));
        std::unique_lock<std::mutex> lock(mu);
        Reply& r = replies[m->seq()];
        r.ok = false;
        r.error = absl::Status(wire::ErrorCode(m->code()), m->message());
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
        return Fail(m->rank(), m->reason());
      }
      case wire::MsgType::kAbort: {
        absl::StatusOr<wire::Abort> m = wire::DecodeAbort(f.payload);
        if (!m.ok()) return Fail(-1, BadFrame(m.status()));
        std::string who = m->rank() < 0
                              ? std::string("the launcher")
                              : absl::StrFormat("rank %d (%s:%d)", m->rank(), m->host(), m->pid());
        return Fail(m->rank(), absl::StrFormat("%s aborted the job (exit code %d): %s", who,
                                               m->code(), m->message()));
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
  h.set_protocol_version(wire::kProtocolVersion);
  h.set_rank(o.rank);
  h.set_size(o.size);
  h.set_pid(o.pid);
  h.set_timeout_ms(absl::ToInt64Milliseconds(o.timeout));
  h.set_job_id(o.job_id);
  h.set_host(o.host);
  if (!o.secret.empty()) {
    h.set_proof(wire::HelloProof(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(o.secret.data()), o.secret.size()),
        h));
  }
  GASP_RETURN_IF_ERROR(st->SendFrame(wire::MsgType::kHello, h.SerializeAsString(), deadline));

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
        return absl::Status(wire::ErrorCode(e->code),
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
      st->owner = w->owner();
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
  return AllgatherKind(mine, deadline, wire::COLLECTIVE_ALLGATHER);
}

absl::StatusOr<std::vector<std::string>> CoordinatorClient::AllgatherKind(
    absl::string_view mine, absl::Time deadline, wire::CollectiveKind kind) {
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
  m.set_seq(seq);
  m.set_kind(kind);
  m.set_wait_ms(std::max<int64_t>(
      0, absl::ToInt64Milliseconds(absl::Ceil(deadline - absl::Now(), absl::Milliseconds(1)))));
  if (deadline == absl::InfiniteFuture()) m.set_wait_ms(kMaxWaitMs);
  m.set_blob(std::string(mine));
  GASP_RETURN_IF_ERROR(
      st->SendFrame(wire::MsgType::kAllgather, m.SerializeAsString(), deadline + kReplyGrace));
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
      wire::CollectiveName(kind), seq, st->Where(),
      absl::FormatDuration(st->opts.timeout)));
}

absl::Status CoordinatorClient::Barrier(absl::Time deadline) {
  return AllgatherKind("", deadline, wire::COLLECTIVE_BARRIER).status();
}

absl::Status CoordinatorClient::SendAbort(int exit_code, absl::string_view message,
                                          absl::Time deadline) {
  State* st = state_.get();
  {
    std::unique_lock<std::mutex> lock(st->mu);
    st->leaving = true;
  }
  wire::Abort a;
  a.set_rank(st->opts.rank);
  a.set_code(exit_code);
  a.set_host(st->opts.host);
  a.set_pid(st->opts.pid);
  a.set_message(std::string(message.substr(0, wire::kMaxStringBytes)));
  return st->SendFrame(wire::MsgType::kAbort, a.SerializeAsString(), deadline);
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

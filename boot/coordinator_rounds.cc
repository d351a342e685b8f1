// The coordinator's protocol: HELLO, collectives, deaths and aborts
// (coordinator_internal.h).
#include "boot/coordinator.h"
#include "boot/coordinator_internal.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/crypto.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "base/status.h"
#include "boot/coordinator_wire.h"
#include "boot/net.h"

namespace gasp {
namespace boot {

using coord::kCloseFlushTimeout;
using coord::kMaxFailedRoundsKept;
using coord::kMaxWaitMs;
using coord::DurationText;
using coord::JoinRanks;

std::string Coordinator::Impl::Who(int rank) const {
  const Slot& s = slots[rank];
  if (s.host.empty()) return absl::StrCat("rank ", rank);
  return absl::StrFormat("rank %d (%s:%d)", rank, s.host, s.pid);
}

bool Coordinator::Impl::Terminal(SlotState s) {
  return s == SlotState::kFinalized || s == SlotState::kDied || s == SlotState::kAborted;
}

void Coordinator::Impl::SetState(int rank, SlotState st) {
  Slot& s = slots[rank];
  if (!Terminal(s.state) && Terminal(st)) ++terminal_count;
  s.state = st;
}

void Coordinator::Impl::Refuse(Conn* c, absl::StatusCode code, const std::string& message) {
  // Before HELLO is accepted the peer may be anyone, repeating at will:
  // one line per 10 s (the refused process gets the full message anyway).
  uint64_t held = 0;
  if (c->rank >= 0 || refuse_log.Allow(&held)) {
    const std::string held_text =
        held > 0 ? absl::StrCat(" (", held, " refused without a line since the last one)") : "";
    GASP_LOG(Error) << "coordinator " << address << ": refusing connection from " << c->peer
                    << ": " << message << held_text;
  }
  wire::Error e;
  e.code = static_cast<uint32_t>(code);
  e.message = message;
  SendTo(c, wire::MsgType::kError, wire::EncodeError(e));
  c->closing = true;
  c->close_deadline = absl::Now() + kCloseFlushTimeout;
}

void Coordinator::Impl::ProtocolError(Conn* c, const std::string& what) {
  std::string who = c->rank >= 0 ? Who(c->rank) : absl::StrCat("a process at ", c->peer);
  std::string msg = absl::StrCat(who, " broke the coordinator protocol: ", what);
  int rank = c->rank;
  Refuse(c, absl::StatusCode::kInvalidArgument, msg);
  if (rank >= 0) {
    c->rank = -1;  // its loss is reported here, not again when it closes
    RankLost(rank, msg);
  }
}

void Coordinator::Impl::FailRound(uint64_t seq, absl::StatusCode code, const std::string& message,
                                  std::vector<int32_t> missing) {
  auto it = rounds.find(seq);
  if (it == rounds.end()) return;
  wire::AllgatherFail f;
  f.set_seq(seq);
  f.set_code(static_cast<uint32_t>(code));
  f.mutable_missing()->Assign(missing.begin(), missing.end());
  f.set_message(message.substr(0, wire::kMaxStringBytes));
  auto frame = std::make_shared<const std::string>(wire::EncodeFrame(
      static_cast<uint16_t>(wire::MsgType::kAllgatherFail), f.SerializeAsString()));
  for (int r = 0; r < static_cast<int>(it->second.blobs.size()); ++r) {
    if (it->second.blobs[r].has_value()) Send(RankConn(r), frame);
  }
  GASP_LOG(Info) << "coordinator " << address << ": " << message;
  rounds.erase(it);
  failed_rounds[seq] = std::move(f);
  while (failed_rounds.size() > kMaxFailedRoundsKept) failed_rounds.erase(failed_rounds.begin());
}

std::string Coordinator::Impl::RoundName(uint64_t seq, const Round& rd) const {
  return absl::StrCat(wire::CollectiveName(rd.kind), " #", seq);
}

void Coordinator::Impl::FailRoundsMissing(int rank, absl::StatusCode code, const std::string& why) {
  std::vector<uint64_t> doomed;
  for (auto& [seq, rd] : rounds) {
    if (!rd.blobs[rank].has_value()) doomed.push_back(seq);
  }
  for (uint64_t seq : doomed) {
    std::string name = RoundName(seq, rounds[seq]);
    FailRound(seq, code, absl::StrCat(name, " cannot complete: ", why), {rank});
  }
}

void Coordinator::Impl::CheckNewRound(uint64_t seq) {
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

void Coordinator::Impl::CompleteRound(uint64_t seq) {
  Round& rd = rounds[seq];
  // Protobuf's framing takes at most 6 bytes per blob (tag + length varint).
  size_t need = 16 + rd.blobs.size() * 6 + rd.total_bytes;
  if (need > wire::kMaxServerPayload) {
    FailRound(seq, absl::StatusCode::kResourceExhausted,
              absl::StrFormat("%s: the blobs of all %d ranks take %d bytes, more than the "
                              "coordinator's limit of %d",
                              RoundName(seq, rd), rd.blobs.size(), need, wire::kMaxServerPayload),
              {});
    return;
  }
  wire::AllgatherResult res;
  res.set_seq(seq);
  res.mutable_blobs()->Reserve(static_cast<int>(rd.blobs.size()));
  for (auto& b : rd.blobs) res.add_blobs(std::move(*b));
  auto frame = std::make_shared<const std::string>(wire::EncodeFrame(
      static_cast<uint16_t>(wire::MsgType::kAllgatherResult), res.SerializeAsString()));
  rounds.erase(seq);
  for (int r = 0; r < static_cast<int>(slots.size()); ++r) Send(RankConn(r), frame);
}

void Coordinator::Impl::TimeoutRound(uint64_t seq) {
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

void Coordinator::Impl::RankLost(int rank, const std::string& reason) {
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
  d.set_rank(rank);
  d.set_pid(s.pid);
  d.set_host(s.host);
  d.set_reason(reason.substr(0, wire::kMaxStringBytes));
  Broadcast(wire::MsgType::kRankDied, d.SerializeAsString(), rank);
  FailRoundsMissing(rank, absl::StatusCode::kAborted, reason);
}

void Coordinator::Impl::RankAborted(int rank, int code, const std::string& message) {
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
  a.set_rank(rank);
  a.set_code(code);
  a.set_message(message.substr(0, wire::kMaxStringBytes));
  if (rank >= 0 && rank < static_cast<int>(slots.size())) {
    a.set_host(slots[rank].host);
    a.set_pid(slots[rank].pid);
    slots[rank].lost_pending = false;
    SetState(rank, SlotState::kAborted);
  }
  GASP_LOG(Info) << "coordinator " << address << ": " << sentence;
  Broadcast(wire::MsgType::kAbort, a.SerializeAsString(), rank);
  if (rank >= 0 && rank < static_cast<int>(slots.size())) {
    FailRoundsMissing(rank, absl::StatusCode::kAborted, sentence);
  } else {
    std::vector<uint64_t> all;
    for (auto& [seq, rd] : rounds) all.push_back(seq);
    for (uint64_t seq : all) FailRound(seq, absl::StatusCode::kAborted, sentence, {});
  }
}

void Coordinator::Impl::ConnectionLost(int rank, const std::string& why) {
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

void Coordinator::Impl::HandleHello(Conn* c, const wire::Frame& f) {
  // The header's version comes first: a rank of another build may encode
  // its HELLO in a way this build cannot parse.
  absl::StatusOr<wire::Hello> h = wire::DecodeHello(f.payload);
  const bool same = f.version == wire::kProtocolVersion &&
                    (!h.ok() || h->protocol_version() == wire::kProtocolVersion);
  if (!same) {
    std::string who = h.ok() ? absl::StrFormat("rank %d (%s:%d)", h->rank(), h->host(), h->pid())
                             : absl::StrCat("the process at ", c->peer);
    uint32_t theirs = f.version != wire::kProtocolVersion ? f.version : h->protocol_version();
    return Refuse(c, absl::StatusCode::kFailedPrecondition,
                  absl::StrFormat("%s speaks coordinator protocol version %d but the "
                                  "coordinator at %s (%s) speaks version %d: rebuild every rank "
                                  "and gasprun from the same gasp",
                                  who, theirs, address, opts.owner, wire::kProtocolVersion));
  }
  if (!h.ok()) return ProtocolError(c, std::string(h.status().message()));
  std::string who = absl::StrFormat("rank %d (%s:%d)", h->rank(), h->host(), h->pid());
  if (!opts.secret.empty()) {
    const std::string want = wire::HelloProof(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(opts.secret.data()),
                            opts.secret.size()),
        *h);
    if (h->proof().size() != want.size() ||
        !MacEqual(reinterpret_cast<const uint8_t*>(h->proof().data()),
                  reinterpret_cast<const uint8_t*>(want.data()))) {
      return Refuse(c, absl::StatusCode::kPermissionDenied,
                    absl::StrFormat("%s at %s is not a process %s started: its HELLO %s the job "
                                    "secret (start the ranks with that gasprun)",
                                    who, c->peer, opts.owner,
                                    h->proof().empty() ? "carries no proof of" : "does not prove"));
    }
  }
  if (h->size() != opts.size) {
    return Refuse(c, absl::StatusCode::kInvalidArgument,
                  absl::StrFormat("%s was launched as one of %d ranks but the coordinator at %s "
                                  "(%s) runs a job of %d ranks: every rank must come from the "
                                  "same launch (is another job using the same GASP_COORDINATOR?)",
                                  who, h->size(), address, opts.owner, opts.size));
  }
  if (h->rank() < 0 || h->rank() >= opts.size) {
    return Refuse(c, absl::StatusCode::kInvalidArgument,
                  absl::StrFormat("%s: rank out of range [0, %d)", who, opts.size));
  }
  if (!job_id.empty() && h->job_id() != job_id) {
    return Refuse(c, absl::StatusCode::kFailedPrecondition,
                  absl::StrFormat("%s belongs to job '%s' but the coordinator at %s (%s) serves "
                                  "job '%s': two jobs use the same GASP_COORDINATOR; give each "
                                  "job its own port",
                                  who, h->job_id(), address, opts.owner, job_id));
  }
  if (!failure.empty()) {
    return Refuse(c, absl::StatusCode::kAborted,
                  absl::StrCat("the job already failed: ", failure));
  }
  Slot& s = slots[h->rank()];
  if (s.state == SlotState::kConnected) {
    return Refuse(c, absl::StatusCode::kAlreadyExists,
                  absl::StrFormat("rank %d is already connected from %s:%d; %s claims the same "
                                  "rank: the launcher started two processes with rank %d "
                                  "(check the rank variables of both)",
                                  h->rank(), s.host, s.pid, who, h->rank()));
  }
  if (s.state != SlotState::kAbsent) {
    return Refuse(c, absl::StatusCode::kFailedPrecondition,
                  absl::StrFormat("%s: rank %d already left this job", who, h->rank()));
  }
  if (job_id.empty()) job_id = h->job_id();
  s.state = SlotState::kConnected;
  s.conn_id = c->id;
  s.host = h->host();
  s.pid = h->pid();
  s.timeout_ms = h->timeout_ms();
  c->rank = h->rank();
  c->hello_deadline = absl::InfiniteFuture();
  wire::Welcome w;
  w.set_size(opts.size);
  w.set_owner(opts.owner);
  SendTo(c, wire::MsgType::kWelcome, w.SerializeAsString());
  GASP_LOG(Debug) << "coordinator " << address << ": " << who << " joined from " << c->peer;
}

void Coordinator::Impl::HandleAllgather(Conn* c, const wire::Frame& f) {
  absl::StatusOr<wire::Allgather> m = wire::DecodeAllgather(f.payload);
  if (!m.ok()) return ProtocolError(c, std::string(m.status().message()));
  int r = c->rank;
  if (auto it = failed_rounds.find(m->seq()); it != failed_rounds.end()) {
    SendTo(c, wire::MsgType::kAllgatherFail, it->second.SerializeAsString());
    return;
  }
  bool fresh = rounds.find(m->seq()) == rounds.end();
  Round& rd = rounds[m->seq()];
  if (fresh) {
    rd.kind = m->kind();
    rd.first_rank = r;
    rd.blobs.resize(slots.size());
  }
  if (rd.blobs[r].has_value()) {
    return ProtocolError(c, absl::StrFormat("joined %s twice", RoundName(m->seq(), rd)));
  }
  int64_t wait_ms = std::clamp<int64_t>(m->wait_ms(), 0, kMaxWaitMs);
  absl::Time deadline = absl::Now() + absl::Milliseconds(wait_ms);
  if (deadline < rd.deadline) {
    rd.deadline = deadline;
    rd.timeout_ms = slots[r].timeout_ms;
  }
  if (m->kind() != rd.kind) {
    rd.blobs[r] = std::string();  // so that r hears about the failure
    return FailRound(
        m->seq(), absl::StatusCode::kFailedPrecondition,
        absl::StrFormat("collective #%d is a %s on %s but a %s on %s: every rank must make "
                        "the same sequence of collective calls",
                        m->seq(), wire::CollectiveName(rd.kind), Who(rd.first_rank),
                        wire::CollectiveName(m->kind()), Who(r)),
        {});
  }
  rd.total_bytes += m->blob().size();
  rd.blobs[r] = std::move(*m->mutable_blob());
  ++rd.count;
  if (rd.count == static_cast<int>(rd.blobs.size())) return CompleteRound(m->seq());
  if (fresh) CheckNewRound(m->seq());
}

void Coordinator::Impl::HandleFrame(Conn* c, const wire::Frame& f) {
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
      return RankAborted(r, a->code(), a->message());
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

}  // namespace boot
}  // namespace gasp

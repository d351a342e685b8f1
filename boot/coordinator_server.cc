// The coordinator's socket side and public methods (coordinator_internal.h).
#include "boot/coordinator.h"
#include "boot/coordinator_internal.h"

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

using coord::kReadChunk;
using coord::kMaxReadPerRound;
using coord::kMaxPendingConnections;
using coord::JoinRanks;
using coord::DrainEventFd;

Coordinator::Impl::Conn* Coordinator::Impl::FindConn(uint64_t id) {
  auto it = conns.find(id);
  if (it == conns.end() || it->second->gone) return nullptr;
  return it->second.get();
}

void Coordinator::Impl::MarkGone(Conn* c, const std::string& why) {
  if (c->gone) return;
  c->gone = true;
  if (c->rank >= 0) lost_conns.emplace_back(c->id, why);
}

void Coordinator::Impl::TryFlush(Conn* c) {
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

void Coordinator::Impl::Send(Conn* c, std::shared_ptr<const std::string> frame) {
  if (c == nullptr || c->gone) return;
  c->out.push_back(std::move(frame));
  TryFlush(c);
}

void Coordinator::Impl::SendTo(Conn* c, wire::MsgType type, const std::string& payload) {
  Send(c, std::make_shared<const std::string>(
              wire::EncodeFrame(static_cast<uint16_t>(type), payload)));
}

Coordinator::Impl::Conn* Coordinator::Impl::RankConn(int rank) {
  const Slot& s = slots[rank];
  if (s.state != SlotState::kConnected || s.conn_id == 0) return nullptr;
  return FindConn(s.conn_id);
}

void Coordinator::Impl::Broadcast(wire::MsgType type, const std::string& payload, int except_rank) {
  auto frame = std::make_shared<const std::string>(
      wire::EncodeFrame(static_cast<uint16_t>(type), payload));
  for (int r = 0; r < static_cast<int>(slots.size()); ++r) {
    if (r == except_rank) continue;
    Send(RankConn(r), frame);
  }
}

void Coordinator::Impl::ReadConn(Conn* c) {
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

void Coordinator::Impl::AcceptAll() {
  size_t pending = 0;
  for (auto& [id, c] : conns) pending += (c->rank < 0 && !c->gone) ? 1 : 0;
  while (std::optional<AcceptedConn> a = accept_guard.Next(listen_fd.get())) {
    const std::string peer = FormatIpv4(a->ip, a->port);
    if (pending >= kMaxPendingConnections + slots.size()) {
      close(a->fd);
      accept_guard.LogRefusal(peer, absl::StrFormat("%d connections have not sent HELLO", pending));
      continue;
    }
    SetNoDelay(a->fd);
    auto c = std::make_unique<Conn>();
    c->id = next_conn_id++;
    c->fd.reset(a->fd);
    c->peer = peer;
    c->hello_deadline = absl::Now() + opts.hello_timeout;
    conns[c->id] = std::move(c);
    ++pending;
  }
}

absl::Time Coordinator::Impl::NextTimer() {
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

void Coordinator::Impl::RunTimers() {
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

void Coordinator::Impl::ProcessQueues() {
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

void Coordinator::Impl::Reap() {
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

void Coordinator::Impl::Run() {
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
      const bool accepting = absl::Now() >= accept_guard.paused_until();
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
      if (!accepting) next = std::min(next, accept_guard.paused_until());
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

bool Coordinator::Impl::AllOutputFlushed() const {
  if (stop) return true;
  for (auto& [id, c] : conns) {
    if (!c->gone && !c->out.empty()) return false;
  }
  return true;
}

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

}  // namespace boot
}  // namespace gasp

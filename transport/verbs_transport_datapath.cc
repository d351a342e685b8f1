// The verbs backend's data path: posting one-sided ops (chained WRs through
// registered bounce buffers), completion processing (progress thread and
// Poll), local execution of self READ/WRITE, and SEND/RECV messages.
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "base/wait.h"
#include "base/log.h"
#include "transport/tcp_wire.h"
#include "transport/verbs_transport_impl.h"

namespace gasp {
namespace transport {
namespace verbs {

using tcp::GetLe32;
using tcp::GetLe64;
using tcp::PutLe32;
using tcp::PutLe64;

namespace {

const char* OpName(OpType t) {
  switch (t) {
    case OpType::kRead: return "READ";
    case OpType::kWrite: return "WRITE";
    case OpType::kCompareSwap: return "CAS";
    case OpType::kFetchAdd: return "FETCH_ADD";
  }
  return "?";
}

CompletionCode MapStatus(ibv_wc_status s) {
  switch (s) {
    case IBV_WC_SUCCESS: return CompletionCode::kSuccess;
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR: return CompletionCode::kRemoteAccessError;
    case IBV_WC_RETRY_EXC_ERR:
    case IBV_WC_RNR_RETRY_EXC_ERR: return CompletionCode::kPeerUnreachable;
    case IBV_WC_WR_FLUSH_ERR: return CompletionCode::kFlushed;
    default: return CompletionCode::kLocalError;
  }
}

}  // namespace

const RegionEntry* VerbsTransport::CheckKey(RemoteKey key, uint64_t addr, uint64_t len,
                                            uint32_t right) const {
  auto it = regions_.find(static_cast<uint32_t>(key.packed >> 32));
  if (it == regions_.end() || it->second.mr == nullptr) return nullptr;
  const RegionEntry& r = it->second;
  if (r.mr->rkey != static_cast<uint32_t>(key.packed)) return nullptr;
  if ((r.access & right) == 0) return nullptr;
  const uint64_t base = reinterpret_cast<uint64_t>(r.addr);
  if (addr < base || len > r.length || addr - base > r.length - len) return nullptr;
  return &r;
}

CompletionCode VerbsTransport::LocalOp(const Op& op) {
  const uint32_t right = op.type == OpType::kRead ? kRemoteRead : kRemoteWrite;
  if (CheckKey(op.rkey, op.remote_addr, op.length, right) == nullptr) {
    return CompletionCode::kRemoteAccessError;
  }
  void* remote = reinterpret_cast<void*>(op.remote_addr);
  if (op.type == OpType::kRead) {
    std::memmove(op.local, remote, op.length);
  } else {
    std::memmove(remote, op.local, op.length);
  }
  return CompletionCode::kSuccess;
}

void VerbsTransport::Unlink(uint32_t idx) {
  Slot& s = slots_[idx];
  if (!s.linked) return;
  Conn* c = s.conn;
  if (s.prev != kNoSlot) {
    slots_[s.prev].next = s.next;
  } else {
    c->head = s.next;
  }
  if (s.next != kNoSlot) {
    slots_[s.next].prev = s.prev;
  } else {
    c->tail = s.prev;
  }
  s.prev = s.next = kNoSlot;
  s.linked = false;
}

void VerbsTransport::FinishSlot(uint32_t idx, CompletionCode code) {
  Slot& s = slots_[idx];
  if (!s.in_use) return;
  Unlink(idx);
  if (s.counter != nullptr) {
    if (code == CompletionCode::kSuccess && !s.direct) {
      if (s.type == OpType::kRead) {
        std::memcpy(s.local, s.buf, s.length);
      } else if ((s.type == OpType::kCompareSwap || s.type == OpType::kFetchAdd) && s.local) {
        std::memcpy(s.local, s.buf, 8);
      }
    }
    s.counter->Complete(s.peer, s.user_wr_id, code);
  }
  if (s.large_mr) ibv_dereg_mr(s.large_mr);
  std::free(s.large);
  const uint32_t gen = s.gen + 1;
  s.in_use = false;
  s.gen = gen;
  s.counter = nullptr;
  s.conn = nullptr;
  s.large = nullptr;
  s.large_mr = nullptr;
  s.direct = false;
  free_slots_.push_back(idx);
  cv_.notify_all();
}

uint32_t VerbsTransport::FindLkey(const void* p, uint64_t len) const {
  if (local_mrs_.empty()) return 0;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  // Last region starting at or before a; overlapping registrations: look
  // back a few entries.
  auto it = std::upper_bound(local_mrs_.begin(), local_mrs_.end(), a,
                             [](uintptr_t v, const LocalMr& m) { return v < m.begin; });
  for (int k = 0; k < 8 && it != local_mrs_.begin(); ++k) {
    --it;
    if (a >= it->begin && a < it->end && len <= it->end - a) return it->lkey;
  }
  return 0;
}

absl::Status VerbsTransport::Post(absl::Span<const Op> ops, CompletionCounter* counter) {
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (op.peer < 0 || op.peer >= options_.size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "op %d (wr_id %d): peer %d is not a rank of this job (size %d)", i, op.wr_id, op.peer,
          options_.size));
    }
    if (op.type == OpType::kCompareSwap || op.type == OpType::kFetchAdd) {
      if (op.remote_addr % 8 != 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "op %d (wr_id %d): atomic target 0x%x is not 8-byte aligned", i, op.wr_id,
            op.remote_addr));
      }
    } else {
      if (op.length > kMaxOpBytes) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "op %d (wr_id %d): %d bytes is over the limit of %d", i, op.wr_id, op.length,
            kMaxOpBytes));
      }
      if (op.length > 0 && op.local == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrFormat("op %d (wr_id %d): null local buffer", i, op.wr_id));
      }
    }
  }
  if (ops.empty()) return absl::OkStatus();
  // Index list of the remote ops, grouped by peer: on the stack for small
  // batches (no allocation on the fault path), a reused per-thread vector
  // for large ones.
  constexpr size_t kStackOps = 64;
  uint32_t stack_idx[kStackOps];
  thread_local std::vector<uint32_t> big_idx;
  uint32_t* idx = stack_idx;
  if (ops.size() > kStackOps) {
    big_idx.resize(ops.size());
    idx = big_idx.data();
  }
  Lock l(mu_);
  if (!connected_ && !shut_down_) {
    return absl::FailedPreconditionError("Post before Connect on the verbs transport");
  }
  counter->Expect(static_cast<uint32_t>(ops.size()));
  size_t nremote = 0;
  bool sorted = true;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    const bool atomic = op.type == OpType::kCompareSwap || op.type == OpType::kFetchAdd;
    if (shut_down_) {
      counter->Complete(op.peer, op.wr_id, CompletionCode::kFlushed);
    } else if (!atomic && op.length == 0) {
      counter->Complete(op.peer, op.wr_id, CompletionCode::kSuccess);
    } else if (!atomic && op.peer == options_.rank) {
      // Self READ/WRITE: executed here (rxe loopback hangs on multi-packet
      // messages). Self atomics go through the device to stay atomic with
      // the peers' atomics.
      counter->Complete(op.peer, op.wr_id, LocalOp(op));
    } else {
      if (nremote > 0 && ops[idx[nremote - 1]].peer > op.peer) sorted = false;
      idx[nremote++] = static_cast<uint32_t>(i);
    }
  }
  if (!sorted) {
    std::sort(idx, idx + nremote, [&](uint32_t a, uint32_t b) {
      return ops[a].peer != ops[b].peer ? ops[a].peer < ops[b].peer : a < b;
    });
  }
  if (nremote > 0) {
    // Resolved by EnsureConn only if it has to wait for a connection.
    const absl::Time deadline = absl::InfinitePast();
    size_t start = 0;
    while (start < nremote) {
      const int peer = ops[idx[start]].peer;
      size_t end = start + 1;
      while (end < nremote && ops[idx[end]].peer == peer) ++end;
      PostPeer(l, peer, ops, idx + start, end - start, counter, deadline);
      start = end;
    }
  }
  const bool failures = !pending_failures_.empty();
  l.unlock();
  if (failures) FireFailures();
  return absl::OkStatus();
}

void VerbsTransport::PostPeer(Lock& l, int peer, absl::Span<const Op> ops, const uint32_t* list,
                              size_t count, CompletionCounter* counter, absl::Time deadline) {
  size_t next = 0;
  while (next < count) {
    absl::StatusOr<Conn*> conn = EnsureConn(l, peer, kOpsConn, deadline);
    if (!conn.ok()) {
      const CompletionCode code =
          shut_down_ ? CompletionCode::kFlushed : CompletionCode::kPeerUnreachable;
      for (; next < count; ++next) counter->Complete(peer, ops[list[next]].wr_id, code);
      return;
    }
    Conn* c = *conn;
    if (free_slots_.empty()) {
      // Completions free slots: make sure someone processes them.
      l.unlock();
      ArmAndDrain();
      l.lock();
      if (free_slots_.empty()) cv_.wait_for(l, std::chrono::milliseconds(2));
      continue;
    }
    const size_t n = std::min<size_t>({free_slots_.size(), count - next, 64});
    const bool home_dev = !devs_.empty() && c->dev == devs_[0].get();
    ibv_send_wr* first = nullptr;
    ibv_send_wr* last = nullptr;
    uint32_t last_idx = kNoSlot;
    for (size_t k = 0; k < n; ++k) {
      const Op& op = ops[list[next + k]];
      const uint32_t i = free_slots_.back();
      free_slots_.pop_back();
      Slot& s = slots_[i];
      s.in_use = true;
      s.counter = counter;
      s.conn = c;
      s.peer = peer;
      s.user_wr_id = op.wr_id;
      s.type = op.type;
      s.local = op.local;
      const bool atomic = op.type == OpType::kCompareSwap || op.type == OpType::kFetchAdd;
      s.length = atomic ? 8 : op.length;
      s.direct = false;
      ibv_send_wr& wr = s.wr;
      ibv_sge& sge = s.sge;
      wr = ibv_send_wr{};
      wr.wr_id = (kWrOp << 56) | (uint64_t{s.gen & 0xffffffffu} << 24) | i;
      wr.sg_list = &sge;
      wr.num_sge = 1;
      sge.length = static_cast<uint32_t>(s.length);
      const uint32_t rkey = static_cast<uint32_t>(op.rkey.packed);
      bool failed = false;
      if (atomic) {
        s.buf = pool_.get() + size_t{i} * kBounceBytes;
        sge.addr = reinterpret_cast<uint64_t>(s.buf);
        sge.lkey = c->dev->pool_mr->lkey;
        wr.opcode = op.type == OpType::kCompareSwap ? IBV_WR_ATOMIC_CMP_AND_SWP
                                                    : IBV_WR_ATOMIC_FETCH_AND_ADD;
        wr.wr.atomic.remote_addr = op.remote_addr;
        wr.wr.atomic.rkey = rkey;
        wr.wr.atomic.compare_add = op.type == OpType::kCompareSwap ? op.compare : op.operand;
        wr.wr.atomic.swap = op.operand;
      } else {
        wr.opcode = op.type == OpType::kRead ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE;
        wr.wr.rdma.remote_addr = op.remote_addr;
        wr.wr.rdma.rkey = rkey;
        const uint32_t lkey = home_dev ? FindLkey(op.local, s.length) : 0;
        if (op.type == OpType::kWrite && s.length <= c->max_inline) {
          // Inline: the data is copied into the WQE at post time.
          s.direct = true;
          wr.send_flags = IBV_SEND_INLINE;
          sge.addr = reinterpret_cast<uint64_t>(op.local);
          sge.lkey = lkey;
        } else if (lkey != 0) {
          // Zero copy: the local buffer is inside a registered region.
          s.direct = true;
          sge.addr = reinterpret_cast<uint64_t>(op.local);
          sge.lkey = lkey;
        } else if (s.length <= kBounceBytes) {
          s.buf = pool_.get() + size_t{i} * kBounceBytes;
          sge.addr = reinterpret_cast<uint64_t>(s.buf);
          sge.lkey = c->dev->pool_mr->lkey;
          if (op.type == OpType::kWrite) std::memcpy(s.buf, op.local, s.length);
        } else {
          const size_t sz = (s.length + 4095) & ~size_t{4095};
          s.large = static_cast<uint8_t*>(std::aligned_alloc(4096, sz));
          s.large_mr = s.large ? ibv_reg_mr(c->dev->pd, s.large, sz, IBV_ACCESS_LOCAL_WRITE)
                               : nullptr;
          if (s.large_mr == nullptr) {
            GASP_LOG(Warn) << "verbs: registering a " << sz << "-byte bounce buffer failed: "
                           << strerror(errno);
            failed = true;
          } else {
            s.buf = s.large;
            sge.addr = reinterpret_cast<uint64_t>(s.buf);
            sge.lkey = s.large_mr->lkey;
            if (op.type == OpType::kWrite) std::memcpy(s.buf, op.local, s.length);
          }
        }
      }
      if (failed) {
        FinishSlot(i, CompletionCode::kLocalError);
        continue;
      }
      // Append to the conn's outstanding list (posting order).
      s.linked = true;
      s.prev = c->tail;
      s.next = kNoSlot;
      if (c->tail != kNoSlot) {
        slots_[c->tail].next = i;
      } else {
        c->head = i;
      }
      c->tail = i;
      if (last != nullptr) last->next = &wr;
      if (first == nullptr) first = &wr;
      last = &wr;
      last_idx = i;
    }
    next += n;
    if (first == nullptr) continue;
    // Selective signaling: only the chain's last WR asks for a completion;
    // RC completes in order, so it completes the ones before it.
    last->send_flags |= IBV_SEND_SIGNALED;
    ibv_send_wr* bad = nullptr;
    if (ibv_post_send(c->id->qp, first, &bad) != 0) {
      const int err = errno;
      GASP_LOG(Warn) << "verbs: ibv_post_send to rank " << peer << ": " << strerror(err);
      if (bad != first) {
        // A posted prefix has no signaled WR: flush it through the error state.
        ibv_qp_attr qa{};
        qa.qp_state = IBV_QPS_ERR;
        ibv_modify_qp(c->id->qp, &qa, IBV_QP_STATE);
        if (c->state == Conn::kUp) c->state = Conn::kError;
      }
      // Fail the WRs from `bad` on (never posted).
      for (ibv_send_wr* w = bad; w != nullptr;) {
        ibv_send_wr* nx = w->next;
        FinishSlot(static_cast<uint32_t>(w->wr_id & 0xffffff), CompletionCode::kLocalError);
        w = nx;
      }
    }
    (void)last_idx;
  }
}

void VerbsTransport::Abandon(CompletionCounter* counter) {
  std::lock_guard<std::mutex> l(mu_);
  for (Slot& s : slots_) {
    if (!s.in_use || s.counter != counter) continue;
    s.counter = nullptr;
    if (s.direct && (s.wr.send_flags & IBV_SEND_INLINE) == 0 && s.type != OpType::kCompareSwap &&
        s.type != OpType::kFetchAdd && s.conn != nullptr && s.conn->id != nullptr &&
        s.conn->id->qp != nullptr && s.conn->state == Conn::kUp) {
      // A late zero-copy READ would land in (a WRITE read) the caller's buffer: stop the
      // QP (its ops flush; it is reconnected on the next Post).
      ibv_qp_attr qa{};
      qa.qp_state = IBV_QPS_ERR;
      ibv_modify_qp(s.conn->id->qp, &qa, IBV_QP_STATE);
      s.conn->state = Conn::kError;
    }
  }
}

int VerbsTransport::Poll() {
  int n = 0;
  if (cq_mu_.try_lock()) {
    const int nd = ndevs_.load(std::memory_order_acquire);
    for (int i = 0; i < nd; ++i) n += DrainCq(devs_fast_[i]);
    cq_mu_.unlock();
  }
  if (n > 0) FireFailures();
  return n;
}

void VerbsTransport::ArmAndDrain() {
  {
    std::lock_guard<std::mutex> cq(cq_mu_);
    const int nd = ndevs_.load(std::memory_order_acquire);
    for (int i = 0; i < nd; ++i) {
      Dev* d = devs_fast_[i];
      if (!d->armed) {
        ibv_req_notify_cq(d->cq, 0);
        d->armed = true;
      }
      DrainCq(d);  // what arrived before the notification was armed
    }
  }
  FireFailures();
}

absl::Status VerbsTransport::Wait(CompletionCounter* counter, absl::Time deadline) {
  // Spin on Poll (this thread reaps its own completion, no wake-up) for the
  // adaptive window; meanwhile the progress thread leaves the CQ disarmed.
  // Then arm the CQ and block on the counter word.
  const WaitMode mode = GetWaitMode();
  if (!counter->done() && mode != WaitMode::kBlock) {
    // One reap first: under rxe (and often on a fast NIC) the completion is
    // already there, and this op needs no spinner registration. It still
    // counts as activity, so the progress thread keeps the CQ disarmed.
    Poll();
    if (counter->done()) spin_epoch_.fetch_add(1, std::memory_order_relaxed);
  }
  if (!counter->done() && mode != WaitMode::kBlock) {
    spinners_.fetch_add(1, std::memory_order_acq_rel);
    spin_epoch_.fetch_add(1, std::memory_order_relaxed);
    // Twice the window: the base Wait spun one window on Poll and another
    // on the counter word (WaitWhileEqual); here both are spent reaping.
    // The clock is first read after 32 polls: most ops complete sooner.
    absl::Time spin_end = absl::InfiniteFuture();
    int i = 0;
    while (!counter->done()) {
      Poll();
      if (counter->done()) break;
      CpuRelax();
      if ((++i & 31) == 0) {
        const absl::Time now = absl::Now();
        if (spin_end == absl::InfiniteFuture()) {
          spin_end = mode == WaitMode::kPoll ? deadline
                                             : now + absl::Microseconds(2 * GetSpinMicros());
        }
        if (now >= spin_end) break;
      }
    }
    spinners_.fetch_sub(1, std::memory_order_acq_rel);
  }
  if (!counter->done()) ArmAndDrain();
  while (!counter->done()) {
    const uint32_t p = counter->pending();
    if (p == 0) break;
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      std::vector<int> peers;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const Slot& s : slots_) {
          if (s.in_use && s.counter == counter &&
              std::find(peers.begin(), peers.end(), s.peer) == peers.end()) {
            peers.push_back(s.peer);
          }
        }
      }
      Abandon(counter);
      if (counter->done()) break;
      std::sort(peers.begin(), peers.end());
      std::string names;
      for (int q : peers) absl::StrAppend(&names, names.empty() ? "" : ", ", "rank ", q);
      return absl::DeadlineExceededError(absl::StrFormat(
          "%d operation(s) on the verbs transport not completed before the deadline%s "
          "(GASP_TIMEOUT)",
          counter->pending(), names.empty() ? "" : absl::StrCat("; no reply from ", names)));
    }
    // Block (no second spin) in short slices: the progress thread
    // completes the ops (CQ armed).
    const int64_t left_us =
        std::max<int64_t>(1, std::min<int64_t>(10000, absl::ToInt64Microseconds(deadline - now)));
    counter->SleepWhile(p, now + absl::Microseconds(left_us), /*spin_first=*/false);
    if (!counter->done()) Poll();
  }
  if (counter->first_error() != CompletionCode::kSuccess) {
    return CompletionError(counter->first_error(), counter->error_peer(), counter->error_wr_id());
  }
  return absl::OkStatus();
}

int VerbsTransport::DrainCq(Dev* dev) {
  int total = 0;
  ibv_wc wcs[32];
  while (true) {
    const int n = ibv_poll_cq(dev->cq, 32, wcs);
    if (n <= 0) break;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (int i = 0; i < n; ++i) OnWc(wcs[i]);
    }
    total += n;
    // A short batch emptied the CQ: no second poll (a later completion is
    // the next Poll's); only a full batch may have left more behind.
    if (n < 32) break;
  }
  return total;
}

void VerbsTransport::OnWc(const ibv_wc& wc) {
  const uint64_t kind = WrKind(wc.wr_id);
  if (kind == kWrOp) {
    const uint32_t idx = static_cast<uint32_t>(wc.wr_id & 0xffffff);
    const uint32_t gen = static_cast<uint32_t>((wc.wr_id >> 24) & 0xffffffff);
    if (idx >= slots_.size()) return;
    Slot& s = slots_[idx];
    if (!s.in_use || s.gen != gen) return;  // stale (flushed at teardown)
    Conn* c = s.conn;
    // Unsignaled WRs posted before this one on the QP completed (in order)
    // successfully: errors and flushes always produce their own completion.
    if (s.linked) {
      while (c->head != kNoSlot && c->head != idx) FinishSlot(c->head, CompletionCode::kSuccess);
    }
    CompletionCode code = MapStatus(wc.status);
    if (code != CompletionCode::kSuccess) {
      if (c->state == Conn::kUp) c->state = Conn::kError;
      if (code == CompletionCode::kPeerUnreachable) {
        MarkPeer(s.peer, PeerState::kFailed,
                 absl::UnavailableError(absl::StrFormat(
                     "rank %d unreachable: %s %s (%s); lost without goodbye", s.peer,
                     OpName(s.type), ibv_wc_status_str(wc.status), "transport retries exhausted")));
      } else if (code == CompletionCode::kFlushed &&
                 peer_state_[static_cast<size_t>(s.peer)] == PeerState::kFailed) {
        code = CompletionCode::kPeerUnreachable;  // flushed because the peer died
      }
    }
    FinishSlot(idx, code);
    return;
  }
  const uint32_t serial = static_cast<uint32_t>((wc.wr_id >> 16) & 0xffffffff);
  const int index = static_cast<int>(wc.wr_id & 0xffff);
  if (serial >= conns_.size()) return;
  Conn* c = conns_[serial].get();
  if (kind == kWrMsgSend) {
    // A signaled chunk's completion stands for the chunks it covers (the
    // low bits of its wr_id); an unsignaled chunk completes only in error.
    const int covered = wc.status == IBV_WC_SUCCESS ? std::max(index, 1) : 1;
    c->send_pending = std::max(0, c->send_pending - covered);
    if (wc.status != IBV_WC_SUCCESS) {
      c->send_failed = true;
      if (c->state == Conn::kUp) c->state = Conn::kError;
      // Send returned before its chunks were delivered, so a failed chunk
      // is a message lost under a caller that was told it went out: the
      // rank is lost (unless this rank tore the connection down itself).
      if (!shut_down_ && !c->we_disconnected) {
        MarkPeer(c->peer, PeerState::kFailed,
                 absl::UnavailableError(absl::StrFormat(
                     "rank %d unreachable: message send %s; lost without goodbye", c->peer,
                     ibv_wc_status_str(wc.status))));
      }
    }
    cv_.notify_all();
    return;
  }
  if (kind == kWrRecv) {
    if (wc.status != IBV_WC_SUCCESS || c->id == nullptr) return;
    OnRecv(c, index, wc.byte_len);
    if (c->id != nullptr) {
      absl::Status s = PostRecv(c, index);
      if (!s.ok()) {
        GASP_LOG(Warn) << "verbs: " << s;
      }
    }
  }
}

void VerbsTransport::OnRecv(Conn* c, int index, uint32_t bytes) {
  const uint8_t* data = c->recv_mem.get() + size_t(index) * kChunkBytes;
  if (!c->r_active) {
    if (bytes < kMsgHeaderBytes) {
      GASP_LOG(Warn) << "verbs: short message chunk from rank " << c->peer;
      return;
    }
    c->r_tag = GetLe32(data);
    c->r_flags = GetLe32(data + 4);
    c->r_total = GetLe64(data + 8);
    if (c->r_flags & kMsgFlagBye) {
      bye_seen_[static_cast<size_t>(c->peer)] = true;
      MarkPeer(c->peer, PeerState::kGone, absl::OkStatus());
      return;
    }
    if (c->r_total > kMaxMessageBytes) {
      GASP_LOG(Warn) << "verbs: oversized message from rank " << c->peer;
      return;
    }
    c->r_buf.clear();
    c->r_buf.reserve(c->r_total);
    c->r_buf.insert(c->r_buf.end(), data + kMsgHeaderBytes, data + bytes);
    c->r_active = true;
  } else {
    c->r_buf.insert(c->r_buf.end(), data, data + bytes);
  }
  if (c->r_buf.size() >= c->r_total) {
    c->r_active = false;
    DeliverMessage(c->peer, c->r_tag, std::move(c->r_buf));
    c->r_buf = {};
  }
}

void VerbsTransport::DeliverMessage(int from, uint32_t tag, std::vector<uint8_t> payload) {
  {
    std::lock_guard<std::mutex> l(mb_mu_);
    Message m;
    m.peer = from;
    m.tag = tag;
    m.payload = std::move(payload);
    mailbox_.push_back(std::move(m));
    ++mb_events_;
  }
  mb_cv_.notify_all();
}

absl::Status VerbsTransport::WaitSends(Lock& l, Conn* c, int peer, int max_pending,
                                       absl::Time deadline) {
  // Reap the send completions here for the spin window (no wake-up of the
  // progress thread), then arm the CQ and block.
  const absl::Time spin_end = absl::Now() + absl::Microseconds(GetSpinMicros());
  bool armed = GetWaitMode() == WaitMode::kBlock;
  while (c->send_pending > max_pending && !c->send_failed) {
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      c->state = Conn::kError;  // buffers still posted: never reuse this QP
      return absl::DeadlineExceededError(absl::StrFormat(
          "message to rank %d not delivered before the deadline (GASP_TIMEOUT)", peer));
    }
    if (!armed && now < spin_end) {
      spinners_.fetch_add(1, std::memory_order_acq_rel);
      spin_epoch_.fetch_add(1, std::memory_order_relaxed);
      l.unlock();
      for (int i = 0; i < 16 && Poll() == 0; ++i) CpuRelax();
      l.lock();
      spinners_.fetch_sub(1, std::memory_order_acq_rel);
      continue;
    }
    if (!armed) {
      armed = true;
      l.unlock();
      ArmAndDrain();
      l.lock();
      continue;
    }
    cv_.wait_for(l, std::chrono::milliseconds(5));
  }
  if (c->send_failed) {
    return absl::UnavailableError(
        absl::StrFormat("message to rank %d failed: connection lost", peer));
  }
  return absl::OkStatus();
}

absl::Status VerbsTransport::SendInternal(Lock& l, int peer, uint32_t tag, uint32_t flags,
                                          absl::Span<const uint8_t> payload,
                                          absl::Time deadline) {
  size_t offset = 0;
  bool first = true;
  Conn* used = nullptr;
  ibv_send_wr wrs[kSendWindow];
  ibv_sge sges[kSendWindow];
  while (first || offset < payload.size()) {
    absl::StatusOr<Conn*> conn = EnsureConn(l, peer, kMsgConn, deadline);
    if (!conn.ok()) return conn.status();
    Conn* c = *conn;
    if (used != nullptr && c != used) {
      return absl::UnavailableError(
          absl::StrFormat("connection to rank %d lost in the middle of a message", peer));
    }
    used = c;
    // The chunks form a ring: a Send returns once its chunks are posted,
    // and waits only for a free chunk. Completions on one QP come in
    // order, so the send_pending chunks before send_next are the ones in
    // flight. (Waiting for each message's ACK cost a wake-up per message.)
    GASP_RETURN_IF_ERROR(WaitSends(l, c, peer, kSendWindow - 1, deadline));
    const int room = kSendWindow - c->send_pending;
    int n = 0;
    while (n < room && (first || offset < payload.size())) {
      const int slot = static_cast<int>((c->send_next + static_cast<uint64_t>(n)) % kSendWindow);
      uint8_t* buf = c->send_mem.get() + size_t(slot) * kChunkBytes;
      size_t len = 0;
      if (first) {
        PutLe32(buf, tag);
        PutLe32(buf + 4, flags);
        PutLe64(buf + 8, payload.size());
        len = std::min(payload.size(), kChunkBytes - kMsgHeaderBytes);
        if (len) std::memcpy(buf + kMsgHeaderBytes, payload.data(), len);
        offset = len;
        len += kMsgHeaderBytes;
        first = false;
      } else {
        len = std::min(payload.size() - offset, kChunkBytes);
        std::memcpy(buf, payload.data() + offset, len);
        offset += len;
      }
      sges[n].addr = reinterpret_cast<uint64_t>(buf);
      sges[n].length = static_cast<uint32_t>(len);
      sges[n].lkey = c->send_mr->lkey;
      ibv_send_wr& wr = wrs[n];
      wr = ibv_send_wr{};
      wr.sg_list = &sges[n];
      wr.num_sge = 1;
      wr.opcode = IBV_WR_SEND;
      // Every kSignalEvery-th chunk, and a goodbye's last, is signaled; its
      // completion covers the unsignaled ones before it (one QP completes
      // in order; a failure completes every chunk with an error). A
      // completion per message would wake the progress thread for each.
      // The low bits: how many chunks a signaled one covers (0 on the
      // others, which complete only in error).
      wr.wr_id = (kWrMsgSend << 56) | (uint64_t{c->serial} << 16);
      ++c->send_unsignaled;
      const bool last = offset >= payload.size();
      if ((c->send_next + static_cast<uint64_t>(n) + 1) % kSignalEvery == 0 ||
          ((flags & kMsgFlagBye) && last)) {
        wr.send_flags = IBV_SEND_SIGNALED;
        wr.wr_id |= static_cast<uint64_t>(c->send_unsignaled);
        c->send_unsignaled = 0;
      }
      if (n > 0) wrs[n - 1].next = &wr;
      ++n;
    }
    c->send_pending += n;
    c->send_next += static_cast<uint64_t>(n);
    ibv_send_wr* bad = nullptr;
    if (ibv_post_send(c->id->qp, wrs, &bad) != 0) {
      c->state = Conn::kError;
      c->send_pending = 0;
      return absl::InternalError(
          absl::StrFormat("ibv_post_send (message to rank %d): %s", peer, strerror(errno)));
    }
  }
  // A goodbye is the last message on the connection: wait until it and
  // everything before it arrived, since the connection goes down next.
  if (flags & kMsgFlagBye) return WaitSends(l, used, peer, 0, deadline);
  return absl::OkStatus();
}

absl::Status VerbsTransport::Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) {
  if (payload.size() > kMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "message of %d bytes is over the limit of %d", payload.size(), kMaxMessageBytes));
  }
  if (peer < 0 || peer >= options_.size) {
    return absl::InvalidArgumentError(absl::StrFormat("Send to rank %d: no such rank", peer));
  }
  absl::Status s;
  {
    std::lock_guard<std::mutex> sl(*send_mu_[static_cast<size_t>(peer)]);
    Lock l(mu_);
    if (shut_down_) return absl::FailedPreconditionError("the verbs transport is shut down");
    if (!connected_) return absl::FailedPreconditionError("Send before Connect");
    if (peer == options_.rank) {
      l.unlock();
      DeliverMessage(peer, tag, std::vector<uint8_t>(payload.begin(), payload.end()));
      return absl::OkStatus();
    }
    if (peer_state_[static_cast<size_t>(peer)] != PeerState::kAlive) {
      return absl::UnavailableError(absl::StrFormat(
          "Send to rank %d: the rank is %s", peer,
          peer_state_[static_cast<size_t>(peer)] == PeerState::kGone ? "shut down" : "lost"));
    }
    s = SendInternal(l, peer, tag, 0, payload, absl::Now() + options_.timeout);
  }
  FireFailures();
  return s;
}

absl::StatusOr<Message> VerbsTransport::Recv(uint32_t tag, int from, absl::Time deadline) {
  if (from != kAnyPeer && (from < 0 || from >= options_.size)) {
    return absl::InvalidArgumentError(absl::StrFormat("Recv from rank %d: no such rank", from));
  }
  const WaitMode mode = GetWaitMode();
  const absl::Time spin_end = mode == WaitMode::kPoll
                                  ? deadline
                                  : absl::Now() + absl::Microseconds(GetSpinMicros());
  bool armed = false;
  while (true) {
    // The peer's state is read before the mailbox: a peer's messages are
    // delivered before its goodbye (one connection, in order), so a message
    // it sent before leaving is in the mailbox by the time it reads as gone.
    PeerState peer = PeerState::kAlive;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (shut_down_) return absl::FailedPreconditionError("the verbs transport is shut down");
      if (from != kAnyPeer && from != options_.rank) peer = peer_state_[static_cast<size_t>(from)];
    }
    uint64_t seen = 0;
    {
      std::lock_guard<std::mutex> l(mb_mu_);
      seen = mb_events_;
      for (auto it = mailbox_.begin(); it != mailbox_.end(); ++it) {
        if (it->tag == tag && (from == kAnyPeer || it->peer == from)) {
          Message m = std::move(*it);
          mailbox_.erase(it);
          return m;
        }
      }
    }
    if (peer != PeerState::kAlive) {
      return absl::UnavailableError(absl::StrFormat("Recv tag %d from rank %d: the rank is %s",
                                                    tag, from,
                                                    peer == PeerState::kGone ? "shut down" : "lost"));
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "no message with tag %d from %s before the deadline", tag,
          from == kAnyPeer ? std::string("any rank") : absl::StrFormat("rank %d", from)));
    }
    // Spin on the CQ for the adaptive window (the message is likely on its
    // way), then arm the CQ so the progress thread delivers, and block.
    if (mode != WaitMode::kBlock && now < spin_end) {
      spinners_.fetch_add(1, std::memory_order_acq_rel);
      spin_epoch_.fetch_add(1, std::memory_order_relaxed);
      for (int i = 0; i < 16 && Poll() == 0; ++i) CpuRelax();
      spinners_.fetch_sub(1, std::memory_order_acq_rel);
      continue;
    }
    if (!armed) {
      armed = true;
      ArmAndDrain();
      continue;
    }
    std::unique_lock<std::mutex> l(mb_mu_);
    mb_cv_.wait_for(l,
                    std::chrono::microseconds(absl::ToInt64Microseconds(
                        std::min(deadline - now, absl::Milliseconds(10)))),
                    [&] { return mb_events_ != seen; });
  }
}

}  // namespace verbs
}  // namespace transport
}  // namespace gasp

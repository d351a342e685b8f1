// The verbs backend, connections: setting them up on demand (EnsureConn),
// tearing them down, and the rdma_cm events of both sides, with the job
// secret's handshake in the private data (verbs_cm_proof.h).
#include <errno.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/accept_guard.h"  // FormatIpv4
#include "base/crypto.h"
#include "base/log.h"
#include "transport/verbs_cm_proof.h"
#include "transport/verbs_transport_impl.h"

namespace gasp {
namespace transport {
namespace verbs {

absl::StatusOr<Conn*> VerbsTransport::EnsureConn(Lock& l, int peer, ConnKind kind,
                                                 absl::Time deadline) {
  std::string last_error = "no attempt";
  while (true) {
    if (shut_down_) return absl::FailedPreconditionError("the verbs transport is shut down");
    if (peer_state_[static_cast<size_t>(peer)] != PeerState::kAlive) {
      return absl::UnavailableError(absl::StrFormat("rank %d is gone", peer));
    }
    Conn* c = active_[kind][static_cast<size_t>(peer)];
    if (c != nullptr && c->state == Conn::kUp) return c;
    // Post passes InfinitePast: read the clock only when a connection has
    // to be waited for (the data path's usual case above takes no time).
    if (deadline == absl::InfinitePast()) deadline = absl::Now() + options_.timeout;
    if (c != nullptr && c->state == Conn::kConnecting) {
      if (absl::Now() >= deadline) {
        c->state = Conn::kFailed;
        c->error = last_error == "no attempt"
                       ? std::string("connection set-up did not finish")
                       : absl::StrCat("connection set-up did not finish (the attempt before: ",
                                      last_error, ")");
        continue;
      }
      cv_.wait_for(l, std::chrono::milliseconds(5));
      continue;
    }
    if (c != nullptr) {  // failed attempt or QP in error: tear down, retry
      if (!c->error.empty()) last_error = c->error;
      const bool retry_pause = c->state == Conn::kFailed;
      const bool refused = c->refused;
      TearDown(l, c);
      active_[kind][static_cast<size_t>(peer)] = nullptr;
      if (refused) {
        // The acceptor said why (not a rank of its job): retrying cannot help.
        const absl::Status st = absl::UnavailableError(absl::StrFormat(
            "rank %d unreachable: %s", peer, last_error));
        MarkPeer(peer, PeerState::kFailed, st);
        return st;
      }
      if (retry_pause) {
        if (absl::Now() >= deadline) {
          const absl::Status st = absl::UnavailableError(absl::StrFormat(
              "rank %d unreachable: could not connect to %s before the deadline "
              "(GASP_TIMEOUT): %s",
              peer,
              FormatIpv4(peers_[static_cast<size_t>(peer)].ipv4,
                         peers_[static_cast<size_t>(peer)].port),
              last_error));
          MarkPeer(peer, PeerState::kFailed, st);
          return st;
        }
        cv_.wait_for(l, std::chrono::milliseconds(20));
        continue;
      }
    }
    // New attempt.
    auto owned = std::make_unique<Conn>();
    c = owned.get();
    c->serial = static_cast<uint32_t>(conns_.size());
    c->peer = peer;
    c->kind = kind;
    conns_.push_back(std::move(owned));
    active_[kind][static_cast<size_t>(peer)] = c;
    if (rdma_create_id(cm_ch_, &c->id, c, RDMA_PS_TCP) != 0) {
      c->state = Conn::kFailed;
      c->error = absl::StrCat("rdma_create_id: ", strerror(errno));
      continue;
    }
    SetAckTimeout(c->id);
    const Endpoint& e = peers_[static_cast<size_t>(peer)];
    const uint32_t src_ip = (e.ipv4 == self_.ipv4 && alt_ip_ != 0) ? alt_ip_ : self_.ipv4;
    sockaddr_in src = SockAddr(src_ip, 0);
    sockaddr_in dst = SockAddr(e.ipv4, e.port);
    // Always bind the source (soft-RoCE pitfall: else the loopback path).
    if (rdma_resolve_addr(c->id, reinterpret_cast<sockaddr*>(&src),
                          reinterpret_cast<sockaddr*>(&dst), kCmResolveTimeoutMs) != 0) {
      c->state = Conn::kFailed;
      c->error = absl::StrCat("rdma_resolve_addr: ", strerror(errno));
      continue;
    }
  }
}

// REQUIRES mu_ via l; releases it while destroying the QP / id.
void VerbsTransport::TearDown(Lock& l, Conn* c, CompletionCode code) {
  rdma_cm_id* id = c->id;
  c->id = nullptr;
  c->we_disconnected = true;
  const Conn::State old = c->state;
  c->state = Conn::kClosed;
  // Ops still bound to it will never complete through the CQ.
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].in_use && slots_[i].conn == c) FinishSlot(i, code);
  }
  c->head = c->tail = kNoSlot;
  cv_.notify_all();
  if (id == nullptr) return;
  l.unlock();
  if (old == Conn::kUp || old == Conn::kError) rdma_disconnect(id);
  if (id->qp) rdma_destroy_qp(id);
  rdma_destroy_id(id);
  l.lock();
}

void VerbsTransport::SetAckTimeout(rdma_cm_id* id) {
  uint8_t t = static_cast<uint8_t>(std::min(std::max(verbs_.ib_timeout, 1), 31));
  if (rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t, sizeof(t)) != 0) {
    GASP_LOG(Debug) << "verbs: rdma_set_option(RDMA_OPTION_ID_ACK_TIMEOUT, " << int{t}
                    << "): " << strerror(errno) << " (the kernel default is used)";
  }
}

void VerbsTransport::OnConnectRequest(rdma_cm_id* id, const void* pdata, size_t plen) {
  const absl::Span<const uint8_t> key = SecretKey();
  absl::StatusOr<CmRequest> req =
      DecodeCmRequest(absl::MakeConstSpan(static_cast<const uint8_t*>(pdata), plen));
  CmTranscript t;
  absl::Status why = req.status();
  if (why.ok()) why = CheckCmRequest(key, *req, options_.size, options_.rank, self_.nonce, &t);
  CmRejectReason reason = CmRejectReason::kNotThisJob;
  Lock l(mu_);
  if (why.ok() && !cm_nonces_.insert(t.nonce).second) {
    reason = CmRejectReason::kReplayed;
    why = absl::PermissionDeniedError(absl::StrFormat(
        "connection request as rank %d repeats nonce %x (a replayed request)", t.connector,
        t.nonce));
  }
  if (!why.ok() || shut_down_) {
    uint64_t held = 0;
    if (!why.ok() && cm_refused_log_.Allow(&held)) {
      GASP_LOG(Warn) << "verbs: refusing a connection request: " << why.message() << " (" << held
                     << " more refused without a line since the last one)";
    }
    l.unlock();
    const auto data = EncodeCmReject(why.ok() ? CmRejectReason::kShuttingDown : reason);
    rdma_reject(id, data.data(), static_cast<uint8_t>(data.size()));
    rdma_destroy_id(id);
    return;
  }
  const int peer = static_cast<int>(t.connector);
  const int kind = static_cast<int>(t.kind);
  auto owned = std::make_unique<Conn>();
  Conn* c = owned.get();
  c->serial = static_cast<uint32_t>(conns_.size());
  c->peer = peer;
  c->kind = static_cast<ConnKind>(kind);
  c->passive = true;
  c->id = id;
  id->context = c;
  conns_.push_back(std::move(owned));
  absl::Status s = CreateQp(c);
  if (!s.ok()) {
    GASP_LOG(Warn) << "verbs: refusing a connection from rank " << peer << ": " << s;
    c->state = Conn::kClosed;
    c->id = nullptr;
    l.unlock();
    if (id->qp) rdma_destroy_qp(id);
    const auto data = EncodeCmReject(CmRejectReason::kResources);
    rdma_reject(id, data.data(), static_cast<uint8_t>(data.size()));
    rdma_destroy_id(id);
    return;
  }
  SetAckTimeout(id);
  // The REP proves this side knows the secret too.
  const Mac proof = CmMac(key, /*acceptor=*/true, t);
  rdma_conn_param cp = ConnParams(id, proof.data(), proof.size());
  if (rdma_accept(id, &cp) != 0) {
    GASP_LOG(Warn) << "verbs: rdma_accept: " << strerror(errno);
  }
}

void VerbsTransport::HandleCmEvent(rdma_cm_event* ev) {
  const rdma_cm_event_type type = ev->event;
  const int status = ev->status;
  rdma_cm_id* id = ev->id;
  // The private data goes with the event: copy it before the ack.
  uint8_t pd[kCmRequestBytes] = {};
  size_t plen = 0;
  if (ev->param.conn.private_data != nullptr) {
    plen = std::min<size_t>(ev->param.conn.private_data_len, sizeof(pd));
    std::memcpy(pd, ev->param.conn.private_data, plen);
  }
  if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
    rdma_ack_cm_event(ev);
    OnConnectRequest(id, pd, plen);
    return;
  }
  Conn* c = static_cast<Conn*>(id->context);
  rdma_ack_cm_event(ev);
  if (c == nullptr) return;
  if (type == RDMA_CM_EVENT_DISCONNECTED) {
    // Process what the peer sent before it left (a goodbye, say).
    std::lock_guard<std::mutex> cq(cq_mu_);
    for (int i = 0; i < ndevs_.load(); ++i) DrainCq(devs_fast_[i]);
  }
  Lock l(mu_);
  if (c->id != id) return;  // torn down already
  switch (type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED:
      if (rdma_resolve_route(id, kCmResolveTimeoutMs) != 0) {
        FailConn(c, absl::StrCat("rdma_resolve_route: ", strerror(errno)));
      }
      break;
    case RDMA_CM_EVENT_ROUTE_RESOLVED:
      OnRouteResolved(c);
      break;
    case RDMA_CM_EVENT_ESTABLISHED:
      OnEstablished(c, absl::MakeConstSpan(pd, plen));
      break;
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
    case RDMA_CM_EVENT_CONNECT_ERROR:
    case RDMA_CM_EVENT_UNREACHABLE:
    case RDMA_CM_EVENT_REJECTED:
      if (c->passive) {
        c->state = Conn::kClosed;
      } else if (std::string why = DescribeCmReject(absl::MakeConstSpan(pd, plen)); !why.empty()) {
        const Endpoint& e = peers_[static_cast<size_t>(c->peer)];
        FailConn(c, absl::StrFormat("rank %d at %s refused the connection: %s", c->peer,
                                    FormatIpv4(e.ipv4, e.port), why));
        c->refused = CmRejectIsFinal(absl::MakeConstSpan(pd, plen));
      } else {
        FailConn(c, absl::StrFormat("%s (status %d)", rdma_event_str(type), status));
      }
      break;
    case RDMA_CM_EVENT_DISCONNECTED:
    case RDMA_CM_EVENT_DEVICE_REMOVAL:
      OnDisconnected(l, c);
      break;
    default:
      break;
  }
  cv_.notify_all();
}

void VerbsTransport::FailConn(Conn* c, std::string why) {
  c->state = Conn::kFailed;
  c->error = std::move(why);
}

rdma_conn_param VerbsTransport::ConnParams(rdma_cm_id* id, const void* private_data,
                                           size_t private_len) const {
  rdma_conn_param cp{};
  cp.private_data = private_data;
  cp.private_data_len = static_cast<uint8_t>(private_len);
  // READs/atomics in flight per QP: what the device allows, at most
  // kMaxRdAtomic (more buys nothing for page-sized READs).
  int rd_atom = kMaxRdAtomic, init_rd_atom = kMaxRdAtomic;
  ibv_device_attr attr{};
  if (ibv_query_device(id->verbs, &attr) == 0) {
    rd_atom = std::min(attr.max_qp_rd_atom, kMaxRdAtomic);
    init_rd_atom = std::min(attr.max_qp_init_rd_atom, kMaxRdAtomic);
  } else {
    GASP_LOG(Warn) << "verbs: ibv_query_device: " << strerror(errno) << "; assuming "
                   << kMaxRdAtomic << " outstanding READs per queue pair";
  }
  cp.responder_resources = static_cast<uint8_t>(rd_atom);
  cp.initiator_depth = static_cast<uint8_t>(init_rd_atom);
  cp.rnr_retry_count = kRnrRetryInfinite;
  cp.retry_count = static_cast<uint8_t>(std::min(std::max(verbs_.ib_retry_count, 0), 7));
  return cp;
}

void VerbsTransport::OnRouteResolved(Conn* c) {
  absl::Status s = CreateQp(c);
  if (!s.ok()) {
    FailConn(c, std::string(s.message()));
    return;
  }
  c->cm.size = static_cast<uint64_t>(options_.size);
  c->cm.connector = static_cast<uint64_t>(options_.rank);
  c->cm.acceptor = static_cast<uint64_t>(c->peer);
  c->cm.kind = static_cast<uint64_t>(c->kind);
  c->cm.acceptor_session = peers_[static_cast<size_t>(c->peer)].nonce;
  c->cm.nonce = RandomU64();
  const std::array<uint8_t, kCmRequestBytes> req = EncodeCmRequest(SecretKey(), c->cm);
  rdma_conn_param cp = ConnParams(c->id, req.data(), req.size());
  if (rdma_connect(c->id, &cp) != 0) FailConn(c, absl::StrCat("rdma_connect: ", strerror(errno)));
}

void VerbsTransport::OnEstablished(Conn* c, absl::Span<const uint8_t> reply) {
  if (!c->passive && !CmReplyMatches(SecretKey(), c->cm, reply)) {
    const Endpoint& e = peers_[static_cast<size_t>(c->peer)];
    FailConn(c, absl::StrFormat(
                    "the process at %s accepted as rank %d but does not know this job's "
                    "secret (a process of another job holds the port, or the ranks were not "
                    "started by one launcher)",
                    FormatIpv4(e.ipv4, e.port), c->peer));
    c->refused = true;
    return;
  }
  c->state = Conn::kUp;
  ibv_qp_attr qa{};
  ibv_qp_init_attr qi{};
  if (c->id->qp != nullptr && ibv_query_qp(c->id->qp, &qa, IBV_QP_PATH_MTU, &qi) == 0) {
    GASP_LOG(Debug) << "verbs rank " << options_.rank << ": "
                    << (c->kind == kOpsConn ? "ops" : "msg") << " QP "
                    << (c->passive ? "from" : "to") << " rank " << c->peer << " up, path MTU "
                    << MtuBytes(qa.path_mtu) << " (local active MTU " << active_mtu_ << ")";
  }
}

void VerbsTransport::OnDisconnected(Lock& l, Conn* c) {
  const int peer = c->peer;
  const bool counts = !c->passive || c->kind == kMsgConn;
  if (counts && !c->we_disconnected && !bye_seen_[static_cast<size_t>(peer)] && !shut_down_) {
    MarkPeer(peer, PeerState::kFailed,
             absl::UnavailableError(absl::StrFormat(
                 "rank %d lost without goodbye (RDMA connection disconnected)", peer)));
  }
  if (c->passive) {
    TearDown(l, c);
  } else if (c->state == Conn::kUp) {
    c->state = Conn::kError;  // reconnected (or refused) by the next user
    if (peer_state_[static_cast<size_t>(peer)] == PeerState::kFailed && c->id->qp != nullptr) {
      // Outstanding ops flush now (as kPeerUnreachable) instead of
      // waiting for the transport retries.
      ibv_qp_attr qa{};
      qa.qp_state = IBV_QPS_ERR;
      ibv_modify_qp(c->id->qp, &qa, IBV_QP_STATE);
    }
  }
}
}  // namespace verbs
}  // namespace transport
}  // namespace gasp

// The verbs backend: device / port / GID selection, endpoint blob, memory
// registration, progress thread, shutdown. Connections: verbs_transport_cm.cc.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/status.h"
#include "base/thread.h"
#include "transport/tcp_wire.h"
#include "transport/verbs_transport.h"
#include "transport/verbs_transport_impl.h"

namespace gasp {
namespace transport {

using tcp::GetLe16;
using tcp::GetLe32;
using tcp::GetLe64;
using tcp::PutLe16;
using tcp::PutLe32;
using tcp::PutLe64;

namespace verbs {

std::string Ip(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

sockaddr_in SockAddr(uint32_t ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(ip);
  a.sin_port = htons(port);
  return a;
}

namespace {

bool ParseIp(const std::string& s, uint32_t* out) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *out = ntohl(a.s_addr);
  return true;
}

}  // namespace

EndpointBlob EncodeVerbsEndpoint(const Endpoint& e) {
  EndpointBlob b;
  PutLe32(b.bytes, tcp::kBlobMagic);
  PutLe16(b.bytes + 4, static_cast<uint16_t>(tcp::BlobBackend::kVerbs));
  PutLe16(b.bytes + 6, kVerbsBlobVersion);
  b.bytes[8] = static_cast<uint8_t>(e.ipv4 >> 24);
  b.bytes[9] = static_cast<uint8_t>(e.ipv4 >> 16);
  b.bytes[10] = static_cast<uint8_t>(e.ipv4 >> 8);
  b.bytes[11] = static_cast<uint8_t>(e.ipv4);
  PutLe16(b.bytes + 12, e.port);
  PutLe32(b.bytes + 16, e.pid);
  PutLe32(b.bytes + 20, e.rank);
  PutLe64(b.bytes + 24, e.nonce);
  return b;
}

absl::StatusOr<Endpoint> DecodeVerbsEndpoint(const EndpointBlob& blob, int rank) {
  const uint8_t* p = blob.bytes;
  if (GetLe32(p) != tcp::kBlobMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint blob of rank %d is not a gasp endpoint (bad magic 0x%08x): different build?",
        rank, GetLe32(p)));
  }
  const uint16_t backend = GetLe16(p + 4);
  if (backend != static_cast<uint16_t>(tcp::BlobBackend::kVerbs)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint blob of rank %d is from backend %d, not verbs: set the same GASP_TRANSPORT "
        "on every rank",
        rank, backend));
  }
  if (GetLe16(p + 6) != kVerbsBlobVersion) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint blob of rank %d has verbs blob version %d, this build speaks version %d "
        "(mixed gasp versions?)",
        rank, GetLe16(p + 6), kVerbsBlobVersion));
  }
  Endpoint e;
  e.ipv4 = (uint32_t{p[8]} << 24) | (uint32_t{p[9]} << 16) | (uint32_t{p[10]} << 8) | p[11];
  e.port = GetLe16(p + 12);
  e.pid = GetLe32(p + 16);
  e.rank = GetLe32(p + 20);
  e.nonce = GetLe64(p + 24);
  if (e.ipv4 == 0 || e.port == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("endpoint blob of rank %d has a zero address or port", rank));
  }
  for (size_t i = 32; i < kEndpointBlobSize; ++i) {
    if (p[i] != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("endpoint blob of rank %d has non-zero reserved bytes", rank));
    }
  }
  return e;
}

VerbsTransport::VerbsTransport(const TransportOptions& options, const VerbsOptions& verbs)
    : options_(options), verbs_(verbs) {}

Capabilities VerbsTransport::capabilities() const {
  Capabilities c;
  // HCA atomics are atomic only with other HCA atomics, not with the CPU's.
  c.cpu_atomics_coherent = false;
  c.max_op_bytes = kMaxOpBytes;
  c.zero_copy_registered_local = true;
  return c;
}

absl::Status VerbsTransport::SelectDevice() {
  // Query with our own contexts (kept open for the transport's lifetime);
  // the PD/CQ later use the context librdmacm attaches to the listener
  // (rdma_create_qp needs that one).
  OpenDevices devs;
  devs.keep = true;
  cm_devices_ = new ibv_context*[devs.ctxs.size() + 1];
  std::copy(devs.ctxs.begin(), devs.ctxs.end(), cm_devices_);
  cm_devices_[devs.ctxs.size()] = nullptr;
  GASP_ASSIGN_OR_RETURN(VerbsDeviceSelection sel, SelectOnContexts(devs, verbs_));
  device_name_ = sel.device;
  port_ = sel.port;
  active_mtu_ = sel.active_mtu;
  for (ibv_context* c : devs.ctxs) {
    if (device_name_ == ibv_get_device_name(c->device)) home_ctx_ = c;
  }
  if (!ParseIp(sel.ipv4, &self_.ipv4)) {
    return absl::InternalError(absl::StrCat("bad IPv4 '", sel.ipv4, "'"));
  }
  if (!sel.alt_ipv4.empty() && !ParseIp(sel.alt_ipv4, &alt_ip_)) alt_ip_ = 0;
  GASP_LOG(Info) << "verbs rank " << options_.rank << " (local rank " << verbs_.local_rank
                 << "): device " << sel.device << " port " << sel.port << ", GID index "
                 << sel.gid_index << " " << sel.gid << " (" << sel.gid_type << "), IPv4 "
                 << sel.ipv4 << ", active MTU " << sel.active_mtu << " (" << sel.reason << ")";
  GASP_LOG(Debug) << "verbs rank " << options_.rank << ": local active MTU " << sel.active_mtu
                  << " on " << sel.device << ":" << sel.port
                  << "; the RoCE path MTU is the smaller of both ports' active MTU";
  return absl::OkStatus();
}

absl::Status VerbsTransport::Init() {
  if (options_.size < 1 || options_.rank < 0 || options_.rank >= options_.size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad rank %d of %d", options_.rank, options_.size));
  }
  // Locked memory: raise the soft limit to the hard one; need >= 64 MiB.
  const size_t pool_bytes = verbs_.max_outstanding_ops * kBounceBytes;
  constexpr rlim_t kMinMemlock = rlim_t{64} << 20;
  rlimit rl{};
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
    if (rl.rlim_cur != RLIM_INFINITY && (rl.rlim_max == RLIM_INFINITY || rl.rlim_cur < rl.rlim_max)) {
      rlimit raised = rl;
      raised.rlim_cur = rl.rlim_max;
      if (setrlimit(RLIMIT_MEMLOCK, &raised) == 0) {
        GASP_LOG(Debug) << "verbs: raised RLIMIT_MEMLOCK from " << rl.rlim_cur / 1024
                        << " KiB to the hard limit";
        rl = raised;
      }
    }
    const rlim_t need = std::max<rlim_t>(kMinMemlock, pool_bytes + (rlim_t{4} << 20));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "RLIMIT_MEMLOCK is %d KiB: raise it (ulimit -l unlimited, or memlock in "
          "/etc/security/limits.conf; containers: --ulimit memlock=-1)",
          static_cast<uint64_t>(rl.rlim_cur / 1024)));
    }
  }
  const ibv_fork_status fork = ibv_is_fork_initialized();
  GASP_LOG(Debug) << "verbs: ibv_is_fork_initialized: "
                  << (fork == IBV_FORK_UNNEEDED   ? "IBV_FORK_UNNEEDED (the kernel copes)"
                      : fork == IBV_FORK_ENABLED ? "IBV_FORK_ENABLED"
                                                 : "IBV_FORK_DISABLED");
  if (fork == IBV_FORK_DISABLED) {
    GASP_LOG(Info) << "verbs: fork() after initialisation is unsafe (registered memory may be "
                      "corrupted in the parent) unless RDMAV_FORK_SAFE=1 is set";
  }
  GASP_RETURN_IF_ERROR(SelectDevice());

  pool_.reset(new uint8_t[pool_bytes]);
  std::memset(pool_.get(), 0, pool_bytes);
  slots_.resize(verbs_.max_outstanding_ops);
  for (size_t i = slots_.size(); i-- > 0;) free_slots_.push_back(static_cast<uint32_t>(i));
  active_[0].assign(static_cast<size_t>(options_.size), nullptr);
  active_[1].assign(static_cast<size_t>(options_.size), nullptr);
  peer_state_.assign(static_cast<size_t>(options_.size), PeerState::kAlive);
  bye_seen_.assign(static_cast<size_t>(options_.size), false);
  for (int i = 0; i < options_.size; ++i) send_mu_.emplace_back(new std::mutex);

  cm_ch_ = rdma_create_event_channel();
  if (cm_ch_ == nullptr) {
    return absl::InternalError(absl::StrCat("rdma_create_event_channel: ", strerror(errno)));
  }
  fcntl(cm_ch_->fd, F_SETFL, fcntl(cm_ch_->fd, F_GETFL) | O_NONBLOCK);
  if (rdma_create_id(cm_ch_, &listener_, nullptr, RDMA_PS_TCP) != 0) {
    return absl::InternalError(absl::StrCat("rdma_create_id: ", strerror(errno)));
  }
  sockaddr_in a = SockAddr(self_.ipv4, 0);
  if (rdma_bind_addr(listener_, reinterpret_cast<sockaddr*>(&a)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "rdma_bind_addr(%s) failed: %s; is %s (from the GID of %s port %d) configured on its "
        "interface? gasp_info -d lists the GIDs; GASP_IB_GID_INDEX picks another",
        Ip(self_.ipv4), strerror(errno), Ip(self_.ipv4), device_name_, port_));
  }
  if (listener_->verbs == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "address %s is not on an RDMA device; device %s port %d was selected (GASP_NET_DEVICES, "
        "GASP_IB_GID_INDEX)",
        Ip(self_.ipv4), device_name_, port_));
  }
  // (Do not look at listener_->verbs->device: in this librdmacm the device
  // behind its contexts is not safe to dereference; crashed in the guest.)
  {
    std::lock_guard<std::mutex> l(mu_);
    absl::StatusOr<Dev*> d = GetDev(listener_->verbs);
    if (!d.ok()) return d.status();
  }
  if (rdma_listen(listener_, 64) != 0) {
    return absl::InternalError(absl::StrCat("rdma_listen: ", strerror(errno)));
  }
  self_.port = ntohs(rdma_get_src_port(listener_));
  self_.pid = static_cast<uint32_t>(getpid());
  self_.rank = static_cast<uint32_t>(options_.rank);
  self_.nonce = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  progress_ = std::thread([this] { ProgressLoop(); });
  return absl::OkStatus();
}

absl::StatusOr<Dev*> VerbsTransport::GetDev(ibv_context* ctx) {
  for (auto& d : devs_) {
    if (d->ctx == ctx) return d.get();
  }
  if (devs_.size() >= static_cast<size_t>(kMaxDevices)) {
    return absl::InternalError(absl::StrFormat("more than %d RDMA devices in use", kMaxDevices));
  }
  auto d = std::make_unique<Dev>();
  d->ctx = ctx;
  ibv_device_attr attr{};
  ibv_query_device(ctx, &attr);
  d->pd = ibv_alloc_pd(ctx);
  if (d->pd == nullptr) return absl::InternalError(absl::StrCat("ibv_alloc_pd: ", strerror(errno)));
  d->ch = ibv_create_comp_channel(ctx);
  if (d->ch == nullptr) {
    return absl::InternalError(absl::StrCat("ibv_create_comp_channel: ", strerror(errno)));
  }
  fcntl(d->ch->fd, F_SETFL, fcntl(d->ch->fd, F_GETFL) | O_NONBLOCK);
  int cqe = static_cast<int>(verbs_.max_outstanding_ops) +
            options_.size * 2 * (kRecvDepth + kSendWindow + 4) + 256;
  if (attr.max_cqe > 0 && cqe > attr.max_cqe) cqe = attr.max_cqe;
  d->max_cqe = cqe;
  d->cq = ibv_create_cq(ctx, cqe, nullptr, d->ch, 0);
  if (d->cq == nullptr) {
    return absl::InternalError(absl::StrFormat("ibv_create_cq(%d): %s", cqe, strerror(errno)));
  }
  if (ibv_req_notify_cq(d->cq, 0) != 0) {
    return absl::InternalError(absl::StrCat("ibv_req_notify_cq: ", strerror(errno)));
  }
  d->armed = true;
  d->pool_mr = ibv_reg_mr(d->pd, pool_.get(), slots_.size() * kBounceBytes, IBV_ACCESS_LOCAL_WRITE);
  if (d->pool_mr == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "registering the %d KiB bounce pool failed: %s (locked-memory limit: ulimit -l)",
        slots_.size() * kBounceBytes / 1024, strerror(errno)));
  }
  Dev* raw = d.get();
  devs_.push_back(std::move(d));
  devs_fast_[devs_.size() - 1] = raw;
  ndevs_.store(static_cast<int>(devs_.size()), std::memory_order_release);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, 8);  // re-arm the progress thread's poll set
  }
  return raw;
}

absl::Status VerbsTransport::CreateQp(Conn* c) {
  absl::StatusOr<Dev*> got = GetDev(c->id->verbs);
  if (!got.ok()) return got.status();
  Dev* dev = *got;
  c->dev = dev;
  ibv_qp_init_attr qa{};
  qa.send_cq = dev->cq;
  qa.recv_cq = dev->cq;
  qa.qp_type = IBV_QPT_RC;
  qa.sq_sig_all = 0;  // ops: only a chain's last WR is signaled; messages: one in kSignalEvery
  qa.cap.max_send_wr = static_cast<uint32_t>(verbs_.max_outstanding_ops) + kSendWindow + 8;
  qa.cap.max_recv_wr = kRecvDepth;
  qa.cap.max_send_sge = 1;
  qa.cap.max_recv_sge = 1;
  qa.cap.max_inline_data = c->kind == kOpsConn && !c->passive ? 64 : 0;
  if (rdma_create_qp(c->id, dev->pd, &qa) != 0) {
    if (qa.cap.max_inline_data == 0) {
      return absl::InternalError(absl::StrCat("rdma_create_qp: ", strerror(errno)));
    }
    qa.cap.max_inline_data = 0;  // the device has no inline sends
    if (rdma_create_qp(c->id, dev->pd, &qa) != 0) {
      return absl::InternalError(absl::StrCat("rdma_create_qp: ", strerror(errno)));
    }
  }
  c->max_inline = qa.cap.max_inline_data;
  if (c->kind == kMsgConn && c->passive) {
    if (!c->recv_mem) {
      c->recv_mem.reset(new uint8_t[size_t{kRecvDepth} * kChunkBytes]);
    }
    if (c->recv_mr == nullptr) {
      c->recv_mr = ibv_reg_mr(dev->pd, c->recv_mem.get(), size_t{kRecvDepth} * kChunkBytes,
                              IBV_ACCESS_LOCAL_WRITE);
      if (c->recv_mr == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat("ibv_reg_mr (receive pool): ", strerror(errno)));
      }
    }
    for (int i = 0; i < kRecvDepth; ++i) GASP_RETURN_IF_ERROR(PostRecv(c, i));
  }
  if (c->kind == kMsgConn && !c->passive && c->send_mr == nullptr) {
    c->send_mem.reset(new uint8_t[size_t{kSendWindow} * kChunkBytes]);
    c->send_mr = ibv_reg_mr(dev->pd, c->send_mem.get(), size_t{kSendWindow} * kChunkBytes,
                            IBV_ACCESS_LOCAL_WRITE);
    if (c->send_mr == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("ibv_reg_mr (send buffers): ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status VerbsTransport::PostRecv(Conn* c, int index) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uint64_t>(c->recv_mem.get() + size_t(index) * kChunkBytes);
  sge.length = kChunkBytes;
  sge.lkey = c->recv_mr->lkey;
  ibv_recv_wr wr{};
  wr.wr_id = (kWrRecv << 56) | (uint64_t{c->serial} << 16) | static_cast<uint64_t>(index);
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (ibv_post_recv(c->id->qp, &wr, &bad) != 0) {
    return absl::InternalError(absl::StrCat("ibv_post_recv: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status VerbsTransport::Connect(absl::Span<const EndpointBlob> endpoints) {
  if (endpoints.size() != static_cast<size_t>(options_.size)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Connect got %d endpoint blobs for a job of %d ranks", endpoints.size(), options_.size));
  }
  std::vector<Endpoint> decoded;
  for (size_t r = 0; r < endpoints.size(); ++r) {
    GASP_ASSIGN_OR_RETURN(Endpoint e, DecodeVerbsEndpoint(endpoints[r], static_cast<int>(r)));
    if (e.rank != r) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "endpoint blob %d describes rank %d: blobs out of order", r, e.rank));
    }
    decoded.push_back(e);
  }
  const Endpoint& me = decoded[static_cast<size_t>(options_.rank)];
  if (me.ipv4 != self_.ipv4 || me.port != self_.port || me.nonce != self_.nonce) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint blob %d is not this transport's own endpoint", options_.rank));
  }
  std::lock_guard<std::mutex> l(mu_);
  peers_ = std::move(decoded);
  connected_ = true;
  return absl::OkStatus();
}

absl::StatusOr<Region> VerbsTransport::Register(void* addr, size_t length, uint32_t access) {
  if (addr == nullptr || length == 0) {
    return absl::InvalidArgumentError("Register needs a non-null address and a non-zero length");
  }
  if ((access & ~static_cast<uint32_t>(kRemoteAll)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown access bits 0x%x", access));
  }
  int flags = IBV_ACCESS_LOCAL_WRITE;
  if (access & kRemoteRead) flags |= IBV_ACCESS_REMOTE_READ;
  if (access & kRemoteWrite) flags |= IBV_ACCESS_REMOTE_WRITE;
  if (access & kRemoteAtomic) flags |= IBV_ACCESS_REMOTE_ATOMIC;
  std::lock_guard<std::mutex> l(mu_);
  if (shut_down_) return absl::FailedPreconditionError("the verbs transport is shut down");
  ibv_mr* mr = ibv_reg_mr(devs_[0]->pd, addr, length, flags);
  if (mr == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "ibv_reg_mr of %d bytes on %s failed: %s (locked-memory limit: ulimit -l)", length,
        device_name_, strerror(errno)));
  }
  const uint32_t id = next_region_++;
  regions_[id] = RegionEntry{addr, length, access, mr};
  LocalMr lm;
  lm.begin = reinterpret_cast<uintptr_t>(addr);
  lm.end = lm.begin + length;
  lm.lkey = mr->lkey;
  lm.id = id;
  local_mrs_.insert(std::upper_bound(local_mrs_.begin(), local_mrs_.end(), lm,
                                     [](const LocalMr& a, const LocalMr& b) {
                                       return a.begin < b.begin;
                                     }),
                    lm);
  Region r;
  r.id = id;
  r.addr = addr;
  r.length = length;
  r.access = access;
  r.rkey.packed = (uint64_t{id} << 32) | mr->rkey;
  return r;
}

absl::Status VerbsTransport::Deregister(const Region& region) {
  ibv_mr* mr = nullptr;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = regions_.find(static_cast<uint32_t>(region.id));
    if (it == regions_.end() || it->second.addr != region.addr) {
      return absl::NotFoundError(absl::StrFormat("region %d is not registered", region.id));
    }
    mr = it->second.mr;
    regions_.erase(it);
    local_mrs_.erase(std::remove_if(local_mrs_.begin(), local_mrs_.end(),
                                    [&](const LocalMr& m) { return m.id == region.id; }),
                     local_mrs_.end());
  }
  if (mr != nullptr && ibv_dereg_mr(mr) != 0) {
    return absl::InternalError(absl::StrCat("ibv_dereg_mr: ", strerror(errno)));
  }
  return absl::OkStatus();
}

void VerbsTransport::SetPeerFailureHandler(PeerFailureHandler handler) {
  std::lock_guard<std::mutex> l(mu_);
  handler_ = std::move(handler);
}

void VerbsTransport::MarkPeer(int peer, PeerState state, const absl::Status& why) {
  if (peer < 0 || peer == options_.rank) return;
  auto& s = peer_state_[static_cast<size_t>(peer)];
  if (s != PeerState::kAlive) return;
  s = state;
  if (state == PeerState::kFailed) {
    pending_failures_.emplace_back(peer, why);
    have_failures_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  {
    std::lock_guard<std::mutex> l(mb_mu_);
    ++mb_events_;
  }
  mb_cv_.notify_all();
}

void VerbsTransport::FireFailures() {
  // Called after every batch of completions: no lock (nor handler copy)
  // unless a failure is queued.
  if (!have_failures_.load(std::memory_order_acquire)) return;
  std::vector<std::pair<int, absl::Status>> todo;
  PeerFailureHandler h;
  {
    std::lock_guard<std::mutex> l(mu_);
    have_failures_.store(false, std::memory_order_release);
    todo.swap(pending_failures_);
    h = handler_;
  }
  for (auto& f : todo) {
    GASP_LOG(Warn) << "verbs rank " << options_.rank << ": " << f.second.message();
    if (h) h(f.first, f.second);
  }
}

// Connects (or returns) this rank's outgoing QP of `kind` to `peer`.
void VerbsTransport::ProgressLoop() {
  SetThreadName("gasp-verbs");
  uint64_t seen_epoch = spin_epoch_.load(std::memory_order_relaxed);
  while (!stop_.load(std::memory_order_acquire)) {
    // paused_ is atomic so that this check takes no lock: a waiter holds
    // mu_ while it posts and reaps, and blocking on it here would cost the
    // waiter a futex wake (a syscall and an IPI) each time.
    if (paused_.load(std::memory_order_acquire) || parked_) {
      Lock l(mu_);
      if (paused_.load(std::memory_order_relaxed)) {
        // Test hook, a hung process: no completion or message is processed.
        // Connection requests still are (as a kernel TCP stack accepts and
        // buffers for a hung process), so a peer's goodbye is not lost.
        parked_ = true;
        cv_.notify_all();
        l.unlock();
        pollfd pf[2] = {{wake_fd_, POLLIN, 0}, {cm_ch_->fd, POLLIN, 0}};
        if (poll(pf, 2, 10) > 0) {
          if (pf[0].revents) {
            uint64_t v;
            (void)!read(wake_fd_, &v, 8);
          }
          if (pf[1].revents) {
            rdma_cm_event* ev = nullptr;
            while (rdma_get_cm_event(cm_ch_, &ev) == 0) HandleCmEvent(ev);
          }
        }
        continue;
      }
      parked_ = false;
    }
    pollfd fds[2 + kMaxDevices];  // wake-up, CM channel, one CQ channel per device
    int n = 0;
    fds[n++] = {wake_fd_, POLLIN, 0};
    fds[n++] = {cm_ch_->fd, POLLIN, 0};
    const int nd = ndevs_.load(std::memory_order_acquire);
    // A CQ lock held by someone else means a waiter is reaping: treat the
    // CQs as disarmed (look again in a millisecond) rather than wait for it.
    bool all_armed = false;
    if (cq_mu_.try_lock()) {
      all_armed = true;
      for (int i = 0; i < nd; ++i) all_armed = all_armed && devs_fast_[i]->armed;
      cq_mu_.unlock();
    }
    for (int i = 0; i < nd; ++i) fds[n++] = {devs_fast_[i]->ch->fd, POLLIN, 0};
    // A disarmed CQ (a waiter was spinning on it) is re-armed after a quiet
    // millisecond (nobody spinning); otherwise block until something happens.
    if (poll(fds, static_cast<nfds_t>(n), all_armed ? -1 : 1) < 0) continue;
    if (fds[0].revents) {
      uint64_t v;
      (void)!read(wake_fd_, &v, 8);
    }
    if (stop_.load(std::memory_order_acquire)) break;
    if (fds[1].revents) {
      rdma_cm_event* ev = nullptr;
      while (rdma_get_cm_event(cm_ch_, &ev) == 0) HandleCmEvent(ev);
    }
    // Quiet: no waiter started spinning since the last look (back-to-back
    // ops keep the CQ disarmed; their waiters reap the completions).
    const uint64_t epoch = spin_epoch_.load(std::memory_order_relaxed);
    const bool quiet = epoch == seen_epoch && spinners_.load(std::memory_order_acquire) == 0;
    seen_epoch = epoch;
    bool events = false;
    for (int i = 0; i < nd; ++i) events = events || fds[2 + i].revents != 0;
    if (!events && !quiet) {
      // A timeout while waiters spin: they reap their own completions and
      // every message on the CQ; nothing to do, and no lock to take.
      FireFailures();
      continue;
    }
    {
      std::lock_guard<std::mutex> cql(cq_mu_);
      for (int i = 0; i < nd; ++i) {
        Dev* d = devs_fast_[i];
        bool drain = false;
        if (fds[2 + i].revents) {
          ibv_cq* cq = nullptr;
          void* ctx = nullptr;
          while (ibv_get_cq_event(d->ch, &cq, &ctx) == 0) {
            ibv_ack_cq_events(cq, 1);
            d->armed = false;
          }
          drain = true;
        }
        // Re-arm only when no waiter spins on the CQ: a spinning waiter
        // reaps its completions itself, and an armed CQ would wake this
        // thread for each of them.
        if (!d->armed && spinners_.load(std::memory_order_acquire) == 0 && quiet) {
          ibv_req_notify_cq(d->cq, 0);
          d->armed = true;
          drain = true;
        }
        if (drain) DrainCq(d);
      }
    }
    FireFailures();
  }
}

absl::Status VerbsTransport::Shutdown(absl::Time deadline) {
  {
    Lock l(mu_);
    if (shut_down_) return absl::OkStatus();
    // Goodbye to every live peer we have a connection with (either way).
    std::vector<int> bye;
    for (const auto& c : conns_) {
      if (c->state == Conn::kUp && c->peer != options_.rank &&
          peer_state_[static_cast<size_t>(c->peer)] == PeerState::kAlive &&
          std::find(bye.begin(), bye.end(), c->peer) == bye.end()) {
        bye.push_back(c->peer);
      }
    }
    for (int p : bye) {
      const absl::Time d = std::min(deadline, absl::Now() + absl::Seconds(2));
      absl::Status s = SendInternal(l, p, 0, kMsgFlagBye, {}, d);
      if (!s.ok()) {
        GASP_LOG(Debug) << "verbs: goodbye to rank " << p << ": " << s;
      }
    }
    shut_down_ = true;
    cv_.notify_all();
  }
  StopProgressAndFlush();
  Lock l(mu_);
  for (auto& c : conns_) {
    if (c->id != nullptr) TearDown(l, c.get());
  }
  cv_.notify_all();
  return absl::OkStatus();
}

void VerbsTransport::StopProgressAndFlush() {
  {
    std::lock_guard<std::mutex> l(mb_mu_);
    ++mb_events_;  // a Recv waiting sees the shutdown at once
  }
  mb_cv_.notify_all();
  stop_.store(true, std::memory_order_release);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, 8);
  }
  if (progress_.joinable()) progress_.join();
  Lock l(mu_);
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].in_use) FinishSlot(i, CompletionCode::kFlushed);
  }
}

VerbsTransport::~VerbsTransport() {
  if (progress_.joinable() || (cm_ch_ != nullptr && !shut_down_)) {
    Shutdown(absl::Now() + absl::Seconds(5)).IgnoreError();
  }
  for (auto& c : conns_) {
    if (c->recv_mr) ibv_dereg_mr(c->recv_mr);
    if (c->send_mr) ibv_dereg_mr(c->send_mr);
  }
  for (auto& r : regions_) {
    if (r.second.mr) ibv_dereg_mr(r.second.mr);
  }
  if (listener_) rdma_destroy_id(listener_);
  for (auto& d : devs_) {
    if (d->pool_mr) ibv_dereg_mr(d->pool_mr);
    if (d->cq) ibv_destroy_cq(d->cq);
    if (d->ch) ibv_destroy_comp_channel(d->ch);
    if (d->pd) ibv_dealloc_pd(d->pd);
  }
  if (cm_ch_) rdma_destroy_event_channel(cm_ch_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (cm_devices_) {
    for (int i = 0; cm_devices_[i]; ++i) ibv_close_device(cm_devices_[i]);
    delete[] cm_devices_;
  }
}

absl::Status VerbsTransport::CrashForTesting() {
  {
    Lock l(mu_);
    if (crashed_) return absl::OkStatus();
    crashed_ = true;
    shut_down_ = true;  // later ops are flushed, no goodbye is ever sent
    paused_ = false;
    cv_.notify_all();
  }
  StopProgressAndFlush();
  Lock l(mu_);
  // Destroy every QP and cm_id without rdma_disconnect, as the kernel does
  // for a killed process (the CM still tells the peers: DREQ).
  for (auto& c : conns_) {
    rdma_cm_id* id = c->id;
    if (id == nullptr) continue;
    c->id = nullptr;
    c->state = Conn::kClosed;
    c->we_disconnected = true;
    c->head = c->tail = kNoSlot;
    l.unlock();
    if (id->qp) rdma_destroy_qp(id);
    rdma_destroy_id(id);
    l.lock();
  }
  rdma_cm_id* listener = listener_;
  listener_ = nullptr;
  l.unlock();
  if (listener) rdma_destroy_id(listener);
  return absl::OkStatus();
}

absl::Status VerbsTransport::PauseForTesting(bool paused) {
  Lock l(mu_);
  if (crashed_ || shut_down_) {
    return absl::FailedPreconditionError("verbs pause hook: transport shut down");
  }
  if (paused == paused_) return absl::OkStatus();
  if (paused) {
    paused_ = true;
    if (wake_fd_ >= 0) {
      uint64_t one = 1;
      (void)!write(wake_fd_, &one, 8);
    }
    while (!parked_) cv_.wait_for(l, std::chrono::milliseconds(5));
    // The NIC would still answer one-sided ops of a hung process: make the
    // responder QPs silent (RESET drops every request; the requesters
    // retransmit), saving what is needed to bring them back.
    for (auto& c : conns_) {
      if (!c->passive || c->kind != kOpsConn || c->state != Conn::kUp || c->id == nullptr ||
          c->id->qp == nullptr) {
        continue;
      }
      auto saved = std::make_unique<ibv_qp_attr>();
      ibv_qp_init_attr init{};
      const int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS |
                       IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                       IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER | IBV_QP_TIMEOUT |
                       IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                       IBV_QP_MAX_QP_RD_ATOMIC;
      if (ibv_query_qp(c->id->qp, saved.get(), mask, &init) != 0) {
        GASP_LOG(Warn) << "verbs pause hook: ibv_query_qp: " << strerror(errno);
        continue;
      }
      ibv_qp_attr r{};
      r.qp_state = IBV_QPS_RESET;
      if (ibv_modify_qp(c->id->qp, &r, IBV_QP_STATE) != 0) {
        GASP_LOG(Warn) << "verbs pause hook: to RESET: " << strerror(errno);
        continue;
      }
      c->saved = std::move(saved);
    }
    return absl::OkStatus();
  }
  // Resume: RESET -> INIT -> RTR -> RTS with the saved attributes (PSNs
  // included), so the requesters' retransmissions are served.
  for (auto& c : conns_) {
    if (!c->saved) continue;
    std::unique_ptr<ibv_qp_attr> a = std::move(c->saved);
    if (c->id == nullptr || c->id->qp == nullptr) continue;
    ibv_qp* qp = c->id->qp;
    ibv_qp_attr x{};
    x.qp_state = IBV_QPS_INIT;
    x.pkey_index = a->pkey_index;
    x.port_num = a->port_num;
    x.qp_access_flags = a->qp_access_flags;
    int rc = ibv_modify_qp(qp, &x,
                           IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
    if (rc == 0) {
      x = ibv_qp_attr{};
      x.qp_state = IBV_QPS_RTR;
      x.ah_attr = a->ah_attr;
      x.path_mtu = a->path_mtu;
      x.dest_qp_num = a->dest_qp_num;
      x.rq_psn = a->rq_psn;
      x.max_dest_rd_atomic = a->max_dest_rd_atomic;
      x.min_rnr_timer = a->min_rnr_timer;
      rc = ibv_modify_qp(qp, &x,
                         IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                             IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
    }
    if (rc == 0) {
      x = ibv_qp_attr{};
      x.qp_state = IBV_QPS_RTS;
      x.timeout = a->timeout;
      x.retry_cnt = a->retry_cnt;
      x.rnr_retry = a->rnr_retry;
      x.sq_psn = a->sq_psn;
      x.max_rd_atomic = a->max_rd_atomic;
      rc = ibv_modify_qp(qp, &x,
                         IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                             IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
    }
    if (rc != 0) {
      GASP_LOG(Warn) << "verbs pause hook: restoring the QP from rank " << c->peer << ": "
                     << strerror(errno);
    }
  }
  paused_ = false;
  cv_.notify_all();
  return absl::OkStatus();
}

}  // namespace verbs

absl::StatusOr<std::unique_ptr<Transport>> CreateVerbsTransport(const TransportOptions& options,
                                                                const VerbsOptions& verbs) {
  if (options.job_secret.size() < 16) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the verbs transport needs the job secret (boot/job_secret.h) to authenticate its "
        "connections; got %d bytes, need at least 16",
        options.job_secret.size()));
  }
  auto t = std::make_unique<verbs::VerbsTransport>(options, verbs);
  GASP_RETURN_IF_ERROR(t->Init());
  return std::unique_ptr<Transport>(std::move(t));
}

absl::Status VerbsCrashForTesting(Transport* transport) {
  auto* v = dynamic_cast<verbs::VerbsTransport*>(transport);
  if (v == nullptr) return absl::InvalidArgumentError("not a verbs transport");
  return v->CrashForTesting();
}

absl::Status VerbsPauseForTesting(Transport* transport, bool paused) {
  auto* v = dynamic_cast<verbs::VerbsTransport*>(transport);
  if (v == nullptr) return absl::InvalidArgumentError("not a verbs transport");
  return v->PauseForTesting(paused);
}

}  // namespace transport
}  // namespace gasp

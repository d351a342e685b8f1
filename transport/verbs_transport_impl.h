// Internals of the verbs backend (shared by verbs_transport_setup.cc,
// verbs_transport_cm.cc and verbs_transport_datapath.cc). See verbs_transport.h for the design.
#ifndef GASP_TRANSPORT_VERBS_TRANSPORT_IMPL_H_
#define GASP_TRANSPORT_VERBS_TRANSPORT_IMPL_H_

#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <rdma/rdma_cma.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "base/log_limit.h"
#include "transport/transport.h"
#include "transport/verbs_cm_proof.h"
#include "transport/verbs_transport.h"

namespace gasp {
namespace transport {
namespace verbs {

inline constexpr uint16_t kVerbsBlobVersion = 1;
inline constexpr size_t kBounceBytes = 4096;      // per op slot
inline constexpr size_t kChunkBytes = 16384;      // message chunk / recv buffer
inline constexpr size_t kMsgHeaderBytes = 16;     // {tag u32, flags u32, total u64}
inline constexpr int kRecvDepth = 64;             // posted receives per msg QP
inline constexpr int kSendWindow = 16;            // message chunks in flight
inline constexpr int kSignalEvery = 8;            // one signaled message chunk in this many
static_assert(kSendWindow % kSignalEvery == 0 && kSendWindow >= 2 * kSignalEvery,
              "a full ring always holds a signaled chunk");
inline constexpr uint32_t kMsgFlagBye = 1;
inline constexpr uint64_t kMaxOpBytes = uint64_t{1} << 30;

// wr_id encoding: top byte = kind.
inline constexpr uint64_t kWrOp = 1, kWrMsgSend = 2, kWrRecv = 3;
inline uint64_t WrKind(uint64_t wr) { return wr >> 56; }

struct Endpoint {
  uint32_t ipv4 = 0;  // host order
  uint16_t port = 0;
  uint32_t pid = 0;
  uint32_t rank = 0;
  uint64_t nonce = 0;
};
EndpointBlob EncodeVerbsEndpoint(const Endpoint& e);
// Errors name `rank` (the blob's index) and what is wrong.
absl::StatusOr<Endpoint> DecodeVerbsEndpoint(const EndpointBlob& blob, int rank);

// "10.0.0.5" for an address in host order; a sockaddr for it.
std::string Ip(uint32_t host_order);
sockaddr_in SockAddr(uint32_t ip, uint16_t port);

// Devices one rank uses at most (GASP_NET_DEVICES lists more only for the
// ranks of a host to spread over).
inline constexpr int kMaxDevices = 4;

// Connection set-up (verbs_transport_cm.cc).
inline constexpr int kCmResolveTimeoutMs = 2000;  // address and route resolution
inline constexpr int kMaxRdAtomic = 16;           // READs/atomics in flight per QP
inline constexpr uint8_t kRnrRetryInfinite = 7;   // 7 = retry forever on RNR NAK

// --- Device discovery (verbs_device.cc) ---
const char* PortStateName(int state);
int MtuBytes(int ibv_mtu);  // IBV_MTU_1024 -> 1024; 0 if unknown
uint32_t GidIpv4(const ibv_gid& g);  // ::ffff:a.b.c.d -> a.b.c.d (host order), else 0
std::string GidString(const ibv_gid& g);

// Every device of ibv_get_device_list, opened (closed again unless `keep`).
struct OpenDevices {
  OpenDevices();
  ~OpenDevices();
  OpenDevices(const OpenDevices&) = delete;
  OpenDevices& operator=(const OpenDevices&) = delete;
  std::vector<ibv_context*> ctxs;
  std::vector<std::string> unopened;
  std::string error;  // why there are none ("0 devices", errno text)
  bool keep = false;
};

std::vector<RdmaPortInfo> ListPorts(const std::vector<ibv_context*>& ctxs);

// A non-zero GID table entry (sysfs gids/<i> and gid_attrs/types/<i>).
struct GidInfo {
  int index = 0;
  ibv_gid gid{};
  std::string type;  // "RoCE v2", "RoCE v1", "IB"
  std::string ndev;  // gid_attrs/ndevs/<i>
  uint32_t ipv4 = 0;
};
std::vector<GidInfo> GidTable(ibv_context* ctx, int port);

absl::StatusOr<VerbsDeviceSelection> SelectOnContexts(const OpenDevices& devs,
                                                      const VerbsOptions& verbs);

// Per-device resources (the home device, plus the alt device when used).
struct Dev {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_comp_channel* ch = nullptr;
  ibv_cq* cq = nullptr;
  ibv_mr* pool_mr = nullptr;  // the bounce pool registered on this PD
  int max_cqe = 0;
  // CQ notification armed (one-shot). Under cq_mu_. While a waiter spins
  // on Poll the progress thread leaves it disarmed (no wake-ups).
  bool armed = false;
};

inline constexpr uint32_t kNoSlot = 0xffffffffu;

enum ConnKind : int { kOpsConn = 0, kMsgConn = 1 };

// One RC QP. Never freed before the transport (CQEs and cm events may
// still name it); only its QP / cm_id are destroyed.
struct Conn {
  uint32_t serial = 0;  // index in VerbsTransport::conns_
  int peer = -1;
  ConnKind kind = kOpsConn;
  bool passive = false;
  enum State { kConnecting, kUp, kFailed, kError, kClosed } state = kConnecting;
  rdma_cm_id* id = nullptr;
  Dev* dev = nullptr;
  std::string error;        // why the last attempt failed
  bool we_disconnected = false;
  // Receive side (passive msg conns).
  std::unique_ptr<uint8_t[]> recv_mem;
  ibv_mr* recv_mr = nullptr;
  bool r_active = false;
  uint32_t r_tag = 0, r_flags = 0;
  uint64_t r_total = 0;
  std::vector<uint8_t> r_buf;
  // Send side (active msg conns).
  std::unique_ptr<uint8_t[]> send_mem;
  ibv_mr* send_mr = nullptr;
  int send_pending = 0;     // chunks posted and not completed
  uint64_t send_next = 0;   // chunks posted in all; the next uses slot send_next % kSendWindow
  int send_unsignaled = 0;  // chunks posted since the last signaled one
  bool send_failed = false;
  // Ops QPs: slots posted and not yet completed, in posting order (only the
  // last WR of a chain is signaled; its completion completes those before).
  uint32_t head = kNoSlot, tail = kNoSlot;
  uint32_t max_inline = 0;  // the QP's max_inline_data
  // Passive ops QPs: attributes saved while paused (test hook).
  std::unique_ptr<ibv_qp_attr> saved;
  // Active: what this connection's REQ proved (verbs_cm_proof.h); the REP
  // must carry the acceptor's MAC over the same transcript.
  CmTranscript cm;
  // Active: the other side is not of this job (it said so, or its REP
  // failed the check): the peer is failed at once, without retries.
  bool refused = false;
};

struct RegionEntry {
  void* addr = nullptr;
  size_t length = 0;
  uint32_t access = 0;
  ibv_mr* mr = nullptr;
};

// An outstanding one-sided op.
struct Slot {
  bool in_use = false;
  uint32_t gen = 0;
  CompletionCounter* counter = nullptr;  // null once abandoned
  Conn* conn = nullptr;
  int peer = -1;
  uint64_t user_wr_id = 0;
  OpType type = OpType::kRead;
  void* local = nullptr;
  uint64_t length = 0;
  uint8_t* buf = nullptr;  // bounce (pool slot or large allocation)
  uint8_t* large = nullptr;
  ibv_mr* large_mr = nullptr;
  bool direct = false;     // zero copy (registered local buffer) or inline
  bool linked = false;     // on conn's outstanding list
  uint32_t prev = kNoSlot, next = kNoSlot;
  ibv_send_wr wr{};
  ibv_sge sge{};
};

// A local registration, for zero-copy lookups of local buffers.
struct LocalMr {
  uintptr_t begin = 0, end = 0;
  uint32_t lkey = 0;
  uint32_t id = 0;
};

class VerbsTransport : public Transport {
 public:
  VerbsTransport(const TransportOptions& options, const VerbsOptions& verbs);
  ~VerbsTransport() override;

  absl::Status Init();

  std::string name() const override { return "verbs"; }
  int rank() const override { return options_.rank; }
  int size() const override { return options_.size; }
  Capabilities capabilities() const override;
  EndpointBlob LocalEndpoint() const override { return EncodeVerbsEndpoint(self_); }
  absl::Status Connect(absl::Span<const EndpointBlob> endpoints) override;
  absl::StatusOr<Region> Register(void* addr, size_t length, uint32_t access) override;
  absl::Status Deregister(const Region& region) override;
  absl::Status Post(absl::Span<const Op> ops, CompletionCounter* counter) override;
  void Abandon(CompletionCounter* counter) override;
  int Poll() override;
  absl::Status Wait(CompletionCounter* counter, absl::Time deadline) override;
  absl::Status Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) override;
  absl::StatusOr<Message> Recv(uint32_t tag, int from, absl::Time deadline) override;
  void SetPeerFailureHandler(PeerFailureHandler handler) override;
  absl::Status Shutdown(absl::Time deadline) override;

  // Test hooks (verbs_transport.h).
  // Wakes and joins the progress thread, then completes every outstanding
  // op with kFlushed (shared by Shutdown and CrashForTesting).
  void StopProgressAndFlush();
  absl::Status CrashForTesting();
  absl::Status PauseForTesting(bool paused);

 private:
  enum class PeerState { kAlive, kGone, kFailed };
  using Lock = std::unique_lock<std::mutex>;

  // setup
  absl::Status SelectDevice();
  absl::StatusOr<Dev*> GetDev(ibv_context* ctx);  // REQUIRES mu_
  absl::Status CreateQp(Conn* c);                  // REQUIRES mu_
  absl::Status PostRecv(Conn* c, int index);
  // Returns the up connection of `kind` to `peer`, connecting (blocking,
  // retrying until `deadline`) when needed. A deadline of InfinitePast
  // means GASP_TIMEOUT from the moment a wait is needed. REQUIRES mu_ held
  // via `l`.
  absl::StatusOr<Conn*> EnsureConn(Lock& l, int peer, ConnKind kind, absl::Time deadline);
  void TearDown(Lock& l, Conn* c, CompletionCode code = CompletionCode::kFlushed);
  void SetAckTimeout(rdma_cm_id* id);  // GASP_IB_TIMEOUT
  void ProgressLoop();
  // rdma_cm events (verbs_transport_cm.cc); REQUIRES nothing held.
  void HandleCmEvent(rdma_cm_event* ev);
  // The steps of HandleCmEvent; REQUIRE mu_.
  void OnRouteResolved(Conn* c);
  void OnEstablished(Conn* c, absl::Span<const uint8_t> reply);
  void OnDisconnected(Lock& l, Conn* c);
  void FailConn(Conn* c, std::string why);
  // Connection parameters of both sides (REQ and REP), carrying
  // `private_data`.
  rdma_conn_param ConnParams(rdma_cm_id* id, const void* private_data, size_t private_len) const;
  void OnConnectRequest(rdma_cm_id* id, const void* pdata, size_t plen);
  // The job secret, the key of the CM handshake (verbs_cm_proof.h).
  absl::Span<const uint8_t> SecretKey() const {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(options_.job_secret.data()),
                                     options_.job_secret.size());
  }
  void MarkPeer(int peer, PeerState state, const absl::Status& why);  // REQUIRES mu_
  void FireFailures();  // calls queued handlers; REQUIRES !mu_

  // datapath
  int DrainCq(Dev* dev);  // REQUIRES cq_mu_
  // Arms every CQ's notification that is not armed, then drains. !mu_.
  void ArmAndDrain();
  // Posts `count` ops (indices into `ops`) to `peer`. REQUIRES mu_ via l.
  void PostPeer(Lock& l, int peer, absl::Span<const Op> ops, const uint32_t* list, size_t count,
                CompletionCounter* counter, absl::Time deadline);
  uint32_t FindLkey(const void* p, uint64_t len) const;  // 0: not registered. REQUIRES mu_
  void Unlink(uint32_t idx);  // from its conn's list. REQUIRES mu_
  void OnWc(const ibv_wc& wc);  // REQUIRES mu_
  void OnRecv(Conn* c, int index, uint32_t bytes);  // REQUIRES mu_
  void FinishSlot(uint32_t idx, CompletionCode code);  // REQUIRES mu_
  CompletionCode LocalOp(const Op& op);                // REQUIRES mu_
  const RegionEntry* CheckKey(RemoteKey key, uint64_t addr, uint64_t len, uint32_t right) const;
  void DeliverMessage(int from, uint32_t tag, std::vector<uint8_t> payload);
  absl::Status SendInternal(Lock& l, int peer, uint32_t tag, uint32_t flags,
                            absl::Span<const uint8_t> payload, absl::Time deadline);
  // Waits until at most `max_pending` message chunks of `c` are in flight;
  // Unavailable if one failed. REQUIRES mu_ (held by `l`).
  absl::Status WaitSends(Lock& l, Conn* c, int peer, int max_pending, absl::Time deadline);

  TransportOptions options_;
  VerbsOptions verbs_;
  Endpoint self_;
  uint32_t alt_ip_ = 0;
  std::string device_name_;
  int port_ = 1;
  int active_mtu_ = 0;

  ibv_context** cm_devices_ = nullptr;
  ibv_context* home_ctx_ = nullptr;
  rdma_event_channel* cm_ch_ = nullptr;
  rdma_cm_id* listener_ = nullptr;
  int wake_fd_ = -1;
  std::thread progress_;
  std::atomic<bool> stop_{false};

  std::mutex cq_mu_;  // ordered before mu_
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Dev>> devs_;
  std::atomic<int> ndevs_{0};
  Dev* devs_fast_[kMaxDevices] = {};
  std::unique_ptr<uint8_t[]> pool_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> active_[2];  // [kind][peer]
  std::vector<Endpoint> peers_;
  bool connected_ = false;
  std::vector<PeerState> peer_state_;
  std::vector<bool> bye_seen_;
  // Nonces of connection requests accepted (a replayed REQ is refused).
  absl::flat_hash_set<uint64_t> cm_nonces_;
  LogLimiter cm_refused_log_;
  std::map<uint32_t, RegionEntry> regions_;
  uint32_t next_region_ = 1;
  bool shut_down_ = false;
  PeerFailureHandler handler_;
  std::vector<std::pair<int, absl::Status>> pending_failures_;
  std::atomic<bool> have_failures_{false};  // pending_failures_ non-empty
  std::vector<std::unique_ptr<std::mutex>> send_mu_;
  std::vector<LocalMr> local_mrs_;  // sorted by begin
  std::atomic<int> spinners_{0};    // threads spinning on Poll in Wait
  std::atomic<uint64_t> spin_epoch_{0};  // bumped by each spin (progress: recent activity)
  // Pause hook: the progress thread parks while set. Written under mu_;
  // atomic so the progress thread can test it without the lock.
  std::atomic<bool> paused_{false};
  bool parked_ = false;  // written by the progress thread under mu_
  bool crashed_ = false;

  std::mutex mb_mu_;
  std::condition_variable mb_cv_;
  std::deque<Message> mailbox_;
  // Messages delivered and peers lost so far (guarded by mb_mu_): a Recv
  // that found nothing sleeps only while this is what it saw, so a
  // delivery between its look and its wait is not missed.
  uint64_t mb_events_ = 0;
};

}  // namespace verbs
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_VERBS_TRANSPORT_IMPL_H_

// Internal to the shm backend: the ShmTransport class, split over
// shm_transport_setup.cc (creation, endpoints, connecting and accepting,
// peer failures, shutdown, test hooks) and shm_transport_datapath.cc
// (posting, messages, the progress thread and the target-side service).
//
// Threads and ownership:
//  * Application threads write requests and messages into the request ring
//    of their outgoing connection to a peer, under its send mutex, waiting
//    (shared futex, bounded) while the ring is full.
//  * The accept thread accepts node-mates, checks their uid, runs the
//    handshake with a short deadline and maps their memfd; a stranger can
//    delay other connections by at most kAcceptTimeout, never the data
//    path.
//  * The progress thread consumes every ring this rank consumes: requests
//    on incoming connections (it executes them and writes the responses,
//    only when the response ring has room for the whole response, so it
//    never blocks on a peer) and responses on outgoing ones (it completes
//    ops). It watches the sockets for a peer's end or goodbye, and sleeps
//    in epoll_wait on its doorbell eventfd and the sockets.
//  * Conn objects live until the transport is destroyed (threads may hold
//    pointers); sockets are closed by the progress thread, or by
//    Shutdown/Crash after it stopped.
#ifndef GASP_TRANSPORT_SHM_TRANSPORT_IMPL_H_
#define GASP_TRANSPORT_SHM_TRANSPORT_IMPL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/log_limit.h"
#include "transport/inbox.h"
#include "transport/pause_gate.h"
#include "transport/peer_failures.h"
#include "transport/shm_ring.h"
#include "transport/shm_transport.h"
#include "transport/shm_wire.h"
#include "transport/tcp_op_table.h"
#include "transport/tcp_region_table.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace shm {

// Outstanding remote ops and registered regions at a time.
inline constexpr size_t kMaxOutstandingOps = 4096;
inline constexpr size_t kMaxRegions = 4096;
// Bound on an incoming connection's set-up (handshake, ring hand-over).
inline constexpr absl::Duration kAcceptTimeout = absl::Seconds(1);
// Bytes on a socket after set-up: the goodbye, and the set-up messages.
inline constexpr uint8_t kByeByte = 'B';
inline constexpr uint8_t kRingsByte = 'R';
inline constexpr uint8_t kDoorbellByte = 'D';

// One connection: the socket and the segment with its two rings.
struct Conn {
  Conn(int p, bool out, int s, int bell, Segment sg)
      : peer(p), outgoing(out), sock(s), peer_doorbell(bell), seg(std::move(sg)) {}

  const int peer;
  const bool outgoing;  // this rank connected (its requests, our consumer of responses)
  int sock;             // closed (-1) by the progress thread, or after it stopped
  int peer_doorbell;    // the peer's eventfd: rung when its progress thread sleeps
  Segment seg;

  // Outgoing: application threads produce requests under send_mu.
  std::mutex send_mu;
  RingProducer requests;
  bool broken ABSL_GUARDED_BY(send_mu) = false;  // gave up: the peer is dropped
  // The consuming side of the connection (outgoing: responses; incoming:
  // requests, and the responses to them) is run by whoever holds
  // consume_mu: the progress thread, or an application thread that waits
  // for a reply (outgoing) or a message (incoming) and drains the ring
  // itself rather than wait to be woken by the progress thread. Never
  // waited for by the progress thread except when the peer is gone.
  std::mutex consume_mu;
  RingConsumer responses ABSL_GUARDED_BY(consume_mu);       // outgoing
  RingConsumer peer_requests ABSL_GUARDED_BY(consume_mu);   // incoming
  RingProducer our_responses ABSL_GUARDED_BY(consume_mu);   // incoming
  bool blocked ABSL_GUARDED_BY(consume_mu) = false;  // waits for room for a response
  // The message being received in chunks (incoming).
  bool assembling ABSL_GUARDED_BY(consume_mu) = false;
  uint64_t assembled ABSL_GUARDED_BY(consume_mu) = 0;
  Message partial ABSL_GUARDED_BY(consume_mu);

  std::atomic<bool> closed{false};  // the peer was dropped
  bool registered = false;          // in the epoll set (progress thread only)
};

// The last ops an application thread posted to a remote peer: Wait drains
// that connection's responses itself when it waits for the same counter.
struct LastPost {
  const void* transport = nullptr;
  const CompletionCounter* counter = nullptr;
  int peer = -1;  // -1: none yet; kManyPeers: more than one
};
inline constexpr int kManyPeers = -2;
inline thread_local LastPost tl_last_post;

enum class TransportState : int { kRunning, kShutdown, kCrashed };

class ShmTransport final : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<ShmTransport>> Create(const TransportOptions& options);
  ~ShmTransport() override;

  std::string name() const override { return "shm"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Capabilities capabilities() const override;
  EndpointBlob LocalEndpoint() const override { return local_blob_; }
  absl::Status Connect(absl::Span<const EndpointBlob> endpoints) override;
  absl::StatusOr<Region> Register(void* addr, size_t length, uint32_t access) override;
  absl::Status Deregister(const Region& region) override;
  absl::Status Post(absl::Span<const Op> ops, CompletionCounter* counter) override;
  void Abandon(CompletionCounter* counter) override { ops_.Abandon(counter); }
  int Poll() override { return 0; }  // the progress thread does the work
  absl::Status Wait(CompletionCounter* counter, absl::Time deadline) override;
  absl::Status Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) override;
  absl::StatusOr<Message> Recv(uint32_t tag, int from, absl::Time deadline) override;
  void SetPeerFailureHandler(PeerFailureHandler handler) override;
  absl::Status Shutdown(absl::Time deadline) override;

  // Test hooks (shm_transport.h).
  absl::Status PauseProgress(bool paused);
  absl::Status Crash();

 private:
  struct Peer {
    ShmEndpoint endpoint;   // written by Connect before connected_, then read-only
    std::string name;       // "rank 3 (host pid 1234)"
    std::mutex connect_mu;  // serializes the lazy connection set-up
    std::atomic<Conn*> out{nullptr};
    std::atomic<Conn*> in{nullptr};
    bool said_bye = false;  // progress thread only
  };

  explicit ShmTransport(const TransportOptions& options);

  // ---- setup (shm_transport_setup.cc) ----
  absl::Status Start(const TransportOptions& options);
  std::string PeerName(int peer) const;
  bool Running() const;
  // The outgoing connection to `peer`, made on first use; on failure the
  // peer is marked unreachable and the error names it.
  absl::StatusOr<Conn*> Outgoing(int peer);
  absl::StatusOr<Conn*> Dial(int peer);
  void AcceptLoop();
  absl::Status AcceptOne(int fd);
  // Hands a new connection to the progress thread.
  void Publish(std::unique_ptr<Conn> conn);
  bool MarkPeerFailed(int peer, CompletionCode code, const absl::Status& why);
  bool MarkPeerDeparted(int peer);
  CompletionCode PeerFailCode(int peer) const;
  void Wake();
  bool OnProgressThread() const;
  void StopThreads();
  // Closes every socket, with the goodbye byte first unless `abrupt`.
  void CloseAll(bool abrupt);
  absl::Status Stop(TransportState to, bool abrupt);

  // ---- data path (shm_transport_datapath.cc) ----
  void PostToPeer(int peer, absl::Span<const Op> ops, CompletionCounter* counter);
  // Writes all records of `op` (req_id) into `c`'s request ring.
  absl::Status SendOp(Conn* c, const Op& op, uint64_t req_id);
  // Appends one record, waiting (bounded) for room; wakes the consumer.
  absl::Status PutRecord(Conn* c, const RecordHeader& h, const uint8_t* payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->send_mu);
  absl::Status WaitForRoom(Conn* c, uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->send_mu);
  // A send that failed: the peer is dropped (a partial record sequence
  // cannot be taken back).
  void SendFailed(Conn* c, const absl::Status& why);
  // Wait's and Recv's own draining of the one ring the reply or message
  // must arrive on, for GASP_SPIN_US (poll: until the deadline); nothing in
  // GASP_WAIT_MODE=block.
  void WaitDirect(CompletionCounter* counter, absl::Time deadline);
  std::optional<Message> RecvDirect(uint32_t tag, int from, absl::Time deadline);
  // The connection whose responses the calling thread's last posts to
  // `counter` wait for, when they all went to one peer (else null).
  Conn* DirectConn(const CompletionCounter* counter) const;
  // Spins (per GASP_WAIT_MODE), then sleeps on `c`'s ring itself (woken by
  // the producer through a shared futex), consuming what arrives, until
  // `done()`, the deadline, the connection's end or shutdown. `done` may
  // take what it waits for (Recv's message).
  void DrainWhileNot(Conn* c, absl::Time deadline, absl::FunctionRef<bool()> done);
  // Consumes what `c` holds (responses or requests); true when any record
  // was. REQUIRES: c->consume_mu held.
  // When something was consumed, the threads sleeping on the ring
  // themselves are woken (it may have been for them), but for the caller
  // when it is one of them (`caller_sleeps`).
  bool Consume(Conn* c, bool peer_gone = false, bool caller_sleeps = false);
  // The ring `c`'s consumer reads.
  static const RingConsumer& ConsumedRing(const Conn* c)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {  // only its shared words are used
    return c->outgoing ? c->responses : c->peer_requests;
  }
  void ProgressLoop();
  void AdoptNewConns();
  void SleepUntilWork();
  // Serves requests / completes responses; true when any record was consumed.
  bool ServeRequests(Conn* c, bool peer_gone);
  bool ServeOne(Conn* c, const RecordHeader& h);
  void OnMessageChunk(Conn* c, const RecordHeader& h);
  bool DrainResponses(Conn* c);
  // Completes the op of one response; false when the record is not a valid
  // answer (a protocol error).
  bool OnResponse(Conn* c, const RecordHeader& h);
  void OnSocketEvent(Conn* c, uint32_t events);
  // The peer said goodbye or its socket ended: drain what it sent, close
  // its connections and fail its ops.
  void PeerGone(int peer, bool said_bye);
  void ProtocolError(Conn* c, const absl::Status& why);
  void DropPeer(int peer, CompletionCode code);
  // Wakes the threads sleeping on `peer`'s rings themselves (DrainWhileNot)
  // so that they look at the peer's state, their ops and the transport's.
  void WakeDirectWaiters(int peer);

  const int rank_;
  const int size_;
  const absl::Duration timeout_;
  const uint64_t nonce_;
  const std::string secret_;
  std::atomic<int> state_{static_cast<int>(TransportState::kRunning)};
  std::atomic<bool> connected_{false};

  ShmEndpoint local_;
  EndpointBlob local_blob_;
  std::unique_ptr<Peer[]> peers_;

  PeerFailures failures_;  // delivered by the progress thread
  tcp::OpTable ops_;
  tcp::RegionTable regions_;
  // Per op slot (guarded by the slot's mutex): chunk replies still due, and
  // the op's remote address (READ chunks say where they belong by theirs).
  struct ChunkState {
    uint32_t remaining = 0;
    uint64_t remote_addr = 0;
  };
  std::unique_ptr<ChunkState[]> chunks_;

  int listen_fd_ = -1;
  int doorbell_fd_ = -1;  // this rank's eventfd, shared with node-mates
  int stop_fd_ = -1;      // wakes the accept thread for shutdown
  int epoll_fd_ = -1;
  std::thread progress_;
  std::thread acceptor_;
  std::atomic<std::thread::id> progress_id_{};
  std::atomic<bool> stop_{false};
  LogLimiter refused_log_;

  PauseGate pause_;  // test hook

  // Every connection (never freed before the destructor), and the ones the
  // progress thread has not taken up yet.
  std::mutex conns_mu_;
  std::vector<std::unique_ptr<Conn>> conns_ ABSL_GUARDED_BY(conns_mu_);
  std::vector<Conn*> new_conns_ ABSL_GUARDED_BY(conns_mu_);
  std::vector<Conn*> active_;  // progress thread only

  Inbox inbox_;
};

}  // namespace shm
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_SHM_TRANSPORT_IMPL_H_

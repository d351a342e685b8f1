// Internal to the tcp backend: the TcpTransport class, split over
// tcp_transport_setup.cc (listening, endpoints, connection set-up,
// handshake, shutdown), tcp_transport_datapath.cc (posting, the progress
// thread, the target-side service, messages) and tcp_transport_conns.cc
// (accepting, the incoming HELLO, closing connections, dropping peers).
//
// Connections: a rank dials each peer it posts or sends to (its outgoing
// connection, carrying its requests and the peer's responses). Messages
// share connections in both directions: a rank sends its messages to a
// peer on one connection between the two, chosen once, at its first Send
// to that peer, and kept (MessageConn in tcp_transport_messages.cc): the
// only one that exists then, or the one the lower rank dialed when both
// do, or a new outgoing one. So a message and its reply travel on one TCP
// stream each way (no bare ACK per segment), and a sender's messages stay
// in order (one stream). Every connection's readers accept messages.
//
// Threads and ownership:
//  * Application threads post requests on the outgoing connection to a
//    peer, and messages on the connection chosen for them, under that
//    connection's send mutex, with a bounded blocking write. On a
//    connection the peer dialed, the responses written by the
//    connection's owner share that mutex (FlushOutput only tries it, so
//    the progress thread never waits for a sender) and a sender waits
//    while a response is half written (Conn::out_partial).
//  * The progress thread owns everything else: it accepts incoming
//    connections, serves requests arriving on them (responses go to a
//    per-connection output ring flushed without blocking), reads responses
//    on outgoing connections and completes ops, and delivers peer-failure
//    notifications. It blocks in epoll_wait when there is nothing to do.
//  * A thread waiting for a reply on its outgoing connection to a peer (or
//    for a message from a peer, on that peer's incoming connection) takes
//    the connection over from the progress thread and reads it itself:
//    one thread wake-up per reply instead of two (tcp_transport_direct.cc).
//    Conn::owner says who runs a connection's input and output; the
//    progress thread skips connections an application thread owns, and
//    closes them only once they are handed back.
//  * Outgoing Conn objects, and incoming ones that completed the
//    handshake, live until the transport is destroyed (threads may hold
//    pointers); unauthenticated incoming ones are deleted by the progress
//    thread once closed.
#ifndef GASP_TRANSPORT_TCP_TRANSPORT_IMPL_H_
#define GASP_TRANSPORT_TCP_TRANSPORT_IMPL_H_

#include <sys/epoll.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "base/accept_guard.h"
#include "base/log_limit.h"
#include "transport/pause_gate.h"
#include "transport/peer_failures.h"
#include "transport/tcp_op_table.h"
#include "transport/tcp_region_table.h"
#include "transport/tcp_transport.h"
#include "transport/tcp_wire.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace tcp {

// Per-connection input buffer: small frames are coalesced through it,
// large payloads bypass it and are received straight into place.
inline constexpr size_t kInBufBytes = 64 << 10;
// Where discarded payload bytes are received.
inline constexpr size_t kScratchBytes = 64 << 10;
// Connections that have not completed the handshake yet (anyone on the
// network can open one): closed after kHelloTimeout; at most kMaxUnauthPerSource
// from one address and kMaxUnauthTotal in all (both at least the job size),
// beyond which new ones are closed at once. They get a header-sized input
// buffer until their HELLO is accepted.
inline constexpr absl::Duration kHelloTimeout = absl::Seconds(1);
inline constexpr int kMaxUnauthPerSource = 32;
inline constexpr int kMaxUnauthTotal = 256;

// A thread reading a connection directly blocks in recv (or poll) for at
// most this long at a time, then looks at its deadline and the transport's
// state again.
inline constexpr absl::Duration kDirectReadSlice = absl::Milliseconds(10);

// How long Shutdown waits, after its goodbyes, for the peers to close
// their ends (so that closing sends no reset that could discard the
// goodbye at a peer still writing).
inline constexpr absl::Duration kByeLinger = absl::Seconds(1);

// Queued responses above which a connection's requests are not read any
// more until its peer drains them (backpressure).
inline constexpr size_t kMaxQueuedFrames = 16384;

// A response waiting in a connection's output ring.
struct OutFrame {
  uint8_t header[kFrameHeaderSize];
  const uint8_t* payload = nullptr;  // READ_RESP: points into a pinned region
  uint64_t payload_len = 0;
  uint64_t sent = 0;  // bytes of header + payload written so far
  uint32_t pin = 0;   // region pin to release once sent (0 = none)
};

// One TCP connection.
struct Conn {
  enum class Kind { kIncoming, kOutgoing };
  // Where the payload of the frame being received goes.
  enum class Sink { kDiscard, kTarget, kLocal, kMessage };

  Conn(Kind k, int f, int p, std::string remote) : kind(k), fd(f), peer(p), remote(std::move(remote)) {}

  const Kind kind;
  // Outgoing: written (set to -1) only under send_mu; the progress thread
  // may read it without the lock since only it (or Shutdown after joining
  // it) closes connections.
  int fd;
  int peer;            // incoming: -1 until its HELLO arrived
  const std::string remote;  // "ip:port" of the other end, for logs

  // ---- who runs the input and output below (tcp_transport_direct.cc) ----
  enum class Owner { kNone, kProgress, kApp };
  std::mutex own_mu;
  Owner owner ABSL_GUARDED_BY(own_mu) = Owner::kNone;
  // Set when the connection must be closed while an application thread
  // owns it; the progress thread closes it once it is handed back.
  std::atomic<bool> close_pending{false};
  CompletionCode close_code ABSL_GUARDED_BY(own_mu) = CompletionCode::kPeerUnreachable;
  absl::Status close_why ABSL_GUARDED_BY(own_mu);
  // Outgoing, and the peer sends its messages on its own connection
  // (Parkable): watched for its end only (kParkedEvents), because no op to
  // the peer is live and the last thread that read it directly may read
  // it again without telling epoll twice. Written under own_mu.
  std::atomic<bool> parked{false};
  // The progress thread skipped an event while an application thread
  // owned the connection: it is watched again (not parked) on hand-back.
  bool missed_event ABSL_GUARDED_BY(own_mu) = false;

  // ---- the owner only (the progress thread unless taken over) ----
  bool closed = false;
  bool said_bye = false;  // the peer sent BYE on this connection
  uint32_t epoll_events = 0;
  std::unique_ptr<uint8_t[]> inbuf;  // coalesces small frames
  size_t inbuf_cap = kInBufBytes;
  // Incoming, before its PROOF checked out: counted in the unauthenticated
  // caps. After its HELLO, `claimed` is the rank it says it is and
  // `expected_proof` the PROOF that rank must send (tcp_wire.h).
  bool unauth = false;
  uint32_t source_ip = 0;
  absl::Time hello_deadline = absl::InfiniteFuture();
  int claimed = -1;
  Mac expected_proof{};
  size_t in_begin = 0;
  size_t in_end = 0;
  bool in_payload = false;  // header done, payload in progress
  FrameHeader cur;          // frame being received
  uint64_t payload_done = 0;
  Sink sink = Sink::kDiscard;
  uint8_t* target = nullptr;  // kTarget: destination in a pinned region
  uint32_t target_pin = 0;
  CompletionCode target_code = CompletionCode::kSuccess;  // WRITE_REQ verdict
  std::vector<uint8_t> msg;                                 // kMessage buffer
  std::vector<OutFrame> ring;  // output ring (power-of-two size)
  size_t ring_head = 0;
  size_t ring_count = 0;

  // ---- writers of the socket: application threads (requests, messages)
  // and, on an incoming connection, the owner flushing its responses ----
  std::mutex send_mu;
  bool send_closed ABSL_GUARDED_BY(send_mu) = false;
  // Why a sender gave up on the connection (reported when it is closed).
  absl::Status broken ABSL_GUARDED_BY(send_mu);
  // The owner's last flush left a response frame half written: nobody
  // else may write before it is finished (send_cv announces that).
  bool out_partial ABSL_GUARDED_BY(send_mu) = false;
  std::condition_variable send_cv;
};

// A copy of `s` that shares nothing with it. absl::Status reference-counts
// its message; handing a shared one to another thread makes the last
// Unref (inside Debian's uninstrumented libabsl) invisible to TSan. Every
// status that crosses threads here is detached first.
inline absl::Status Detached(const absl::Status& s) {
  return s.ok() ? absl::OkStatus() : absl::Status(s.code(), std::string(s.message()));
}

// The epoll events a connection needs: input unless its responses back up,
// output while responses wait.
inline uint32_t WantedEvents(const Conn* c) {
  uint32_t want = EPOLLRDHUP;
  if (c->ring_count < kMaxQueuedFrames) want |= EPOLLIN;  // else: backpressure
  if (c->ring_count > 0) want |= EPOLLOUT;
  return want;
}

// The epoll events of a connection an application thread reads directly,
// and of a parked one: its end (EOF, error) only, edge-triggered, so that
// the progress thread is neither woken by the data that thread reads nor
// raced by level reports.
inline constexpr uint32_t kParkedEvents = EPOLLRDHUP | EPOLLET;

// The connection this thread reads directly (tcp_transport_direct.cc), if
// any: its closes are deferred to the progress thread.
inline thread_local const Conn* tl_direct_conn = nullptr;
inline bool ReadingDirectly(const Conn* c) { return tl_direct_conn == c; }

enum class TransportState : int { kRunning, kShutdown, kCrashed };

class TcpTransport final : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<TcpTransport>> Create(const TransportOptions& options,
                                                              const TcpTransportOptions& tcp);
  ~TcpTransport() override;

  std::string name() const override { return "tcp"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Capabilities capabilities() const override;
  EndpointBlob LocalEndpoint() const override { return local_blob_; }
  absl::Status Connect(absl::Span<const EndpointBlob> endpoints) override;
  absl::StatusOr<Region> Register(void* addr, size_t length, uint32_t access) override;
  absl::Status Deregister(const Region& region) override;
  absl::Status Post(absl::Span<const Op> ops, CompletionCounter* counter) override;
  void Abandon(CompletionCounter* counter) override;
  // The progress thread completes ops; Poll only has parked connections
  // with live ops watched again (WatchParked), for threads that poll a
  // counter instead of calling Wait.
  int Poll() override {
    WatchParked();
    return 0;
  }
  absl::Status Wait(CompletionCounter* counter, absl::Time deadline) override;
  absl::Status Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) override;
  absl::StatusOr<Message> Recv(uint32_t tag, int from, absl::Time deadline) override;
  void SetPeerFailureHandler(PeerFailureHandler handler) override;
  absl::Status Shutdown(absl::Time deadline) override;

  // Test hooks (see tcp_transport.h).
  absl::Status PauseProgress(bool paused);
  absl::Status Crash();

 private:
  struct Peer {
    // Written by Connect before connected_ is published, then read-only.
    TcpEndpoint endpoint;
    std::string name;  // "rank 3 (host:pid)"
    std::mutex connect_mu;  // serializes lazy connection set-up
    std::atomic<Conn*> out{nullptr};
    // Set by the progress thread once the peer's HELLO and PROOF checked
    // out; read by application threads that read it directly or send
    // messages on it.
    std::atomic<Conn*> in{nullptr};
    // Its incoming connection said goodbye or closed: no message from the
    // peer can follow on it.
    std::atomic<bool> in_finished{false};
    // The same for the outgoing connection (the peer may send its
    // messages on it).
    std::atomic<bool> out_finished{false};
    // The connection this rank sends its messages to the peer on: chosen
    // once under msg_mu (MessageConn), never changed, so they stay in
    // order.
    std::mutex msg_mu;
    std::atomic<Conn*> msg_out{nullptr};
    // The connection the peer's messages last arrived on: where a Recv
    // from it reads directly.
    std::atomic<Conn*> msg_in{nullptr};
  };

  TcpTransport(const TransportOptions& options, const TcpTransportOptions& tcp);

  // ---- setup (tcp_transport_setup.cc) ----
  absl::Status Listen(const TransportOptions& options);
  absl::Status StartProgressThread();
  void StopProgressThread();
  // "rank 3 (host:pid)" once endpoints are known, else "rank 3".
  std::string PeerName(int peer) const;
  // The outgoing connection to `peer`, made on first use (dial with retry
  // until now + timeout, HELLO exchange). On failure the peer is marked
  // unreachable and the error names it.
  absl::StatusOr<Conn*> Outgoing(int peer);
  absl::StatusOr<int> Dial(int peer, absl::Time deadline);
  absl::Status Handshake(int peer, int fd, absl::Time deadline);
  // Dial and Handshake until the handshake completes (a blocking socket
  // with kDirectReadSlice timeouts). A handshake the peer closes before
  // answering (its accept guard refusing a crowded address) is tried again
  // on a new connection until `deadline`; other errors are final at once.
  absl::StatusOr<int> DialAuthenticated(int peer, absl::Time deadline);
  // Marks `peer` failed (once) and queues the failure notification; ops and
  // connections are cleaned up by the caller / progress thread.
  bool MarkPeerFailed(int peer, CompletionCode code, const absl::Status& why);
  bool MarkPeerDeparted(int peer);
  // Completion code for ops to `peer` given its state (kSuccess if alive).
  CompletionCode PeerFailCode(int peer) const;
  void Wake();
  void CloseAllSockets(bool abrupt, absl::Time deadline, absl::Status* status);
  // CloseAllSockets, after its goodbyes and half closes: reads and drops
  // the input of `conns` until each peer closed its end or `until`.
  void DrainUntilPeersClose(const std::vector<Conn*>& conns, absl::Time until);
  bool OnProgressThread() const;

  // ---- data path (tcp_transport_datapath.cc) ----
  void PostToPeer(int peer, absl::Span<const Op> ops, CompletionCounter* counter);
  void SendRequests(Conn* conn, int peer, absl::Span<const Op> ops, const uint64_t* req_ids);
  // Sends under the connection's send mutex; on failure breaks the
  // connection (the progress thread then reports the peer) and returns the
  // error.
  absl::Status SendOnConn(Conn* conn, struct iovec* iov, int iovcnt);
  void ProgressLoop();
  void AcceptAll();
  void HandleReadable(Conn* c);
  // Reads what the socket holds, processes it and flushes the responses it
  // produced; false when the connection was closed (or, for an application
  // reader, its close is pending). Stops early once `done()` holds.
  // With `wait`, the first recv blocks (for at most kDirectReadSlice).
  bool ServeInput(Conn* c, absl::FunctionRef<bool()> done, bool wait = false);

  // ---- direct reads (tcp_transport_direct.cc) ----
  // The progress thread's claim on `c` for one event; false when an
  // application thread reads it now.
  bool ProgressTake(Conn* c);
  void ProgressGive(Conn* c);
  // An application thread's claim: takes `c` out of the progress thread's
  // epoll set. False when it is busy, closed or closing.
  bool AppTake(Conn* c);
  // Hands `c` back (into epoll again, or to the progress thread to close).
  void AppGive(Conn* c);
  // Reads and serves `c` (owned by this thread) until `done()`, the
  // deadline, or the connection's end; spins or blocks per GASP_WAIT_MODE.
  void ReadWhileNot(Conn* c, absl::Time deadline, absl::FunctionRef<bool()> done);
  // Wait's and Recv's direct paths: read the one connection the reply or
  // message must arrive on, when this thread can take it.
  void WaitDirect(CompletionCounter* counter, absl::Time deadline);
  void RecvDirect(int from, absl::Time deadline, uint64_t seen_seq);
  // Whether a message from `from` can still arrive after it left or
  // failed: a connection between us is open and has not said goodbye yet.
  bool MessagesMayFollow(int from) const;
  // Records the peer of this thread's posts on `counter` (for WaitDirect).
  void NotePost(absl::Span<const Op> ops, CompletionCounter* counter);
  // Whether `c` may be parked while idle: an outgoing connection on which
  // the peer cannot send messages (its first one came on the other).
  bool Parkable(const Conn* c) const;
  // Has the progress thread watch every parked connection with live ops
  // again (a thread about to sleep on replies it does not read itself).
  void WatchParked();
  // Sets `c`'s epoll events (own_mu held); false when epoll_ctl fails.
  bool SetEvents(Conn* c, uint32_t events);
  // Closes `c` now, or once its application reader hands it back.
  void CloseOrDefer(Conn* c, CompletionCode code, const absl::Status& why);
  // Closes the connections handed back with a close pending.
  void RunPendingCloses();
  // ---- messages (tcp_transport_messages.cc) ----
  // The connection this rank's messages to `peer` go on (see the top of
  // this file), chosen on first use; dials when none exists.
  absl::StatusOr<Conn*> MessageConn(int peer);
  // The connection a message from `from` is expected on: the one its
  // last message came on, else the only one between us (nullptr when
  // there are two or none).
  Conn* ExpectedMessageConn(int from) const;
  // A MSG header on any connection: its payload goes to a new message.
  bool OnMsgHeader(Conn* c, const FrameHeader& h);
  // Waits, with `l` holding conn->send_mu, until no response is half
  // written on `conn` or it is closed (the caller checks send_closed).
  // DeadlineExceeded when a response stays half written until `deadline`
  // (the peer stopped reading).
  absl::Status WaitWholeFrames(Conn* conn, std::unique_lock<std::mutex>& l, absl::Time deadline);

  // Processes buffered input; false when the connection was closed.
  bool ProcessInput(Conn* c);
  // Consumes one decoded header; false when the connection was closed.
  bool OnHeader(Conn* c, const FrameHeader& h);
  bool OnIncomingHeader(Conn* c, const FrameHeader& h);
  bool OnOutgoingHeader(Conn* c, const FrameHeader& h);
  // The acceptor's side of the handshake (tcp_wire.h): HELLO, then PROOF.
  bool OnHello(Conn* c, const FrameHeader& h);
  bool OnProof(Conn* c, const FrameHeader& h);
  // Writes payload bytes [from, from+n) into the sink (memcpy path).
  void SinkBytes(Conn* c, const uint8_t* data, size_t n);
  // Reads payload straight from the socket into the sink; returns recv's
  // result.
  ssize_t RecvIntoSink(Conn* c, size_t max);
  bool OnPayloadDone(Conn* c);
  void QueueResponse(Conn* c, const FrameHeader& h, const uint8_t* payload, uint64_t len,
                     uint32_t pin);
  // Writes as much of the output ring as the socket takes, unless a
  // sender holds the socket (then later); false on error (connection
  // closed).
  bool FlushOutput(Conn* c, absl::Status* error = nullptr);
  // FlushOutput's writing, with send_mu held.
  bool FlushRing(Conn* c, absl::Status* error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->send_mu);
  void UpdateEpoll(Conn* c);
  // Closes `c` because of `why`; `code` is the completion for the peer's
  // outstanding ops when the peer is lost (kPeerUnreachable/kProtocolError).
  void CloseConn(Conn* c, CompletionCode code, const absl::Status& why);
  void CloseOutgoingFd(Conn* c);
  void CloseIncomingFd(Conn* c);
  void ReleaseConnResources(Conn* c);
  // Peer lost or said goodbye: close its connections, fail its ops.
  void DropPeer(int peer, CompletionCode code);
  void ReapClosedIncoming();
  // Closes incoming connections whose HELLO is overdue and watches a
  // paused listener again; returns the time until the next deadline
  // (InfiniteDuration when none is pending).
  absl::Duration ExpireUnauthenticated();
  void ForgetUnauthenticated(Conn* c);
  // Re-adds the listener to epoll once the accept guard's pause is over.
  void ResumeListener(absl::Time now);
  std::string ConnName(const Conn* c) const;

  const int rank_;
  const int size_;
  const absl::Duration timeout_;
  const uint64_t nonce_;
  const std::string secret_;  // the job secret: keys the handshake MACs
  std::atomic<int> state_{static_cast<int>(TransportState::kRunning)};
  std::atomic<bool> connected_{false};

  TcpEndpoint local_;
  EndpointBlob local_blob_;
  std::unique_ptr<Peer[]> peers_;

  // Peer states; failure notifications are delivered by the progress thread.
  PeerFailures failures_;
  OpTable ops_;
  RegionTable regions_;

  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int event_fd_ = -1;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> stop_{false};

  // Pausing (test hook).
  PauseGate pause_;

  // Outgoing connections (never freed before the destructor).
  std::mutex conns_mu_;
  std::vector<std::unique_ptr<Conn>> outgoing_ ABSL_GUARDED_BY(conns_mu_);
  // Incoming connections: progress thread only (and Shutdown after join).
  std::vector<std::unique_ptr<Conn>> incoming_;
  // Closed incoming connections that had completed the handshake: kept
  // until the destructor, because an application thread may hold one.
  std::vector<std::unique_ptr<Conn>> retired_incoming_;
  // Some connection was handed back with a close pending.
  std::atomic<bool> closes_pending_{false};
  // The progress thread's last event (GASP_WAIT_MODE=poll keeps it
  // polling for GASP_SPIN_US after one).
  absl::Time last_event_ = absl::InfinitePast();
  bool reap_incoming_ = false;
  // Accepting, and the unauthenticated incoming connections (progress
  // thread only).
  AcceptGuard accept_guard_;
  bool listener_paused_ = false;  // out of epoll until accept_guard_.paused_until()
  SourceCaps unauth_;
  LogLimiter refused_log_;  // connections closed for a bad or missing HELLO
  std::unique_ptr<uint8_t[]> scratch_;  // discarded payload bytes land here

  // Messages.
  // A thread blocked in Recv: woken by a message it can take, and by peer
  // failures and shutdown, not by every message (a service thread waiting
  // for any peer would otherwise wake for each barrier round).
  struct RecvWaiter {
    uint32_t tag;
    int from;
    std::condition_variable cv;
  };
  // Queues `m` and wakes the receivers that can take it.
  void DeliverMessage(Message m);
  // Wakes every blocked Recv (a peer failed or left, or shutdown).
  void WakeAllReceivers();
  std::mutex inbox_mu_;
  std::vector<RecvWaiter*> recv_waiters_ ABSL_GUARDED_BY(inbox_mu_);
  std::deque<Message> inbox_ ABSL_GUARDED_BY(inbox_mu_);
  // Bumped (under inbox_mu_) for every message queued: a direct reader
  // looks at the inbox only when it changed.
  std::atomic<uint64_t> inbox_seq_{0};

};

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TCP_TRANSPORT_IMPL_H_

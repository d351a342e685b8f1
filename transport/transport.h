// The transport interface: memory registration, one-sided READ / WRITE /
// 8-byte CAS / FETCH_ADD, two-sided tagged messages, batched posting and
// completion waiting. Backends: tcp, verbs and shm (ranks of one host),
// plus FaultyTransport, a decorator for tests. Chosen at run time by
// GASP_TRANSPORT.
//
// Semantics every backend provides (the conformance suite checks them):
//  * Remote addresses are absolute virtual addresses inside a region the
//    peer registered; the target checks the remote key, the bounds and the
//    access rights like a NIC, and refuses anything else with
//    kRemoteAccessError, writing nothing.
//  * A completed WRITE is visible to any later READ / atomic from any rank.
//  * Atomics on one 8-byte aligned word are atomic with respect to each other
//    from all ranks (and, where Capabilities::cpu_atomics_coherent, with CPU
//    atomics of the target process on that word).
//  * Messages between a pair of ranks with the same tag arrive in order.
//  * Operations posted to self are allowed and behave like remote ones.
#ifndef GASP_TRANSPORT_TRANSPORT_H_
#define GASP_TRANSPORT_TRANSPORT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/wait.h"

namespace gasp {
namespace transport {

// Opaque, fixed-size description of how to reach a rank; exchanged by boot/.
// The first 8 bytes are {magic u32, backend u16, version u16}; backends
// refuse blobs of another backend or version with a clear error.
inline constexpr size_t kEndpointBlobSize = 128;
struct EndpointBlob {
  uint8_t bytes[kEndpointBlobSize] = {};
};

// Rights a registration grants to peers.
enum Access : uint32_t {
  kRemoteRead = 1u << 0,
  kRemoteWrite = 1u << 1,
  kRemoteAtomic = 1u << 2,
  kRemoteAll = kRemoteRead | kRemoteWrite | kRemoteAtomic,
};

// Packed remote key: what a peer needs, besides the address, to access a
// region. Opaque to everything but the backend that made it.
struct RemoteKey {
  uint64_t packed = 0;
  friend bool operator==(RemoteKey a, RemoteKey b) { return a.packed == b.packed; }
};

// A local registration.
struct Region {
  uint64_t id = 0;        // backend-local handle
  void* addr = nullptr;   // start of the registered memory
  size_t length = 0;
  uint32_t access = 0;    // Access bits granted to peers
  RemoteKey rkey;         // give this (and addresses inside) to peers
};

enum class OpType : uint8_t { kRead, kWrite, kCompareSwap, kFetchAdd };

// One one-sided operation.
struct Op {
  OpType type = OpType::kRead;
  int peer = -1;             // target rank (may be self)
  void* local = nullptr;     // READ: destination; WRITE: source;
                             // atomics: receives the old 8-byte value (may be null)
  uint64_t length = 0;       // READ/WRITE bytes; atomics: ignored (always 8)
  uint64_t remote_addr = 0;  // absolute address in the peer's registration
  RemoteKey rkey;
  uint64_t compare = 0;      // CAS: expected value
  uint64_t operand = 0;      // CAS: new value; FETCH_ADD: addend
  uint64_t wr_id = 0;        // caller's tag, reported with a failure
};

enum class CompletionCode : uint8_t {
  kSuccess = 0,
  kRemoteAccessError,  // bad remote key, out of bounds, missing rights
  kPeerUnreachable,    // connection lost / retry exceeded: the peer is likely dead
  kFlushed,            // not executed: transport shut down or the peer failed earlier
  kLocalError,         // local failure (bad arguments, out of resources)
  kTimeout,            // no completion before the deadline
  kProtocolError,      // malformed bytes from the network
};

// "remote access error", "peer unreachable", ...
const char* CompletionCodeName(CompletionCode code);

// Completion tracking for one batch of operations. Post() counts the ops;
// the backend calls Complete() once per op, from any thread. Lock-free and
// async-signal-safe, so the fault path can wait on it without allocating.
// The object must outlive the completion of every op posted with it.
class CompletionCounter {
 public:
  CompletionCounter() = default;
  CompletionCounter(const CompletionCounter&) = delete;
  CompletionCounter& operator=(const CompletionCounter&) = delete;

  // Adds `n` expected completions (Post does this).
  void Expect(uint32_t n) { pending_.fetch_add(n, std::memory_order_relaxed); }

  // Records one completion; the first failure is kept.
  void Complete(int peer, uint64_t wr_id, CompletionCode code);

  // True when every expected completion arrived.
  bool done() const { return (pending_.load(std::memory_order_acquire) & kCountMask) == 0; }
  uint32_t pending() const { return pending_.load(std::memory_order_acquire) & kCountMask; }

  // The first failure (kSuccess if none) and the op it came from.
  CompletionCode first_error() const { return error_code_; }
  int error_peer() const { return error_peer_; }
  uint64_t error_wr_id() const { return error_wr_id_; }

  // Word that changes whenever pending changes (the count, plus a flag once
  // a thread sleeps on it; use SleepWhile rather than waiting on it).
  const std::atomic<uint32_t>* word() const { return &pending_; }

  // Sleeps (futex) while pending() == seen, at most until `deadline`; with
  // `spin_first` the wait policy of base/wait.h applies (GASP_WAIT_MODE),
  // else it blocks at once. Only sleepers announced this way are woken:
  // Complete() makes no system call when nobody sleeps (waiters that poll
  // are the common case).
  void SleepWhile(uint32_t seen, absl::Time deadline, bool spin_first = true);

 private:
  // The count of pending ops, and kSleeper once a thread has gone (or is
  // about to go) to sleep on this word. One word, so that Complete() reads
  // whether to wake in the same atomic step that may let the waiter return
  // and destroy the counter.
  static constexpr uint32_t kSleeper = 1u << 31;
  static constexpr uint32_t kCountMask = kSleeper - 1;
  std::atomic<uint32_t> pending_{0};
  std::atomic<uint32_t> error_set_{0};
  CompletionCode error_code_ = CompletionCode::kSuccess;
  int error_peer_ = -1;
  uint64_t error_wr_id_ = 0;
};

// A two-sided message.
struct Message {
  int peer = -1;
  uint32_t tag = 0;
  std::vector<uint8_t> payload;
};
inline constexpr int kAnyPeer = -1;
inline constexpr size_t kMaxMessageBytes = 64u << 20;

// What a backend can do; the layers above adapt to it.
struct Capabilities {
  bool cpu_atomics_coherent = false;  // CPU atomics on registered memory are
                                      // atomic with the transport's atomics
  size_t max_op_bytes = 0;            // largest READ/WRITE
  // READ/WRITE go zero-copy when the local buffer lies in a registered
  // region (Register with access 0 registers for local use only); other
  // local buffers are copied through a bounce buffer.
  bool zero_copy_registered_local = false;
};

struct TransportOptions {
  int rank = 0;
  int size = 1;
  int local_rank = 0;  // index among the ranks on this host (device spreading)
  int local_size = 1;
  absl::Duration timeout = absl::Seconds(60);  // connect and op deadline
  std::string tcp_addr;  // address to listen on and advertise ("" = auto)
  int tcp_port = 0;      // 0 = any
  // verbs: "mlx5_0:1,mlx5_1:1" (local ranks spread over the list), "^dev"
  // excludes, "" = every device with an active port (GASP_NET_DEVICES).
  std::string net_devices;
  int ib_gid_index = -1;   // -1: auto, RoCE v2 IPv4 first (GASP_IB_GID_INDEX)
  int ib_timeout = 14;     // local ACK timeout exponent, 4.096us*2^n (GASP_IB_TIMEOUT)
  int ib_retry_count = 7;  // transport retries before "peer unreachable" (GASP_IB_RETRY_COUNT)
  // The job secret (boot/job_secret.h, 32 bytes): keys the tcp handshake,
  // so only processes of this job get a connection served. Required by tcp.
  std::string job_secret;
};

// Called (from a transport thread) when a peer is lost without saying
// goodbye. `status` names the peer and the cause.
using PeerFailureHandler = std::function<void(int peer, const absl::Status& status)>;

class Transport {
 public:
  virtual ~Transport() = default;

  // "tcp", "verbs", "shm", or a decorator's name around them.
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual Capabilities capabilities() const = 0;

  // This rank's endpoint blob (valid from creation on).
  virtual EndpointBlob LocalEndpoint() const = 0;

  // Records every rank's blob (index = rank, own included). Connections are
  // made lazily on first use. Errors: a blob of another backend or version.
  virtual absl::Status Connect(absl::Span<const EndpointBlob> endpoints) = 0;

  // Registers [addr, addr+length) and grants `access` to peers.
  virtual absl::StatusOr<Region> Register(void* addr, size_t length, uint32_t access) = 0;
  // After Deregister, peers' ops on the region fail with kRemoteAccessError.
  virtual absl::Status Deregister(const Region& region) = 0;

  // Posts a batch. Each op completes exactly once on `counter` (with a code);
  // an error return means none of the ops was posted.
  // REQUIRES: local buffers stay valid and are not touched until completion.
  virtual absl::Status Post(absl::Span<const Op> ops, CompletionCounter* counter) = 0;

  // Forgets every op posted with `counter` that has not completed: after
  // return the backend touches neither `counter` nor those ops' local
  // buffers, and their late replies are dropped. Wait calls it on timeout.
  virtual void Abandon(CompletionCounter* counter) = 0;

  // Drives progress from the caller's thread. Returns the number of
  // completions processed. Completions are delivered while some thread of
  // this process is in Wait or Poll; a thread that checks
  // CompletionCounter::done() in a loop of its own must call Poll in it
  // (tcp leaves an idle connection unwatched until then).
  virtual int Poll() = 0;

  // Waits until `counter` is done (policy of base/wait.h, calling Poll while
  // spinning). Returns OK, or an error naming the first failed op's peer and
  // code; DeadlineExceeded names the peers still pending when possible.
  virtual absl::Status Wait(CompletionCounter* counter, absl::Time deadline);

  // Convenience: Post + Wait.
  absl::Status Execute(absl::Span<const Op> ops, absl::Time deadline);

  // Two-sided messages. Send returns once the message is handed to the
  // transport (the payload may be reused). Recv waits for a message with
  // `tag` from `from` (or kAnyPeer) until the deadline.
  virtual absl::Status Send(int peer, uint32_t tag, absl::Span<const uint8_t> payload) = 0;
  virtual absl::StatusOr<Message> Recv(uint32_t tag, int from, absl::Time deadline) = 0;

  // Installs the handler for lost peers (replaces any earlier one).
  virtual void SetPeerFailureHandler(PeerFailureHandler handler) = 0;

  // Says goodbye to every connected peer (so closing is not taken as death),
  // stops progress threads, fails outstanding ops with kFlushed.
  virtual absl::Status Shutdown(absl::Time deadline) = 0;
};

// Builds the error status for a failed completion, e.g.
// "READ to rank 3 failed: peer unreachable (wr_id 7)".
absl::Status CompletionError(CompletionCode code, int peer, uint64_t wr_id);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TRANSPORT_H_

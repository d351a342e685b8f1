// Test support shared by the transport test suites: creating a backend by
// name, backend-specific hooks (hang / crash a rank), and an in-process
// "cluster" of N transports connected over real sockets on 127.0.0.1.
//
// To run the conformance suite on a new backend, teach
// TransportFactoryForTest its name (and, if it can, PauseForTest /
// CrashForTest), then add the name to the suite's parameter list.
#ifndef GASP_TRANSPORT_TRANSPORT_TEST_UTIL_H_
#define GASP_TRANSPORT_TRANSPORT_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/tcp_wire.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace testing {

// "tcp" -> the tcp backend; "shm" -> the shm backend; "verbs" -> the verbs backend (in the VM,
// VMTEST=1: net_devices = VmNetDevices() and local_rank = rank, so rank r
// uses VMTEST_RXE{r%2}); "faulty_passthrough" -> FaultyTransport around
// tcp with no fault set. Unknown names: InvalidArgument.
absl::StatusOr<std::unique_ptr<Transport>> TransportFactoryForTest(const std::string& name,
                                                                   const TransportOptions& options);

// "rxe0,rxe1" from VMTEST_RXE0 / VMTEST_RXE1 ("" when not in the guest).
std::string VmNetDevices();

// Options for rank `rank` of `size` on loopback with `timeout`.
TransportOptions LoopbackOptions(int rank, int size, absl::Duration timeout);

// A job secret for the transports of one test process (random, drawn once;
// every LoopbackOptions carries it).
const std::string& TestJobSecret();

// ---- An outsider's raw view of the tcp wire (tcp_wire.h) ----
// Connects a blocking socket (20 s receive timeout) to the listener of
// `blob`: the tcp listener, or the shm backend's unix socket (which speaks
// the same handshake); -1 on failure or for other backends.
int RawConnect(const EndpointBlob& blob);
// The session nonce a tcp or shm blob carries (0 for other backends).
uint64_t BlobSession(const EndpointBlob& blob);
// After a RawHandshake on an shm socket: hands over rings (a sealed memfd
// and a doorbell) as a node-mate would, with one malformed record in the
// request ring, and rings the acceptor's doorbell. False when the
// acceptor refused the rings.
bool RawShmGarbageRecord(int fd);
// True when the other end closed the connection (EOF or reset), reading
// and discarding anything it sent first (e.g. a HELLO reply).
bool ClosedByPeer(int fd);
// send() of all `n` bytes; false when the socket refused them.
bool RawSend(int fd, const void* data, size_t n);
// Sends `header` (encoded); false when the socket refused it.
bool RawSendHeader(int fd, const tcp::FrameHeader& header);
// Reads one header (blocking); false on EOF, error or a malformed header.
bool RawRecvHeader(int fd, tcp::FrameHeader* header);
// The handshake a connector claiming `rank` of `size` runs, with `secret`:
// HELLO, read HELLO + PROOF, then PROOF. `send_proof` false stops after
// reading the acceptor's reply. On return *transcript holds the
// connection's transcript and *acceptor_ok whether the acceptor's PROOF
// matched `secret`. False when the connection failed on the way.
bool RawHandshake(int fd, int rank, int size, uint64_t session, int acceptor_rank,
                  const std::string& secret, bool send_proof,
                  tcp::HandshakeTranscript* transcript, bool* acceptor_ok);

// Stops (true) / resumes (false) a rank's progress, like a hung process.
// Unwraps decorators. Unimplemented when the backend has no such hook
// (tests then skip).
absl::Status PauseForTest(Transport* transport, bool paused);
// Makes a rank vanish without goodbye (sockets reset). Unwraps decorators.
absl::Status CrashForTest(Transport* transport);

// N transports of one backend in this process, endpoints exchanged.
struct Cluster {
  std::vector<std::unique_ptr<Transport>> ranks;
  std::vector<EndpointBlob> blobs;

  // Creates `n` ranks of backend `name` and connects them.
  static absl::StatusOr<Cluster> Start(const std::string& name, int n, absl::Duration timeout);
  Transport& operator[](int rank) { return *ranks[static_cast<size_t>(rank)]; }
  // Shuts every rank down (in order), returning the first error.
  absl::Status ShutdownAll();
};

// Post + Wait with a deadline `timeout` from now.
absl::Status ExecuteFor(Transport& t, const std::vector<Op>& ops,
                        absl::Duration timeout = absl::Seconds(20));

// Posts `ops` with `counter` and waits; returns the Wait status.
absl::Status PostAndWait(Transport& t, const std::vector<Op>& ops, CompletionCounter* counter,
                         absl::Duration timeout = absl::Seconds(20));

// Op builders.
Op ReadOp(int peer, void* local, uint64_t length, uint64_t remote_addr, RemoteKey rkey,
          uint64_t wr_id = 0);
Op WriteOp(int peer, const void* local, uint64_t length, uint64_t remote_addr, RemoteKey rkey,
           uint64_t wr_id = 0);
Op CasOp(int peer, uint64_t* old, uint64_t remote_addr, RemoteKey rkey, uint64_t compare,
         uint64_t swap, uint64_t wr_id = 0);
Op FetchAddOp(int peer, uint64_t* old, uint64_t remote_addr, RemoteKey rkey, uint64_t add,
              uint64_t wr_id = 0);

// Address of `p` as a remote address.
inline uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

}  // namespace testing
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_TRANSPORT_TEST_UTIL_H_

#include "transport/transport_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "base/crypto.h"
#include "base/status.h"
#include "transport/faulty_transport.h"
#include "transport/shm_ring.h"
#include "transport/shm_socket.h"
#include "transport/shm_transport.h"
#include "transport/shm_wire.h"
#include "transport/tcp_transport.h"
#include "transport/verbs_transport.h"

namespace gasp {
namespace transport {
namespace testing {

std::string VmNetDevices() {
  auto env = [](const char* n) {
    const char* x = std::getenv(n);
    return std::string(x ? x : "");
  };
  if (env("VMTEST_RXE0").empty() || env("VMTEST_RXE1").empty()) return "";
  return env("VMTEST_RXE0") + "," + env("VMTEST_RXE1");
}

absl::StatusOr<std::unique_ptr<Transport>> TransportFactoryForTest(
    const std::string& name, const TransportOptions& options) {
  if (name == "tcp") return CreateTcpTransport(options);
  if (name == "shm") return CreateShmTransport(options);
  if (name == "verbs") {
    // In the soft-RoCE guest (VMTEST=1) rank r uses device VMTEST_RXE{r%2}:
    // net_devices lists both devices and the local rank is the rank, so the
    // device spreading picks entry r % 2. The GID is chosen automatically;
    // a rank connecting to a rank on its own device uses the other device's
    // address as the source (derived; rxe cannot loop back).
    TransportOptions o = options;
    if (const char* vm = std::getenv("VMTEST"); vm && std::string(vm) == "1") {
      o.net_devices = VmNetDevices();
      o.local_rank = o.rank;
      o.local_size = o.size;
    }
    // Tests: transport retries give up in about a second (a dead peer is
    // found quickly), yet survive a paused peer for several hundred ms.
    o.ib_timeout = 15;     // 134 ms
    o.ib_retry_count = 7;
    return CreateVerbsTransport(o, VerbsOptionsFrom(o));
  }
  if (name == "faulty_passthrough") {
    GASP_ASSIGN_OR_RETURN(std::unique_ptr<Transport> inner, CreateTcpTransport(options));
    return std::unique_ptr<Transport>(new FaultyTransport(std::move(inner)));
  }
  return absl::InvalidArgumentError(absl::StrFormat("no test factory for backend '%s'", name));
}

TransportOptions LoopbackOptions(int rank, int size, absl::Duration timeout) {
  TransportOptions o;
  o.rank = rank;
  o.size = size;
  o.timeout = timeout;
  o.tcp_addr = "127.0.0.1";
  o.tcp_port = 0;
  o.job_secret = TestJobSecret();
  return o;
}

namespace {

// Connects `fd` to `a` and gives it a 20 s receive timeout; -1 on failure.
int ConnectBlocking(int fd, const sockaddr* a, socklen_t len) {
  if (connect(fd, a, len) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

int RawConnectUnix(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof(a.sun_path) - 1));
  return ConnectBlocking(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
}

}  // namespace

uint64_t BlobSession(const EndpointBlob& blob) {
  if (absl::StatusOr<tcp::TcpEndpoint> e = tcp::DecodeEndpoint(blob); e.ok()) return e->nonce;
  if (absl::StatusOr<shm::ShmEndpoint> e = shm::DecodeShmEndpoint(blob); e.ok()) return e->nonce;
  return 0;
}

bool RawShmGarbageRecord(int fd) {
  absl::StatusOr<shm::Segment> seg = shm::Segment::Create("test-garbage-rings");
  const int bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!seg.ok() || bell < 0) return false;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  const int fds[2] = {seg->fd(), bell};
  int theirs = -1;
  const bool ok = shm::SendFds(fd, 'R', fds, 2, deadline).ok() &&
                  shm::RecvFds(fd, 'D', &theirs, 1, deadline).ok();
  close(bell);
  if (!ok) return false;
  // A whole record's worth of bytes whose header no decoder accepts.
  std::memset(seg->req_data(), 0xee, shm::kRecordHeaderSize);
  seg->req_ctl()->tail.store(shm::kRecordHeaderSize);
  shm::RingDoorbell(theirs);
  close(theirs);
  return true;
}

int RawConnect(const EndpointBlob& blob) {
  if (absl::StatusOr<shm::ShmEndpoint> s = shm::DecodeShmEndpoint(blob); s.ok()) {
    return RawConnectUnix(s->path);
  }
  absl::StatusOr<tcp::TcpEndpoint> e = tcp::DecodeEndpoint(blob);
  if (!e.ok()) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(e->ipv4);
  a.sin_port = htons(e->port);
  return ConnectBlocking(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
}

bool ClosedByPeer(int fd) {
  uint8_t buf[256];
  while (true) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;  // EAGAIN: timed out, still open
  }
}

bool RawSend(int fd, const void* data, size_t n) {
  return send(fd, data, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
}

bool RawSendHeader(int fd, const tcp::FrameHeader& header) {
  uint8_t b[tcp::kFrameHeaderSize];
  tcp::EncodeHeader(header, b);
  return RawSend(fd, b, sizeof(b));
}

bool RawRecvHeader(int fd, tcp::FrameHeader* header) {
  uint8_t b[tcp::kFrameHeaderSize];
  if (recv(fd, b, sizeof(b), MSG_WAITALL) != static_cast<ssize_t>(sizeof(b))) return false;
  absl::StatusOr<tcp::FrameHeader> h = tcp::DecodeHeader(absl::MakeConstSpan(b));
  if (!h.ok()) return false;
  *header = *h;
  return true;
}

bool RawHandshake(int fd, int rank, int size, uint64_t session, int acceptor_rank,
                  const std::string& secret, bool send_proof,
                  tcp::HandshakeTranscript* transcript, bool* acceptor_ok) {
  tcp::HandshakeTranscript& t = *transcript;
  t = tcp::HandshakeTranscript{};
  t.size = static_cast<uint64_t>(size);
  t.connector_rank = static_cast<uint64_t>(rank);
  t.acceptor_rank = static_cast<uint64_t>(acceptor_rank);
  t.connector_session = session;
  t.connector_nonce = RandomU64();
  *acceptor_ok = false;
  if (!RawSendHeader(fd, tcp::HelloFrame(rank, size, session, t.connector_nonce))) return false;
  tcp::FrameHeader hello, proof;
  if (!RawRecvHeader(fd, &hello) || !RawRecvHeader(fd, &proof)) return false;
  if (hello.type != tcp::FrameType::kHello || proof.type != tcp::FrameType::kProof) return false;
  t.acceptor_session = hello.compare;
  t.acceptor_nonce = hello.req_id;
  const absl::Span<const uint8_t> key(reinterpret_cast<const uint8_t*>(secret.data()),
                                      secret.size());
  const Mac theirs = tcp::ProofOf(proof);
  *acceptor_ok = MacEqual(theirs.data(), tcp::HandshakeMac(key, true, t).data());
  if (!send_proof) return true;
  return RawSendHeader(fd, tcp::ProofFrame(tcp::HandshakeMac(key, false, t)));
}

const std::string& TestJobSecret() {
  static const std::string* secret = [] {
    auto* s = new std::string(32, '\0');
    for (size_t i = 0; i < s->size(); i += 8) {
      const uint64_t v = RandomU64();
      std::memcpy(s->data() + i, &v, 8);
    }
    return s;
  }();
  return *secret;
}

namespace {

Transport* Unwrap(Transport* t) {
  while (auto* f = dynamic_cast<FaultyTransport*>(t)) t = f->inner();
  return t;
}

}  // namespace

absl::Status PauseForTest(Transport* transport, bool paused) {
  Transport* t = Unwrap(transport);
  if (t->name() == "tcp") return TcpPauseProgressForTesting(t, paused);
  if (t->name() == "shm") return ShmPauseProgressForTesting(t, paused);
  if (t->name() == "verbs") return VerbsPauseForTesting(t, paused);
  return absl::UnimplementedError(absl::StrFormat("no pause hook for %s", t->name()));
}

absl::Status CrashForTest(Transport* transport) {
  Transport* t = Unwrap(transport);
  if (t->name() == "tcp") return TcpCrashForTesting(t);
  if (t->name() == "shm") return ShmCrashForTesting(t);
  if (t->name() == "verbs") return VerbsCrashForTesting(t);
  return absl::UnimplementedError(absl::StrFormat("no crash hook for %s", t->name()));
}

absl::StatusOr<Cluster> Cluster::Start(const std::string& name, int n, absl::Duration timeout) {
  Cluster c;
  for (int r = 0; r < n; ++r) {
    GASP_ASSIGN_OR_RETURN(std::unique_ptr<Transport> t,
                          TransportFactoryForTest(name, LoopbackOptions(r, n, timeout)));
    c.blobs.push_back(t->LocalEndpoint());
    c.ranks.push_back(std::move(t));
  }
  for (auto& t : c.ranks) GASP_RETURN_IF_ERROR(t->Connect(c.blobs));
  return c;
}

absl::Status Cluster::ShutdownAll() {
  absl::Status first;
  for (auto& t : ranks) {
    absl::Status s = t->Shutdown(absl::Now() + absl::Seconds(20));
    if (first.ok()) first = s;
  }
  return first;
}

absl::Status ExecuteFor(Transport& t, const std::vector<Op>& ops, absl::Duration timeout) {
  return t.Execute(ops, absl::Now() + timeout);
}

absl::Status PostAndWait(Transport& t, const std::vector<Op>& ops, CompletionCounter* counter,
                         absl::Duration timeout) {
  GASP_RETURN_IF_ERROR(t.Post(ops, counter));
  return t.Wait(counter, absl::Now() + timeout);
}

Op ReadOp(int peer, void* local, uint64_t length, uint64_t remote_addr, RemoteKey rkey,
          uint64_t wr_id) {
  Op op;
  op.type = OpType::kRead;
  op.peer = peer;
  op.local = local;
  op.length = length;
  op.remote_addr = remote_addr;
  op.rkey = rkey;
  op.wr_id = wr_id;
  return op;
}

Op WriteOp(int peer, const void* local, uint64_t length, uint64_t remote_addr, RemoteKey rkey,
           uint64_t wr_id) {
  Op op = ReadOp(peer, const_cast<void*>(local), length, remote_addr, rkey, wr_id);
  op.type = OpType::kWrite;
  return op;
}

Op CasOp(int peer, uint64_t* old, uint64_t remote_addr, RemoteKey rkey, uint64_t compare,
         uint64_t swap, uint64_t wr_id) {
  Op op = ReadOp(peer, old, 8, remote_addr, rkey, wr_id);
  op.type = OpType::kCompareSwap;
  op.compare = compare;
  op.operand = swap;
  return op;
}

Op FetchAddOp(int peer, uint64_t* old, uint64_t remote_addr, RemoteKey rkey, uint64_t add,
              uint64_t wr_id) {
  Op op = ReadOp(peer, old, 8, remote_addr, rkey, wr_id);
  op.type = OpType::kFetchAdd;
  op.operand = add;
  return op;
}

}  // namespace testing
}  // namespace transport
}  // namespace gasp

#include "transport/transport_test_util.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_format.h"
#include "base/status.h"
#include "transport/faulty_transport.h"
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
  return o;
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
  if (t->name() == "verbs") return VerbsPauseForTesting(t, paused);
  return absl::UnimplementedError(absl::StrFormat("no pause hook for %s", t->name()));
}

absl::Status CrashForTest(Transport* transport) {
  Transport* t = Unwrap(transport);
  if (t->name() == "tcp") return TcpCrashForTesting(t);
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

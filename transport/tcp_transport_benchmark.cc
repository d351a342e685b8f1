// Latency of the tcp backend between two transports in one process (rank 0
// -> rank 1 over loopback): one op per Post+Wait, so the time per
// iteration is the round trip; plus a batched READ for per-op throughput
// and a message ping-pong; and the cost of a new connection's handshake
// beside a bare TCP connect.
//   bazel run -c opt //transport:tcp_transport_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "transport/tcp_transport.h"
#include "transport/tcp_wire.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {
namespace {

constexpr size_t kMem = 1u << 20;
constexpr uint32_t kPingTag = 1;
constexpr uint32_t kPongTag = 2;

// Two connected ranks with a registered buffer each, plus an echo thread on
// rank 1 for the ping-pong. Created once, on first use.
struct Pair {
  std::unique_ptr<Transport> t[2];
  std::unique_ptr<uint8_t[]> mem[2];
  Region region[2];
  std::thread echo;

  // Rank r of 2 on loopback; both ends of one process share a secret.
  static TransportOptions Options(int r) {
    TransportOptions o;
    o.rank = r;
    o.size = 2;
    o.tcp_addr = "127.0.0.1";
    o.timeout = absl::Seconds(30);
    o.job_secret = std::string(32, 'k');
    return o;
  }

  Pair() {
    for (int r = 0; r < 2; ++r) {
      auto created = CreateTcpTransport(Options(r));
      if (!created.ok()) Die(created.status());
      t[r] = std::move(*created);
      mem[r].reset(new uint8_t[kMem]());
    }
    std::vector<EndpointBlob> blobs = {t[0]->LocalEndpoint(), t[1]->LocalEndpoint()};
    for (int r = 0; r < 2; ++r) {
      absl::Status s = t[r]->Connect(blobs);
      if (!s.ok()) Die(s);
      auto reg = t[r]->Register(mem[r].get(), kMem, kRemoteAll);
      if (!reg.ok()) Die(reg.status());
      region[r] = *reg;
    }
    echo = std::thread([this] {
      while (true) {
        auto m = t[1]->Recv(kPingTag, 0, absl::InfiniteFuture());
        if (!m.ok() || m->payload.empty()) return;  // empty ping: stop
        if (!t[1]->Send(0, kPongTag, m->payload).ok()) return;
      }
    });
  }
  ~Pair() {
    t[0]->Send(1, kPingTag, {}).IgnoreError();
    echo.join();
    for (auto& x : t) x->Shutdown(absl::Now() + absl::Seconds(10)).IgnoreError();
  }
  static void Die(const absl::Status& s) {
    std::fprintf(stderr, "benchmark set-up failed: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  Op MakeOp(OpType type, void* local, uint64_t length) const {
    Op op;
    op.type = type;
    op.peer = 1;
    op.local = local;
    op.length = length;
    op.remote_addr = reinterpret_cast<uint64_t>(mem[1].get());
    op.rkey = region[1].rkey;
    op.operand = 1;
    return op;
  }
};

Pair& GetPair() {
  static Pair* pair = new Pair();  // lives until exit (threads stay up)
  return *pair;
}

void RunOps(benchmark::State& state, OpType type, uint64_t bytes, int batch) {
  Pair& p = GetPair();
  std::vector<uint8_t> local(bytes * static_cast<uint64_t>(batch) + 8);
  std::vector<Op> ops;
  for (int i = 0; i < batch; ++i) ops.push_back(p.MakeOp(type, local.data() + i * bytes, bytes));
  for (auto _ : state) {
    CompletionCounter counter;
    if (!p.t[0]->Post(ops, &counter).ok() ||
        !p.t[0]->Wait(&counter, absl::Now() + absl::Seconds(30)).ok()) {
      state.SkipWithError("op failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * static_cast<int64_t>(bytes));
}

void BM_Read(benchmark::State& state) {
  RunOps(state, OpType::kRead, static_cast<uint64_t>(state.range(0)), 1);
}
void BM_Write(benchmark::State& state) {
  RunOps(state, OpType::kWrite, static_cast<uint64_t>(state.range(0)), 1);
}
void BM_FetchAdd(benchmark::State& state) { RunOps(state, OpType::kFetchAdd, 8, 1); }
// 64 READs per Post: per-op cost when the pipe is kept full.
void BM_ReadBatch64(benchmark::State& state) {
  RunOps(state, OpType::kRead, static_cast<uint64_t>(state.range(0)), 64);
}

void BM_PingPong(benchmark::State& state) {
  Pair& p = GetPair();
  const std::vector<uint8_t> ping(static_cast<size_t>(state.range(0)), 0x5a);
  for (auto _ : state) {
    if (!p.t[0]->Send(1, kPingTag, ping).ok()) {
      state.SkipWithError("send failed");
      break;
    }
    auto pong = p.t[0]->Recv(kPongTag, 1, absl::Now() + absl::Seconds(30));
    if (!pong.ok()) {
      state.SkipWithError("recv failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// Connection set-up, side by side: the first READ on a fresh pair of
// transports (TCP connect, HELLO both ways with the acceptor's PROOF, the
// connector's PROOF sent with the READ, the READ's reply) against a bare
// TCP connect with two 56-byte round trips (what the handshake plus the
// READ would be without the MACs and the transport).
void BM_FirstReadOnNewConnection(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<Transport> t[2];
    std::unique_ptr<uint64_t> word(new uint64_t(7));
    for (int r = 0; r < 2; ++r) {
      auto created = CreateTcpTransport(Pair::Options(r));
      if (!created.ok()) Pair::Die(created.status());
      t[r] = std::move(*created);
    }
    std::vector<EndpointBlob> blobs = {t[0]->LocalEndpoint(), t[1]->LocalEndpoint()};
    for (auto& x : t) (void)x->Connect(blobs);
    auto reg = t[1]->Register(word.get(), 8, kRemoteAll);
    if (!reg.ok()) Pair::Die(reg.status());
    uint64_t v = 0;
    Op op;
    op.type = OpType::kRead;
    op.peer = 1;
    op.local = &v;
    op.length = 8;
    op.remote_addr = reinterpret_cast<uint64_t>(word.get());
    op.rkey = reg->rkey;
    state.ResumeTiming();
    CompletionCounter counter;
    if (!t[0]->Post({op}, &counter).ok() ||
        !t[0]->Wait(&counter, absl::Now() + absl::Seconds(30)).ok() || v != 7) {
      state.SkipWithError("first READ failed");
      break;
    }
    state.PauseTiming();
    for (auto& x : t) x->Shutdown(absl::Now() + absl::Seconds(10)).IgnoreError();
    state.ResumeTiming();
  }
}

void BM_BareTcpConnectTwoRoundTrips(benchmark::State& state) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(listener, 64) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    state.SkipWithError("listen failed");
    return;
  }
  std::atomic<bool> stop{false};
  std::thread server([&] {
    uint8_t buf[56];
    while (!stop.load()) {
      const int c = accept(listener, nullptr, nullptr);
      if (c < 0) return;
      const int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      for (int i = 0; i < 2; ++i) {
        if (recv(c, buf, sizeof(buf), MSG_WAITALL) != sizeof(buf)) break;
        (void)!send(c, buf, sizeof(buf), MSG_NOSIGNAL);
      }
      close(c);
    }
  });
  uint8_t buf[56] = {};
  for (auto _ : state) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      state.SkipWithError("connect failed");
      close(fd);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      (void)!send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
      (void)!recv(fd, buf, sizeof(buf), MSG_WAITALL);
    }
    close(fd);
  }
  stop = true;
  shutdown(listener, SHUT_RDWR);
  close(listener);
  server.join();
}

// One HMAC-SHA256 of a handshake transcript (each side computes two).
void BM_HandshakeMac(benchmark::State& state) {
  const std::string key(32, 'k');
  tcp::HandshakeTranscript t{2, 0, 1, 11, 22, 33, 44};
  for (auto _ : state) {
    ++t.connector_nonce;
    benchmark::DoNotOptimize(tcp::HandshakeMac(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(key.data()), key.size()), false, t));
  }
}

BENCHMARK(BM_FirstReadOnNewConnection)->UseRealTime();
BENCHMARK(BM_BareTcpConnectTwoRoundTrips)->UseRealTime();
BENCHMARK(BM_HandshakeMac);
BENCHMARK(BM_Read)->Arg(8)->Arg(4096)->UseRealTime();
BENCHMARK(BM_Write)->Arg(8)->Arg(4096)->UseRealTime();
BENCHMARK(BM_FetchAdd)->UseRealTime();
BENCHMARK(BM_ReadBatch64)->Arg(8)->UseRealTime();
BENCHMARK(BM_PingPong)->Arg(8)->UseRealTime();

}  // namespace
}  // namespace transport
}  // namespace gasp

// Latency of the tcp backend between two transports in one process (rank 0
// -> rank 1 over loopback): one op per Post+Wait, so the time per
// iteration is the round trip; plus a batched READ for per-op throughput
// and a message ping-pong.
//   bazel run -c opt //transport:tcp_transport_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "transport/tcp_transport.h"
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

  Pair() {
    for (int r = 0; r < 2; ++r) {
      TransportOptions o;
      o.rank = r;
      o.size = 2;
      o.tcp_addr = "127.0.0.1";
      o.timeout = absl::Seconds(30);
      o.job_secret = std::string(32, 'k');  // both ends of one process
      auto created = CreateTcpTransport(o);
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

BENCHMARK(BM_Read)->Arg(8)->Arg(4096)->UseRealTime();
BENCHMARK(BM_Write)->Arg(8)->Arg(4096)->UseRealTime();
BENCHMARK(BM_FetchAdd)->UseRealTime();
BENCHMARK(BM_ReadBatch64)->Arg(8)->UseRealTime();
BENCHMARK(BM_PingPong)->Arg(8)->UseRealTime();

}  // namespace
}  // namespace transport
}  // namespace gasp

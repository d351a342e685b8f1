// The preface gate in front of a real gRPC server: real clients get
// through; idle, garbage and flooding connections are closed or refused,
// and the server keeps answering.
#include "rpcgen/preface_gate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rpcgen/shipping.grpc.pb.h"

namespace gasp {
namespace rpc {
namespace {

// Answers every call with the service name it was given.
class EchoShipping final : public Shipping::Service {
  grpc::Status Call(grpc::ServerContext*, const CallRequest* req, CallReply* reply) override {
    reply->set_reply(req->service());
    return grpc::Status::OK;
  }
};

// A connection to `port` from the loopback address 127.0.0.`from`.
int Connect(int port, int from = 1) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000000u | static_cast<uint32_t>(from));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Waits (bounded) until `pred` holds for the gate's counters.
template <typename Pred>
bool WaitFor(const PrefaceGate& gate, Pred pred) {
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!pred(gate.counters())) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// CPU time of this process (the gate's thread included).
absl::Duration CpuTime() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return absl::DurationFromTimeval(u.ru_utime) + absl::DurationFromTimeval(u.ru_stime);
}

// True when the gate (or the server) closed `fd` within `limit`.
bool ClosedWithin(int fd, absl::Duration limit) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(limit)) + 1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const absl::Time start = absl::Now();
  char b[64];
  for (;;) {
    ssize_t n = recv(fd, b, sizeof(b), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return absl::Now() - start <= limit;
    if (n < 0) return false;  // timed out: still open
  }
}

class PrefaceGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    PrefaceGateOptions o;
    o.deadline = absl::Milliseconds(500);
    o.max_pending_per_source = 8;
    o.max_pending = 16;
    auto gate = PrefaceGate::Start("test server", "127.0.0.1", server_.get(), o);
    ASSERT_TRUE(gate.ok()) << gate.status();
    gate_ = *std::move(gate);
  }
  void TearDown() override {
    gate_.reset();
    if (server_) server_->Shutdown();
  }

  // One call on a fresh channel; the reply's payload.
  std::string CallOnce(const std::string& what) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
    auto ch = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", gate_->port()),
                                        grpc::InsecureChannelCredentials(), args);
    auto stub = Shipping::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    CallRequest req;
    req.set_service(what);
    CallReply reply;
    grpc::Status s = stub->Call(&ctx, req, &reply);
    return s.ok() ? reply.reply() : absl::StrCat("error: ", s.error_message());
  }

  EchoShipping service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<PrefaceGate> gate_;
};

TEST_F(PrefaceGateTest, RealClientsGetThrough) {
  EXPECT_EQ(CallOnce("a.B"), "a.B");
  EXPECT_EQ(CallOnce("c.D"), "c.D");
  EXPECT_GE(gate_->counters().handed, 2u);
  EXPECT_EQ(gate_->counters().dropped, 0u);
}

TEST_F(PrefaceGateTest, IdleConnectionsAreClosedAtTheDeadline) {
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(Connect(gate_->port()));
  for (int fd : idle) {
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(ClosedWithin(fd, absl::Seconds(3)));
    close(fd);
  }
  EXPECT_EQ(gate_->counters().dropped, 8u);
  EXPECT_EQ(CallOnce("still.Here"), "still.Here");
}

TEST_F(PrefaceGateTest, GarbageAndHalfPrefacesAreClosed) {
  int garbage = Connect(gate_->port());
  ASSERT_GE(garbage, 0);
  ASSERT_EQ(send(garbage, "GET / HTTP/1.1\r\n\r\n", 18, MSG_NOSIGNAL), 18);
  // At once (the deadline is 500 ms), not at the deadline.
  EXPECT_TRUE(ClosedWithin(garbage, absl::Milliseconds(400)));
  close(garbage);
  int half = Connect(gate_->port());  // the preface's first half, then silence
  ASSERT_GE(half, 0);
  ASSERT_EQ(send(half, "PRI * HTTP/2.0", 14, MSG_NOSIGNAL), 14);
  // Until the deadline the gate sleeps: the peeked half does not wake it
  // over and over (a spinning gate would burn the whole wait).
  const absl::Time start = absl::Now();
  const absl::Duration cpu = CpuTime();
  EXPECT_TRUE(ClosedWithin(half, absl::Seconds(3)));
  const absl::Duration waited = absl::Now() - start;
  EXPECT_LT(CpuTime() - cpu, waited / 2) << "the gate spun on a half preface";
  close(half);
  EXPECT_EQ(gate_->counters().handed, 0u);
  EXPECT_EQ(CallOnce("x.Y"), "x.Y");
}

TEST_F(PrefaceGateTest, PendingConnectionsAreCappedPerSourceAndInAll) {
  std::vector<int> fds;
  for (int i = 0; i < 40; ++i) fds.push_back(Connect(gate_->port(), 2));
  // Beyond 8 from one source, connections are refused at once.
  EXPECT_TRUE(WaitFor(*gate_, [](const PrefaceGateCounters& c) {
    return c.refused == 32 && c.pending == 8;
  }));
  // Two more sources: 8 more from 127.0.0.3 fill the total of 16; then
  // 127.0.0.4 is refused although it has none pending.
  for (int i = 0; i < 8; ++i) fds.push_back(Connect(gate_->port(), 3));
  EXPECT_TRUE(WaitFor(*gate_, [](const PrefaceGateCounters& c) { return c.pending == 16; }));
  fds.push_back(Connect(gate_->port(), 4));
  EXPECT_TRUE(WaitFor(*gate_, [](const PrefaceGateCounters& c) { return c.refused == 33; }));
  for (int fd : fds) close(fd);
  // Clients that leave free their places at once.
  EXPECT_TRUE(WaitFor(*gate_, [](const PrefaceGateCounters& c) { return c.pending == 0; }));
  EXPECT_EQ(CallOnce("after.Flood"), "after.Flood");
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

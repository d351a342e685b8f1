// The preface gate in front of a real gRPC server: real clients get
// through; idle, garbage and flooding connections are closed or refused,
// and the server keeps answering.
#include "rpcgen/preface_gate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
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
  EXPECT_TRUE(ClosedWithin(garbage, absl::Milliseconds(400)));  // at once, not at the deadline
  close(garbage);
  int half = Connect(gate_->port());  // the preface's first half, then silence
  ASSERT_GE(half, 0);
  ASSERT_EQ(send(half, "PRI * HTTP/2.0", 14, MSG_NOSIGNAL), 14);
  EXPECT_TRUE(ClosedWithin(half, absl::Seconds(3)));
  close(half);
  EXPECT_EQ(gate_->counters().handed, 0u);
  EXPECT_EQ(CallOnce("x.Y"), "x.Y");
}

TEST_F(PrefaceGateTest, PendingConnectionsAreCappedPerSource) {
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) idle.push_back(Connect(gate_->port()));
  // Beyond the cap of 8 per source, connections are closed at once; the
  // gate never holds more than 8 of them.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_GE(gate_->counters().refused, 30u);
  for (int fd : idle) close(fd);
  absl::SleepFor(absl::Milliseconds(700));  // the first 8 reach their deadline
  EXPECT_EQ(CallOnce("after.Flood"), "after.Flood");
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

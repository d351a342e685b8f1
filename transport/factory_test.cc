#include "transport/factory.h"
#include "transport/transport_test_util.h"
#include "transport/verbs_transport.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace transport {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

TransportOptions Loopback() {
  TransportOptions o;
  o.tcp_addr = "127.0.0.1";
  o.job_secret = testing::TestJobSecret();
  return o;
}

TEST(FactoryTest, TcpGivesTcpAndAutoPicksVerbsOnlyWithADevice) {
  std::string reason;
  const bool verbs = VerbsDeviceAvailable(&reason);
  for (const char* name : {"auto", "tcp"}) {
    absl::StatusOr<std::unique_ptr<Transport>> t = CreateTransport(name, Loopback());
    ASSERT_TRUE(t.ok()) << name << ": " << t.status();
    EXPECT_EQ((*t)->name(), verbs && std::string(name) == "auto" ? "verbs" : "tcp") << reason;
    EXPECT_TRUE((*t)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
  }
  EXPECT_THAT(AvailableTransports(), Contains("tcp"));
  // A GASP_NET_DEVICES filter that matches nothing keeps auto on tcp.
  TransportOptions o = Loopback();
  o.net_devices = "no_such_dev9";
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateTransport("auto", o);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->name(), "tcp");
  EXPECT_TRUE((*t)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
}

TEST(FactoryTest, ShmGivesShmAndNeedsAJobSecret) {
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateTransport("shm", Loopback());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->name(), "shm");
  EXPECT_TRUE((*t)->capabilities().cpu_atomics_coherent);
  EXPECT_TRUE((*t)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
  EXPECT_THAT(AvailableTransports(), Contains("shm"));
  TransportOptions o = Loopback();
  o.job_secret.clear();
  t = CreateTransport("shm", o);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("job secret"));
}

TEST(FactoryTest, VerbsWithoutADeviceSaysWhyAndAutoStaysOnTcp) {
  std::string reason;
  if (VerbsDeviceAvailable(&reason)) {
    EXPECT_THAT(AvailableTransports(), Contains("verbs"));
    GTEST_SKIP() << "an RDMA device with an active port exists here";
  }
  EXPECT_THAT(reason, HasSubstr("no RDMA device"));
  EXPECT_THAT(AvailableTransports(), ::testing::Not(Contains("verbs")));
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateTransport("verbs", Loopback());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("no RDMA device"));
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("GASP_TRANSPORT=verbs"));
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("use GASP_TRANSPORT=tcp"));
  std::printf("[ INFO     ] verbs unavailable: %s\n", std::string(t.status().message()).c_str());
}

TEST(FactoryTest, UnknownNamesAreRejected) {
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateTransport("carrier-pigeon", Loopback());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("carrier-pigeon"));
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("tcp"));
}

TEST(FactoryTest, BackendErrorsNameTheSetting) {
  TransportOptions o = Loopback();
  o.tcp_addr = "not-a-host.invalid";
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateTransport("tcp", o);
  EXPECT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("GASP_TCP_ADDR"));
  // A port already in use.
  absl::StatusOr<std::unique_ptr<Transport>> first = CreateTransport("tcp", Loopback());
  ASSERT_TRUE(first.ok());
  o = Loopback();
  o.tcp_port = 0;
  {
    // Find the port the first one listens on from its endpoint: reuse it.
    const EndpointBlob blob = (*first)->LocalEndpoint();
    o.tcp_port = blob.bytes[12] | (blob.bytes[13] << 8);
  }
  t = CreateTransport("tcp", o);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("GASP_TCP_PORT"));
  o.rank = 3;
  o.size = 2;
  EXPECT_EQ(CreateTransport("tcp", o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace transport
}  // namespace gasp

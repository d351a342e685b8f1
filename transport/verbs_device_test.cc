// GASP_NET_DEVICES parsing and the device choice over fake port lists
// (pure functions: no RDMA device needed).
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/verbs_transport.h"

namespace gasp {
namespace transport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

NetDeviceSpec Spec(const std::string& d, int port, bool given, bool exclude) {
  NetDeviceSpec s;
  s.device = d;
  s.port = port;
  s.port_given = given;
  s.exclude = exclude;
  return s;
}

TEST(ParseNetDevicesTest, EmptyMeansNoEntries) {
  for (const char* in : {"", " ", ",", " , "}) {
    absl::StatusOr<std::vector<NetDeviceSpec>> r = ParseNetDevices(in);
    ASSERT_TRUE(r.ok()) << in << ": " << r.status();
    EXPECT_TRUE(r->empty()) << in;
  }
}

TEST(ParseNetDevicesTest, DevicesPortsAndExclusions) {
  absl::StatusOr<std::vector<NetDeviceSpec>> r =
      ParseNetDevices("mlx5_0:1, mlx5_1:2,rxe0,^mlx5_2,^mlx5_3:2,");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(Spec("mlx5_0", 1, true, false), Spec("mlx5_1", 2, true, false),
                              Spec("rxe0", 1, false, false), Spec("mlx5_2", 1, false, true),
                              Spec("mlx5_3", 2, true, true)));
}

TEST(ParseNetDevicesTest, BadEntriesNameTheSetting) {
  for (const char* in : {"mlx5_0:", "mlx5_0:x", "mlx5_0:0", "mlx5_0:256", ":1", "^", "^:1",
                         "a:1:2"}) {
    absl::StatusOr<std::vector<NetDeviceSpec>> r = ParseNetDevices(in);
    ASSERT_FALSE(r.ok()) << in;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << in;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("GASP_NET_DEVICES")) << in;
  }
}

std::vector<RdmaPortInfo> Found() {
  auto p = [](const char* d, int port, bool active) {
    RdmaPortInfo i;
    i.device = d;
    i.port = port;
    i.active = active;
    i.state = active ? "ACTIVE" : "DOWN";
    return i;
  };
  return {p("mlx5_0", 1, true), p("mlx5_1", 1, true), p("mlx5_2", 1, false),
          p("mlx5_3", 1, true), p("mlx5_3", 2, true)};
}

std::string Pick(const std::string& spec, int local_rank) {
  absl::StatusOr<NetDeviceChoice> c = ChooseNetDevice(spec, Found(), local_rank);
  if (!c.ok()) return "error: " + std::string(c.status().message());
  return c->device + ":" + std::to_string(c->port);
}

TEST(ChooseNetDeviceTest, EmptyIsEveryActivePortInOrder) {
  EXPECT_EQ(Pick("", 0), "mlx5_0:1");
  EXPECT_EQ(Pick("", 1), "mlx5_1:1");
  EXPECT_EQ(Pick("", 2), "mlx5_3:1");  // mlx5_2 is down
  EXPECT_EQ(Pick("", 3), "mlx5_3:2");
  EXPECT_EQ(Pick("", 4), "mlx5_0:1");  // wraps
  absl::StatusOr<NetDeviceChoice> c = ChooseNetDevice("", Found(), 5);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->candidates.size(), 4u);
  EXPECT_THAT(c->reason, HasSubstr("GASP_NET_DEVICES is empty"));
  EXPECT_THAT(c->reason, HasSubstr("mlx5_2:1 DOWN"));
  EXPECT_THAT(c->reason, HasSubstr("local rank 5"));
}

TEST(ChooseNetDeviceTest, ListOrderPortsAndSpreading) {
  EXPECT_EQ(Pick("mlx5_1,mlx5_0", 0), "mlx5_1:1");
  EXPECT_EQ(Pick("mlx5_1,mlx5_0", 1), "mlx5_0:1");
  EXPECT_EQ(Pick("mlx5_1,mlx5_0", 2), "mlx5_1:1");
  EXPECT_EQ(Pick("mlx5_3:2", 0), "mlx5_3:2");
  EXPECT_EQ(Pick("mlx5_3:2", 7), "mlx5_3:2");
  // Inactive ports are dropped from the list.
  EXPECT_EQ(Pick("mlx5_2,mlx5_1", 0), "mlx5_1:1");
  EXPECT_EQ(Pick("mlx5_2,mlx5_1", 1), "mlx5_1:1");
  // Duplicates count once.
  EXPECT_EQ(Pick("mlx5_0,mlx5_0:1,mlx5_1", 1), "mlx5_1:1");
  EXPECT_EQ(Pick("mlx5_0", -1), "mlx5_0:1");
}

TEST(ChooseNetDeviceTest, Exclusions) {
  EXPECT_EQ(Pick("^mlx5_0", 0), "mlx5_1:1");
  EXPECT_EQ(Pick("^mlx5_0,^mlx5_1", 0), "mlx5_3:1");
  EXPECT_EQ(Pick("^mlx5_0,^mlx5_1,^mlx5_3:1", 0), "mlx5_3:2");
  EXPECT_EQ(Pick("^mlx5_0,^mlx5_1,^mlx5_3:1", 1), "mlx5_3:2");
  EXPECT_EQ(Pick("mlx5_0,mlx5_1,^mlx5_0", 0), "mlx5_1:1");
}

TEST(ChooseNetDeviceTest, ErrorsListTheDevicesAndNameTheSetting) {
  absl::StatusOr<NetDeviceChoice> c = ChooseNetDevice("mlx5_9", Found(), 0);
  ASSERT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  std::string m(c.status().message());
  EXPECT_THAT(m, HasSubstr("'mlx5_9'"));
  EXPECT_THAT(m, HasSubstr("GASP_NET_DEVICES"));
  EXPECT_THAT(m, HasSubstr("mlx5_0 port 1 ACTIVE, mlx5_1 port 1 ACTIVE, mlx5_2 port 1 DOWN"));
  EXPECT_EQ(ChooseNetDevice("^mlx5_9", Found(), 0).status().code(), absl::StatusCode::kNotFound);

  c = ChooseNetDevice("mlx5_0:2", Found(), 0);
  ASSERT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("has no port 2"));

  c = ChooseNetDevice("mlx5_2", Found(), 0);
  ASSERT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  m = std::string(c.status().message());
  EXPECT_THAT(m, HasSubstr("GASP_NET_DEVICES='mlx5_2'"));
  EXPECT_THAT(m, HasSubstr("mlx5_2 port 1 DOWN"));

  c = ChooseNetDevice("", {}, 0);
  ASSERT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("devices: none"));

  EXPECT_EQ(ChooseNetDevice("mlx5_0:zz", Found(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace transport
}  // namespace gasp

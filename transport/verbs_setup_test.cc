// verbs set-up errors: device, GID, device spreading, keys (skipped
// without an RDMA device; run in the soft-RoCE guest).
#include "transport/conformance_fixture.h"

namespace gasp {
namespace transport {
namespace conformance {
namespace {

// --- verbs set-up errors (skipped without an RDMA device) -----------------

TransportOptions VerbsOne() { return testing::LoopbackOptions(0, 1, absl::Seconds(5)); }

std::string VmEnv(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
bool InVm() { return VmEnv("VMTEST") == "1" && !VmEnv("VMTEST_RXE1").empty(); }

TEST(VerbsSetupTest, UnknownDeviceListsTheDevices) {
  std::string reason;
  if (!VerbsDeviceAvailable(&reason)) GTEST_SKIP() << "verbs: " << reason;
  TransportOptions o = VerbsOne();
  o.net_devices = "no_such_dev9:1";
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateVerbsTransport(o, VerbsOptionsFrom(o));
  ASSERT_EQ(t.status().code(), absl::StatusCode::kNotFound) << t.status();
  const std::string m(t.status().message());
  EXPECT_THAT(m, HasSubstr("no_such_dev9"));
  EXPECT_THAT(m, HasSubstr("GASP_NET_DEVICES"));
  EXPECT_THAT(m, HasSubstr("devices: "));
  EXPECT_THAT(m, HasSubstr("port 1 ACTIVE"));
  if (InVm()) {
    EXPECT_THAT(m, HasSubstr(VmEnv("VMTEST_RXE0") + " port 1 ACTIVE"));
    EXPECT_THAT(m, HasSubstr(VmEnv("VMTEST_RXE1") + " port 1 ACTIVE"));
  }
  // The factory says the same (the filter applies to the availability check).
  absl::StatusOr<std::unique_ptr<Transport>> f = CreateTransport("verbs", o);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kUnavailable) << f.status();
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("no_such_dev9"));
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("GASP_TRANSPORT"));
  std::printf("unknown device error: %s\n", m.c_str());
}

TEST(VerbsSetupTest, GidIndexOutOfRangeIsClear) {
  std::string reason;
  if (!VerbsDeviceAvailable(&reason)) GTEST_SKIP() << "verbs: " << reason;
  TransportOptions o = VerbsOne();
  o.net_devices = VmEnv("VMTEST_RXE0");
  o.ib_gid_index = 100000;
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateVerbsTransport(o, VerbsOptionsFrom(o));
  ASSERT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
  const std::string m(t.status().message());
  EXPECT_THAT(m, HasSubstr("GASP_IB_GID_INDEX=100000 is out of range"));
  EXPECT_THAT(m, ::testing::ContainsRegex("GID table has [0-9]+ entries"));
  std::printf("gid error: %s\n", m.c_str());
}

TEST(VerbsSetupTest, AutoGidPicksRoceV2Ipv4) {
  if (!InVm()) GTEST_SKIP() << "needs the soft-RoCE guest's known GID layout (VMTEST=1)";
  VerbsOptions v;
  v.net_devices = testing::VmNetDevices();
  v.local_rank = 0;
  absl::StatusOr<VerbsDeviceSelection> s = SelectVerbsDevice(v);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->device, VmEnv("VMTEST_RXE0"));
  EXPECT_EQ(s->port, 1);
  EXPECT_EQ(s->gid_index, std::atoi(VmEnv("VMTEST_GID_INDEX").c_str()));
  EXPECT_EQ(s->gid_index, 1);
  EXPECT_EQ(s->gid_type, "RoCE v2");
  EXPECT_EQ(s->gid, "::ffff:" + VmEnv("VMTEST_IP0"));
  EXPECT_EQ(s->ipv4, VmEnv("VMTEST_IP0"));
  EXPECT_EQ(s->alt_ipv4, VmEnv("VMTEST_IP1"));  // the other active device
  EXPECT_GE(s->active_mtu, 256);
  EXPECT_THAT(s->reason, HasSubstr("RoCE v2"));
  std::printf("auto: %s:%d gid %d %s ipv4 %s alt %s mtu %d (%s)\n", s->device.c_str(), s->port,
              s->gid_index, s->gid.c_str(), s->ipv4.c_str(), s->alt_ipv4.c_str(), s->active_mtu,
              s->reason.c_str());
  // An explicit index is used as is: 0 is the link-local GID (not IPv4-mapped);
  // the rdma_cm address then comes from its interface.
  v.gid_index = 0;
  s = SelectVerbsDevice(v);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->gid_index, 0);
  EXPECT_THAT(s->gid, ::testing::StartsWith("fe80:"));
  EXPECT_EQ(s->ipv4, VmEnv("VMTEST_IP0"));
  // With one device listed there is no alternate source.
  v.gid_index = -1;
  v.net_devices = VmEnv("VMTEST_RXE0");
  s = SelectVerbsDevice(v);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->alt_ipv4, "");
}

TEST(VerbsSetupTest, LocalRanksSpreadOverDevices) {
  if (!InVm()) GTEST_SKIP() << "needs the soft-RoCE guest's two devices (VMTEST=1)";
  const std::string d0 = VmEnv("VMTEST_RXE0"), d1 = VmEnv("VMTEST_RXE1");
  for (const std::string& spec : {testing::VmNetDevices(), std::string()}) {
    for (int lr = 0; lr < 4; ++lr) {
      VerbsOptions v;
      v.net_devices = spec;
      v.local_rank = lr;
      absl::StatusOr<VerbsDeviceSelection> s = SelectVerbsDevice(v);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->device, lr % 2 == 0 ? d0 : d1) << "spec '" << spec << "' local rank " << lr;
      EXPECT_EQ(s->ipv4, VmEnv(lr % 2 == 0 ? "VMTEST_IP0" : "VMTEST_IP1"));
    }
  }
  // Order of the list, and exclusion.
  VerbsOptions v;
  v.net_devices = d1 + ":1," + d0;
  absl::StatusOr<VerbsDeviceSelection> s = SelectVerbsDevice(v);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->device, d1);
  v.net_devices = "^" + d0;
  for (int lr = 0; lr < 2; ++lr) {
    v.local_rank = lr;
    s = SelectVerbsDevice(v);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->device, d1);
  }
  // A real transport on local rank 1 advertises rxe1's address.
  TransportOptions o = VerbsOne();
  o.net_devices = testing::VmNetDevices();
  o.local_rank = 1;
  o.local_size = 2;
  ASSERT_TRUE(ConfigureLogging(LogLevel::kDebug, "").ok());  // show the choice
  absl::StatusOr<std::unique_ptr<Transport>> t = CreateTransport("verbs", o);
  ASSERT_TRUE(t.ok()) << t.status();
  // A self atomic goes through the device (QP to its own listener, from
  // the other device's address): logs the QP's path MTU at debug.
  const EndpointBlob own[1] = {(*t)->LocalEndpoint()};
  ASSERT_TRUE((*t)->Connect(own).ok());
  alignas(8) uint64_t word = 5, old = 0;
  absl::StatusOr<Region> reg = (*t)->Register(&word, sizeof(word), kRemoteAll);
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_TRUE(ExecuteFor(**t, {FetchAddOp(0, &old, Addr(&word), reg->rkey, 2)}).ok());
  EXPECT_EQ(old, 5u);
  EXPECT_EQ(word, 7u);
  ASSERT_TRUE(ConfigureLogging(LogLevel::kWarn, "").ok());
  const EndpointBlob b = (*t)->LocalEndpoint();
  EXPECT_EQ(absl::StrFormat("%d.%d.%d.%d", b.bytes[8], b.bytes[9], b.bytes[10], b.bytes[11]),
            VmEnv("VMTEST_IP1"));
  EXPECT_TRUE((*t)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
  // Excluding both devices leaves nothing.
  o.net_devices = "^" + d0 + ",^" + d1;
  absl::StatusOr<std::unique_ptr<Transport>> none = CreateVerbsTransport(o, VerbsOptionsFrom(o));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable) << none.status();
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("GASP_NET_DEVICES"));
}

TEST(VerbsSetupTest, DescribeRdmaDevicesListsPortsAndGids) {
  std::string reason;
  const std::string d = DescribeRdmaDevices();
  std::printf("%s", d.c_str());
  if (!VerbsDeviceAvailable(&reason)) {
    EXPECT_THAT(d, HasSubstr("no RDMA devices (ibv_get_device_list: "));
    return;
  }
  EXPECT_THAT(d, HasSubstr("node GUID"));
  EXPECT_THAT(d, HasSubstr("ACTIVE"));
  EXPECT_THAT(d, HasSubstr("active MTU"));
  if (InVm()) {
    EXPECT_THAT(d, HasSubstr("GID 1: ::ffff:" + VmEnv("VMTEST_IP0") + "  RoCE v2  IPv4 " +
                                 VmEnv("VMTEST_IP0")));
    EXPECT_THAT(d, HasSubstr("link layer Ethernet"));
  }
}

TEST(VerbsSetupTest, KeyThePeerNeverRegisteredIsRefused) {
  std::string reason;
  if (!VerbsDeviceAvailable(&reason)) GTEST_SKIP() << "verbs: " << reason;
  absl::StatusOr<Cluster> c = Cluster::Start("verbs", 2, absl::Seconds(20));
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<uint8_t> target(4096, 0x33), src(64, 0x77);
  absl::StatusOr<Region> r = (*c)[1].Register(target.data(), target.size(), kRemoteAll);
  ASSERT_TRUE(r.ok()) << r.status();
  RemoteKey never;
  never.packed = 0x7777000012345678ull;
  for (int initiator : {0, 1}) {
    CompletionCounter counter;
    absl::Status s = PostAndWait((*c)[initiator],
                                 {WriteOp(1, src.data(), src.size(), Addr(target.data()), never, 5)},
                                 &counter);
    EXPECT_EQ(counter.first_error(), CompletionCode::kRemoteAccessError) << s;
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_TRUE(std::all_of(target.begin(), target.end(), [](uint8_t b) { return b == 0x33; }));
  }
  // The right key still works afterwards (the QP was re-established).
  EXPECT_TRUE(ExecuteFor((*c)[0], {WriteOp(1, src.data(), 8, Addr(target.data()), r->rkey)}).ok());
  EXPECT_EQ(target[0], 0x77);
  EXPECT_TRUE(c->ShutdownAll().ok());
}


}  // namespace
}  // namespace conformance
}  // namespace transport
}  // namespace gasp

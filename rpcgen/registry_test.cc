// RegisterImpl / FindImpl (through GASP_SERVICE_IMPL) and the kind and path
// names.
#include <cstdint>
#include <memory>

#include "gtest/gtest.h"
#include "gasp/service.h"
#include "rpcgen/testdata/echo.gasp.h"

namespace gasp {
namespace testdata {
namespace {

// Remembers its root so the test can see the factory passed it on.
class RootedEcho : public Echo::Service {
 public:
  explicit RootedEcho(uint64_t root) : root(root) {}
  gasp::Status Echo(const EchoRequest&, EchoReply*) override { return gasp::OkStatus(); }
  gasp::Status Sum(const SumRequest&, SumReply*) override { return gasp::OkStatus(); }
  gasp::Status Resolve(const testdata_other::v1::Key&, Lookup::Result*) override {
    return gasp::OkStatus();
  }

  const uint64_t root;
};

GASP_SERVICE_IMPL(Echo, RootedEcho);

TEST(RegistryTest, LinkedInImplementationIsFoundByServiceName) {
  rpc::ImplFactory factory = rpc::FindImpl("gasp.testdata.Echo");
  ASSERT_NE(factory, nullptr);
  std::unique_ptr<rpc::ServiceBase> impl = factory(0x7f0000001000);
  ASSERT_NE(impl, nullptr);
  EXPECT_STREQ(impl->service_name(), "gasp.testdata.Echo");
  auto* rooted = dynamic_cast<RootedEcho*>(impl.get());
  ASSERT_NE(rooted, nullptr);
  EXPECT_EQ(rooted->root, 0x7f0000001000u);
}

TEST(RegistryTest, UnknownServiceHasNoImplementation) {
  EXPECT_EQ(rpc::FindImpl("gasp.testdata.Nope"), nullptr);
  EXPECT_EQ(rpc::FindImpl(""), nullptr);
}

std::unique_ptr<rpc::ServiceBase> OtherFactory(uint64_t) { return nullptr; }

TEST(RegistryTest, SecondRegistrationIsIgnored) {
  rpc::ImplFactory first = rpc::FindImpl(Echo::kServiceName);
  ASSERT_NE(first, nullptr);
  rpc::RegisterImpl(Echo::kServiceName, &OtherFactory);
  EXPECT_EQ(rpc::FindImpl(Echo::kServiceName), first);

  rpc::RegisterImpl("gasp.testdata.Other", &OtherFactory);
  EXPECT_EQ(rpc::FindImpl("gasp.testdata.Other"), &OtherFactory);
}

TEST(NamesTest, KindsUseTheProtoSpelling) {
  EXPECT_STREQ(rpc::KindName(rpc::Kind::kAuto), "AUTO");
  EXPECT_STREQ(rpc::KindName(rpc::Kind::kDataShipping), "DATA_SHIPPING");
  EXPECT_STREQ(rpc::KindName(rpc::Kind::kFunctionShipping), "FUNCTION_SHIPPING");
}

TEST(NamesTest, PathsHaveDistinctNames) {
  EXPECT_STREQ(rpc::PathName(rpc::Path::kTrustedDirect), "trusted-direct");
  EXPECT_STREQ(rpc::PathName(rpc::Path::kUntrustedGated), "untrusted-gated");
  EXPECT_STREQ(rpc::PathName(rpc::Path::kDataShipping), "data-shipping");
  EXPECT_STREQ(rpc::PathName(rpc::Path::kFunctionShipping), "function-shipping");
}

}  // namespace
}  // namespace testdata
}  // namespace gasp

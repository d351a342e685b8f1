#include "rpcgen/code.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "rpcgen/ns.h"
#include "gasp/service.h"

namespace gasp {
namespace rpc {
namespace {

namespace v1 = nameserver::v1;

std::string SoPath() {
  const char* dir = std::getenv("TEST_SRCDIR");
  std::string p = std::string(dir ? dir : ".") + "/gasp/rpcgen/testdata/libso_impl.so";
  std::ifstream f(p);
  return f.good() ? p : "bazel-bin/rpcgen/testdata/libso_impl.so";
}

v1::BindReply Reply(const std::string& service, const std::string& path, const std::string& sha) {
  v1::BindReply r;
  r.set_service(service);
  r.mutable_code()->set_machine_type(MachineType());
  r.mutable_code()->set_path(path);
  r.mutable_code()->set_sha256(sha);
  return r;
}

struct Linked {
  static constexpr char kServiceName[] = "gasp.testdata.Linked";
};
class LinkedImpl : public ServiceBase {
 public:
  explicit LinkedImpl(uint64_t) {}
  const char* service_name() const override { return Linked::kServiceName; }
  MethodTable methods() const override { return {}; }
};
GASP_SERVICE_IMPL(Linked, LinkedImpl);

TEST(LoadRegisteredCode, NoCodeIsNotFound) {
  std::string why;
  v1::BindReply r;
  r.set_service("x");
  EXPECT_TRUE(absl::IsNotFound(LoadRegisteredCode(r, &why)));
  EXPECT_NE(why.find("no code"), std::string::npos);
}

TEST(LoadRegisteredCode, ThisExecutableWhenTheHashMatches) {
  std::string exe = OwnExecutable().value();
  std::string sha = Sha256OfFile(exe).value();
  std::string why;
  EXPECT_TRUE(LoadRegisteredCode(Reply(Linked::kServiceName, exe, sha), &why).ok()) << why;
  // Another executable's hash: refused, whatever is linked in.
  std::string other(64, 'a');
  EXPECT_TRUE(absl::IsFailedPrecondition(
      LoadRegisteredCode(Reply(Linked::kServiceName, exe, other), &why)));
  EXPECT_NE(why.find("SHA-256 differs"), std::string::npos) << why;
}

TEST(LoadRegisteredCode, SharedObjectLoadedOnlyWithItsHash) {
  const std::string so = SoPath();
  const std::string sha = Sha256OfFile(so).value();
  const std::string name = "gasp.testdata.FromSharedObject";
  ASSERT_EQ(FindImpl(name), nullptr) << "not linked into the test";
  std::string why;
  std::string wrong = sha;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  EXPECT_TRUE(absl::IsPermissionDenied(LoadRegisteredCode(Reply(name, so, wrong), &why)));
  EXPECT_NE(why.find("not loaded"), std::string::npos) << why;
  EXPECT_EQ(FindImpl(name), nullptr) << "a mismatching object must not be loaded";
  ASSERT_TRUE(LoadRegisteredCode(Reply(name, so, sha), &why).ok()) << why;
  ImplFactory f = FindImpl(name);
  ASSERT_NE(f, nullptr) << "loading it registered the implementation";
  EXPECT_STREQ(f(0x1000)->service_name(), name.c_str());
  // An object that does not implement the service asked for.
  EXPECT_TRUE(absl::IsNotFound(LoadRegisteredCode(Reply("gasp.testdata.Other", so, sha), &why)));
}

TEST(Sha256OfFile, KnownValue) {
  const std::string p = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/abc";
  std::FILE* f = std::fopen(p.c_str(), "wb");
  std::fputs("abc", f);
  std::fclose(f);
  EXPECT_EQ(Sha256OfFile(p).value(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(Sha256OfFile(p + ".missing").ok());
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

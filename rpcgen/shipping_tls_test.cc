// ShippingTls with the certificates of nameserver/testing/make_test_certs.sh
// (made by openssl for this run): the subjects, the file errors, and the two
// ends of a real gRPC handshake on loopback (the callee's certificate checked
// against the owner; the caller's against the CA). tests/services_test.sh
// runs the same checks in a real job.
#include "rpcgen/shipping_tls.h"

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nameserver/testing/server_process.h"
#include "rpcgen/shipping.grpc.pb.h"

namespace gasp {
namespace rpc {
namespace {

using ::testing::HasSubstr;

// Answers every call with the caller's verified principal.
class EchoCaller final : public Shipping::Service {
 public:
  explicit EchoCaller(const ShippingTls* tls) : tls_(tls) {}
  grpc::Status Call(grpc::ServerContext* context, const CallRequest*, CallReply* reply) override {
    absl::StatusOr<std::string> who = tls_->CallerOf(*context);
    if (!who.ok()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(who.status().message()));
    reply->set_reply(*who);
    return grpc::Status::OK;
  }

 private:
  const ShippingTls* tls_;
};

class ShippingTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new std::string(nameserver::testing::NewTempDir("certs"));
    std::string cmd = absl::StrCat(
        "bash ", nameserver::testing::Runfile("nameserver/testing/make_test_certs.sh"), " ",
        *certs_);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static std::string F(const std::string& name) { return absl::StrCat(*certs_, "/", name); }
  static std::unique_ptr<ShippingTls> Load(const std::string& who) {
    absl::StatusOr<std::unique_ptr<ShippingTls>> t =
        ShippingTls::FromFiles(F("ca.crt"), F(who + ".crt"), F(who + ".key"));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *std::move(t) : nullptr;
  }
  static std::string* certs_;
};
std::string* ShippingTlsTest::certs_ = nullptr;

TEST_F(ShippingTlsTest, SubjectsAreTheNameServersPrincipals) {
  std::unique_ptr<ShippingTls> ranks = Load("ranks");
  ASSERT_NE(ranks, nullptr);
  EXPECT_EQ(ranks->subject(), "CN=ranks,O=gasp");  // RFC 2253, as gRPC's x509_subject
  EXPECT_FALSE(CertificateSubject("no certificate here").ok());
}

TEST(ServerNameTest, IsTheCnOfTheOwner) {
  EXPECT_EQ(ShippingTls::ServerNameFor("CN=ranks,O=gasp"), "ranks");
  EXPECT_EQ(ShippingTls::ServerNameFor("O=gasp,CN=solver job"), "solver job");
  EXPECT_EQ(ShippingTls::ServerNameFor("O=a\\,CN=b,CN=c"), "c");  // "\," is inside O's value
  EXPECT_EQ(ShippingTls::ServerNameFor("O=gasp"), "");
  EXPECT_EQ(ShippingTls::ServerNameFor(""), "");
}

TEST_F(ShippingTlsTest, BadFilesAreNamed) {
  auto missing = ShippingTls::FromFiles(F("ca.crt"), F("nope.crt"), F("ranks.key"));
  EXPECT_TRUE(absl::IsInvalidArgument(missing.status()));
  EXPECT_THAT(missing.status().message(), HasSubstr("GASP_NS_CERT"));
  auto not_pem = ShippingTls::FromFiles(F("ca.crt"), F("client.ext"), F("ranks.key"));
  EXPECT_THAT(not_pem.status().message(), HasSubstr("not a PEM file"));
}

TEST_F(ShippingTlsTest, BothEndsCheckEachOther) {
  std::unique_ptr<ShippingTls> ranks = Load("ranks");
  std::unique_ptr<ShippingTls> alice = Load("alice");  // a client-only certificate
  ASSERT_NE(ranks, nullptr);
  ASSERT_NE(alice, nullptr);
  EchoCaller service(ranks.get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", ranks->ServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string at = absl::StrCat("127.0.0.1:", port);
  auto call = [&](std::shared_ptr<grpc::ChannelCredentials> creds, CallReply* reply) {
    auto stub = Shipping::NewStub(grpc::CreateChannel(at, creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    CallRequest req;
    return stub->Call(&ctx, req, reply);
  };
  CallReply reply;
  // The owner presents a certificate of the owner: the call runs, and the
  // callee sees the caller's subject.
  grpc::Status s = call(ranks->ChannelCredentials("CN=ranks,O=gasp"), &reply);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(reply.reply(), "CN=ranks,O=gasp");
  // A caller (alice) reaches the same callee and is seen as alice.
  s = call(alice->ChannelCredentials("CN=ranks,O=gasp"), &reply);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(reply.reply(), "CN=alice,O=gasp");
  // Expecting another owner: the handshake fails, nothing runs.
  reply.Clear();
  s = call(ranks->ChannelCredentials("CN=bob,O=gasp"), &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(reply.reply(), "");
  // Plaintext to a TLS server: no connection.
  s = call(grpc::InsecureChannelCredentials(), &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

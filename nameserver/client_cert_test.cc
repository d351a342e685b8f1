// ClientCertVerifier on its own, with the certificates of
// testing/make_test_certs.sh (made by openssl for this run); the end-to-end
// behaviour over gRPC is in nameserver_test.cc.
#include "nameserver/client_cert.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nameserver/testing/server_process.h"

namespace gasp {
namespace nameserver {
namespace {

using ::testing::HasSubstr;

class ClientCertVerifierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new std::string(testing::NewTempDir("certs"));
    std::string cmd = absl::StrCat(
        "bash ", testing::Runfile("nameserver/testing/make_test_certs.sh"), " ", *certs_);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  static std::string Pem(const std::string& file) {
    std::ifstream in(absl::StrCat(*certs_, "/", file), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::unique_ptr<ClientCertVerifier> Verifier(const std::string& ca = "ca.crt") {
    absl::StatusOr<std::unique_ptr<ClientCertVerifier>> v =
        ClientCertVerifier::Create(Pem(ca), "--ca " + ca);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? std::move(*v) : nullptr;
  }

  static std::string* certs_;
};

std::string* ClientCertVerifierTest::certs_ = nullptr;

TEST_F(ClientCertVerifierTest, AcceptsCertificatesOfTheCa) {
  auto v = Verifier();
  ASSERT_NE(v, nullptr);
  for (const char* who : {"alice.crt", "bob.crt", "solver.crt"}) {
    EXPECT_TRUE(v->CheckPem(Pem(who), "").ok()) << who << ": " << v->CheckPem(Pem(who), "");
  }
  // carol.crt holds carol's certificate, then the intermediate's. Only the
  // first is the client's certificate; without the rest there is no chain.
  const std::string carol = Pem("carol.crt");
  const size_t second = carol.find("-----BEGIN", 1);
  ASSERT_NE(second, std::string::npos);
  EXPECT_TRUE(v->CheckPem(carol.substr(0, second), carol.substr(second)).ok());
  absl::Status alone = v->CheckPem(carol.substr(0, second), "");
  EXPECT_EQ(alone.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(alone.message(), HasSubstr("not signed by the name server's CA"));
  // The server's own certificate is for TLS servers only.
  absl::Status server = v->CheckPem(Pem("server.crt"), "");
  EXPECT_EQ(server.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(server.message()),
              HasSubstr("client certificate refused: unsuitable certificate purpose"));
}

TEST_F(ClientCertVerifierTest, RefusalsSayWhy) {
  auto v = Verifier();
  ASSERT_NE(v, nullptr);
  struct Case {
    std::string cert;
    const char* message;
  };
  const Case cases[] = {
      {"", "client certificate required (set GASP_NS_CERT / GASP_NS_KEY)"},
      {"not a certificate", "client certificate unreadable"},
      {Pem("mallory.crt"),
       "client certificate not signed by the name server's CA: unable to get local issuer "
       "certificate (subject CN=alice,O=gasp, issuer CN=gasp test CA)"},
      {Pem("expired.crt"),
       "client certificate expired on 2020-01-02 00:00:00 UTC (subject CN=alice,O=gasp)"},
      {Pem("notyet.crt"),
       "client certificate not yet valid: valid from 2099-01-01 00:00:00 UTC (subject "
       "CN=alice,O=gasp)"},
  };
  for (const Case& c : cases) {
    absl::Status st = v->CheckPem(c.cert, "");
    EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated) << c.message;
    EXPECT_THAT(st.message(), HasSubstr(c.message));
    // The cached answer is the same.
    EXPECT_EQ(v->CheckPem(c.cert, ""), st);
  }
  // Extra certificates from the client do not make a foreign one trusted.
  EXPECT_FALSE(v->CheckPem(Pem("mallory.crt"), Pem("rogue-ca.crt")).ok());
}

TEST_F(ClientCertVerifierTest, TrustsAnIntermediateGivenAsTheCa) {
  auto v = Verifier("inter.crt");
  ASSERT_NE(v, nullptr);
  const std::string carol = Pem("carol.crt");
  EXPECT_TRUE(v->CheckPem(carol.substr(0, carol.find("-----BEGIN", 1)), "").ok());
  EXPECT_FALSE(v->CheckPem(Pem("alice.crt"), "").ok());
}

TEST_F(ClientCertVerifierTest, CacheIsBounded) {
  auto v = Verifier();
  ASSERT_NE(v, nullptr);
  const std::string alice = Pem("alice.crt");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(v->CheckPem(alice, "").ok());
  EXPECT_EQ(v->cache_size(), 1u);
  // Distinct (certificate, chain) texts are distinct entries; text that is
  // not a certificate in the chain is ignored by the check.
  const size_t n = ClientCertVerifier::kCacheCapacity + 50;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(v->CheckPem(alice, absl::StrCat("junk ", i)).ok()) << i;
  }
  EXPECT_EQ(v->cache_size(), ClientCertVerifier::kCacheCapacity);
  EXPECT_TRUE(v->CheckPem(alice, "").ok());
  EXPECT_FALSE(v->CheckPem(Pem("expired.crt"), "").ok());
  EXPECT_EQ(v->cache_size(), ClientCertVerifier::kCacheCapacity);
}

TEST_F(ClientCertVerifierTest, CaFileWithoutCertificateIsAnError) {
  absl::StatusOr<std::unique_ptr<ClientCertVerifier>> v =
      ClientCertVerifier::Create(Pem("ca.key"), "--ca ca.key");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("--ca ca.key: no PEM certificate in it"));
}

}  // namespace
}  // namespace nameserver
}  // namespace gasp

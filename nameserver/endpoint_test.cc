#include "nameserver/endpoint.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace nameserver {
namespace {

using ::testing::HasSubstr;

TEST(EndpointTest, ParsesTheThreeForms) {
  absl::StatusOr<HostPort> hp = ParseHostPort("node7.cluster:7474", "x", false);
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "node7.cluster");
  EXPECT_EQ(hp->port, 7474);
  hp = ParseHostPort("10.1.2.3:1", "x", false);
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "10.1.2.3");
  hp = ParseHostPort("[fe80::1]:65535", "x", false);
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "fe80::1");
  EXPECT_EQ(hp->port, 65535);
}

TEST(EndpointTest, PortZeroOnlyWhenListening) {
  EXPECT_TRUE(ParseHostPort("127.0.0.1:0", "--listen", true).ok());
  absl::Status st = ParseHostPort("127.0.0.1:0", "endpoint", false).status();
  EXPECT_THAT(st.message(), HasSubstr("the port must be 1..65535"));
}

TEST(EndpointTest, RefusalsNameTheFlagAndTheProblem) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"", "no port"},
      {"host", "no port"},
      {"host:", "not a number"},
      {"host:http", "not a number"},
      {":80", "not a host name"},
      {"bad host:80", "not a host name"},
      {"::1:80", "brackets"},
      {"[::1]80", "no ':port'"},
      {"[::1:80", "no ']'"},
      {"[nope]:80", "not an IPv6 address"},
      {"h:70000", "0..65535"},
      {"h:-1", "0..65535"},
  };
  for (const Case& c : cases) {
    absl::Status st = ParseHostPort(c.text, "--listen", true).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(st.message(), HasSubstr(c.message)) << c.text;
    EXPECT_THAT(st.message(), HasSubstr("--listen '")) << c.text;
  }
}

TEST(EndpointTest, Loopback) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.3.4.5"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("LocalHost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("128.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("localhost.example.com"));
  EXPECT_FALSE(IsLoopbackHost("node1"));
}

}  // namespace
}  // namespace nameserver
}  // namespace gasp

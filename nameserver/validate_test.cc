#include "nameserver/validate.h"

#include <functional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nameserver/testing/registrations.h"

namespace gasp {
namespace nameserver {
namespace {

using ::testing::HasSubstr;
using testing::TestRegistration;

TEST(ValidateTest, TheTestRegistrationIsValid) {
  EXPECT_TRUE(ValidateRegistration(TestRegistration("a/B", "CN=x")).ok());
}

TEST(ValidateTest, ServiceNames) {
  EXPECT_TRUE(ValidateServiceName("solver.v1/Jacobi-2_x").ok());
  EXPECT_THAT(ValidateServiceName("").message(), HasSubstr("empty"));
  EXPECT_THAT(ValidateServiceName("a b").message(), HasSubstr("contains ' '"));
  EXPECT_THAT(ValidateServiceName(std::string("a\0b", 3)).message(), HasSubstr("contains '\\x00'"));
  EXPECT_THAT(ValidateServiceName(std::string(kMaxServiceNameBytes + 1, 'a')).message(),
              HasSubstr("longer than 200 bytes"));
  EXPECT_TRUE(ValidateServiceName(std::string(kMaxServiceNameBytes, 'a')).ok());
}

TEST(ValidateTest, EachRuleHasItsMessage) {
  struct Case {
    const char* what;
    std::function<void(v1::RegisterRequest*)> damage;
    const char* message;
  };
  const Case cases[] = {
      {"no methods", [](v1::RegisterRequest* r) { r->clear_methods(); }, "no methods"},
      {"empty method name", [](v1::RegisterRequest* r) { r->mutable_methods(1)->clear_name(); },
       "methods[1].name is empty"},
      {"duplicate method", [](v1::RegisterRequest* r) { r->mutable_methods(2)->set_name("Solve"); },
       "method 'Solve' is listed twice"},
      {"method kind", [](v1::RegisterRequest* r) { r->mutable_methods(0)->clear_kind(); },
       "method 'Solve' has no kind"},
      {"unknown kind",
       [](v1::RegisterRequest* r) { r->mutable_methods(0)->set_kind(static_cast<v1::Method::Kind>(42)); },
       "has no kind"},
      {"home rank", [](v1::RegisterRequest* r) { r->set_home_rank(-1); }, "home_rank is -1"},
      {"endpoint", [](v1::RegisterRequest* r) { r->clear_endpoint(); }, "endpoint '': no port"},
      {"principal", [](v1::RegisterRequest* r) { r->add_trusted_principals(""); },
       "trusted_principals[1] is empty"},
      {"machine type twice", [](v1::RegisterRequest* r) { *r->add_code() = r->code(0); },
       "two code entries for machine type 'x86_64-linux-gnu'"},
      {"relative path", [](v1::RegisterRequest* r) { r->mutable_code(0)->set_path("lib.so"); },
       "path 'lib.so' is not absolute"},
      {"sha256 case",
       [](v1::RegisterRequest* r) {
         r->mutable_code(0)->set_sha256(std::string(64, 'A'));
       },
       "64 lowercase hex digits"},
      {"empty segment", [](v1::RegisterRequest* r) { r->mutable_segments(1)->set_length(0); },
       "segments[1] has length 0"},
      {"wrapping segment",
       [](v1::RegisterRequest* r) { r->mutable_segments(0)->set_address(~uint64_t{0} - 10); },
       "wraps around"},
      {"key rank", [](v1::RegisterRequest* r) { r->mutable_keys(0)->set_rank(-2); },
       "keys[0] has rank -2"},
      {"key rights", [](v1::RegisterRequest* r) { r->mutable_keys(1)->clear_rights(); },
       "keys[1] has no rights"},
      {"key domain", [](v1::RegisterRequest* r) { r->mutable_keys(1)->set_domain(6); },
       "keys[1] is for domain 6"},
  };
  for (const Case& c : cases) {
    v1::RegisterRequest r = TestRegistration("svc", "CN=x");
    c.damage(&r);
    absl::Status st = ValidateRegistration(r);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(st.message(), HasSubstr(c.message)) << c.what;
    EXPECT_THAT(st.message(), HasSubstr("service 'svc'")) << c.what;
  }
}

TEST(ValidateTest, Limits) {
  v1::RegisterRequest r = TestRegistration("svc");
  for (size_t i = 0; i < kMaxMethods; ++i) {
    v1::Method* m = r.add_methods();
    m->set_name("m" + std::to_string(i));
    m->set_kind(v1::Method::AUTO);
  }
  EXPECT_THAT(ValidateRegistration(r).message(), HasSubstr("at most 1024"));
}

}  // namespace
}  // namespace nameserver
}  // namespace gasp

#include "nameserver/record_views.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nameserver/testing/registrations.h"

namespace gasp {
namespace nameserver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kTestMachine;
using testing::TestRegistration;
using Stub = v1::MethodBinding;

constexpr char kOwner[] = "CN=owner";
constexpr char kFriend[] = "CN=friend";
constexpr char kStranger[] = "CN=stranger";

v1::ServiceRecord Record() {
  v1::ServiceRecord rec;
  *rec.mutable_registration() = TestRegistration("svc", kFriend);
  rec.set_owner(kOwner);
  return rec;
}

v1::BindRequest Request(const char* machine = kTestMachine) {
  v1::BindRequest b;
  b.set_service("svc");
  b.set_machine_type(machine);
  return b;
}

std::vector<Stub::Stub> Stubs(const v1::BindReply& b) {
  std::vector<Stub::Stub> out;
  for (const v1::MethodBinding& m : b.methods()) out.push_back(m.stub());
  return out;
}

TEST(RecordViewsTest, TrustIsOwnerOrListed) {
  v1::ServiceRecord rec = Record();
  EXPECT_TRUE(IsTrusted(rec, kOwner));
  EXPECT_TRUE(IsTrusted(rec, kFriend));
  EXPECT_FALSE(IsTrusted(rec, kStranger));
  EXPECT_FALSE(IsTrusted(rec, "cn=friend"));  // exact subjects
  EXPECT_FALSE(IsTrusted(rec, ""));
}

// The rule table of record_views.h, row by row.
TEST(RecordViewsTest, StubRule) {
  v1::ServiceRecord rec = Record();
  // Trusted, elsewhere, with code: as registered.
  EXPECT_THAT(Stubs(MakeBinding(rec, kFriend, Request())),
              ElementsAre(Stub::DATA_SHIPPING, Stub::FUNCTION_SHIPPING, Stub::AUTO));
  // Untrusted elsewhere: everything shipped.
  v1::BindReply b = MakeBinding(rec, kStranger, Request());
  EXPECT_EQ(b.owner(), kOwner);  // what a TLS caller checks the callee against
  EXPECT_EQ(b.principal(), kStranger);
  EXPECT_THAT(Stubs(b),
              ElementsAre(Stub::FUNCTION_SHIPPING, Stub::FUNCTION_SHIPPING, Stub::FUNCTION_SHIPPING));
  EXPECT_THAT(b.methods(0).reason(), HasSubstr("only trusted principals receive"));
  // No code for the machine type: shipped, trusted or not.
  b = MakeBinding(rec, kFriend, Request("riscv64-linux-gnu"));
  EXPECT_THAT(Stubs(b),
              ElementsAre(Stub::FUNCTION_SHIPPING, Stub::FUNCTION_SHIPPING, Stub::FUNCTION_SHIPPING));
  EXPECT_THAT(b.methods(2).reason(), HasSubstr("no code for machine type 'riscv64-linux-gnu'"));
  EXPECT_FALSE(b.has_code());
  // In the home process (same job, home rank).
  v1::BindRequest home = Request();
  home.set_job_id("job-42");
  home.set_rank(3);
  EXPECT_THAT(Stubs(MakeBinding(rec, kFriend, home)),
              ElementsAre(Stub::TRUSTED_DIRECT, Stub::FUNCTION_SHIPPING, Stub::TRUSTED_DIRECT));
  EXPECT_THAT(Stubs(MakeBinding(rec, kStranger, home)),
              ElementsAre(Stub::UNTRUSTED_GATED, Stub::FUNCTION_SHIPPING, Stub::UNTRUSTED_GATED));
  // Same rank number in another job, or no rank: elsewhere.
  home.set_job_id("job-43");
  EXPECT_EQ(MakeBinding(rec, kFriend, home).methods(0).stub(), Stub::DATA_SHIPPING);
  home.set_job_id("job-42");
  home.clear_rank();
  EXPECT_EQ(MakeBinding(rec, kFriend, home).methods(0).stub(), Stub::DATA_SHIPPING);
  // A registration without a job id never matches (empty == empty is not a job).
  rec.mutable_registration()->clear_job_id();
  home.set_job_id("");
  home.set_rank(3);
  EXPECT_EQ(MakeBinding(rec, kFriend, home).methods(0).stub(), Stub::DATA_SHIPPING);
}

TEST(RecordViewsTest, KeysOnlyForTrustedSegmentsForAll) {
  v1::ServiceRecord rec = Record();
  v1::BindReply t = MakeBinding(rec, kOwner, Request());
  EXPECT_TRUE(t.trusted());
  EXPECT_EQ(t.keys_size(), 2);
  EXPECT_EQ(t.principal(), kOwner);
  v1::BindReply u = MakeBinding(rec, kStranger, Request());
  EXPECT_FALSE(u.trusted());
  EXPECT_EQ(u.keys_size(), 0);
  EXPECT_EQ(u.segments_size(), 2);
  EXPECT_THAT(u.domains(), ElementsAre(5, 7));
  EXPECT_EQ(u.endpoint(), "127.0.0.1:7001");
  EXPECT_EQ(u.home_rank(), 3);
  EXPECT_TRUE(u.has_code());
}

TEST(RecordViewsTest, SummaryHasNoSecrets) {
  v1::ServiceSummary s = MakeSummary(Record());
  EXPECT_EQ(s.service(), "svc");
  EXPECT_EQ(s.owner(), kOwner);
  EXPECT_EQ(s.methods_size(), 3);
  EXPECT_THAT(s.machine_types(), ElementsAre(kTestMachine));
  // ServiceSummary has no field for keys, segments or principals; make sure
  // nothing of them leaks through another field either.
  std::string bytes = s.SerializeAsString();
  EXPECT_EQ(bytes.find("CN=friend"), std::string::npos);
}

}  // namespace
}  // namespace nameserver
}  // namespace gasp

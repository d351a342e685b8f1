#include "nameserver/state_file.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nameserver/testing/registrations.h"

namespace gasp {
namespace nameserver {
namespace {

using ::testing::HasSubstr;
using testing::TestRegistration;

v1::State TwoServices() {
  v1::State s;
  for (const char* name : {"a", "b"}) {
    v1::ServiceRecord* rec = s.add_services();
    *rec->mutable_registration() = TestRegistration(name, "CN=friend");
    rec->set_owner("CN=owner");
  }
  return s;
}

TEST(StateFileTest, RoundTrip) {
  v1::State s = TwoServices();
  absl::StatusOr<v1::State> back = DecodeState(EncodeState(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), s.SerializeAsString());
  back = DecodeState(EncodeState(v1::State()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->services_size(), 0);
}

TEST(StateFileTest, FrameMatchesTheEncoder) {
  v1::State s = TwoServices();
  EXPECT_EQ(FrameState(s.SerializeAsString()), EncodeState(s));
}

TEST(StateFileTest, DamageIsNamed) {
  const std::string good = EncodeState(TwoServices());
  struct Case {
    const char* what;
    std::string bytes;
    absl::StatusCode code;
    const char* message;
  };
  std::string version = good;
  version[8] = 2;
  std::string flipped = good;
  flipped[40] ^= 1;
  v1::State no_owner = TwoServices();
  no_owner.mutable_services(1)->clear_owner();
  v1::State twice = TwoServices();
  *twice.add_services() = twice.services(0);
  v1::State invalid = TwoServices();
  invalid.mutable_services(0)->mutable_registration()->clear_methods();
  const Case cases[] = {
      {"short", good.substr(0, 10), absl::StatusCode::kDataLoss, "shorter than the 24-byte header"},
      {"magic", "X" + good.substr(1), absl::StatusCode::kDataLoss, "no GASPNSST magic"},
      {"version", version, absl::StatusCode::kFailedPrecondition, "format version 2"},
      {"truncated", good.substr(0, good.size() - 1), absl::StatusCode::kDataLoss,
       "payload bytes"},
      {"appended", good + "x", absl::StatusCode::kDataLoss, "payload bytes"},
      {"bit flip", flipped, absl::StatusCode::kDataLoss, "checksum mismatch"},
      {"not a State", FrameState("\xff\xff\xff"), absl::StatusCode::kDataLoss, "does not parse"},
      {"no owner", EncodeState(no_owner), absl::StatusCode::kDataLoss, "(b) has no owner"},
      {"twice", EncodeState(twice), absl::StatusCode::kDataLoss, "service 'a' appears twice"},
      {"invalid record", EncodeState(invalid), absl::StatusCode::kDataLoss,
       "record 0: service 'a': no methods"},
  };
  for (const Case& c : cases) {
    absl::Status st = DecodeState(c.bytes).status();
    EXPECT_EQ(st.code(), c.code) << c.what << ": " << st;
    EXPECT_THAT(st.message(), HasSubstr(c.message)) << c.what;
  }
}

TEST(StateFileTest, WriteReplacesAndLeavesNoTemporaryFile) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp == nullptr ? "/tmp" : tmp, "/sf-", getpid());
  ASSERT_EQ(system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str()), 0);
  const std::string path = dir + "/ns.state";
  EXPECT_EQ(ReadStateFile(path).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteStateFile(path, TwoServices()).ok());
  ASSERT_TRUE(WriteStateFile(path, v1::State()).ok());
  absl::StatusOr<v1::State> s = ReadStateFile(path);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->services_size(), 0);
  int entries = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) entries += e->d_name[0] != '.';
  closedir(d);
  EXPECT_EQ(entries, 1);
  // Errors name the file.
  FILE* f = fopen(path.c_str(), "w");
  fputs("junk", f);
  fclose(f);
  EXPECT_THAT(ReadStateFile(path).status().message(), HasSubstr(path));
  EXPECT_FALSE(WriteStateFile(dir + "/no/such/dir/ns.state", v1::State()).ok());
}

}  // namespace
}  // namespace nameserver
}  // namespace gasp

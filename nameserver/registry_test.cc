#include "nameserver/registry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nameserver/state_file.h"
#include "nameserver/testing/registrations.h"

namespace gasp {
namespace nameserver {
namespace {

using ::testing::HasSubstr;
using testing::TestRegistration;

constexpr char kOwner[] = "CN=owner";
constexpr char kOther[] = "CN=other";

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir == nullptr ? "/tmp" : dir, "/", name, "-", getpid());
}

std::unique_ptr<Registry> Open(RegistryOptions o = {}) {
  absl::StatusOr<std::unique_ptr<Registry>> r = Registry::Open(o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? std::move(*r) : nullptr;
}

v1::BindRequest BindTo(const std::string& name) {
  v1::BindRequest b;
  b.set_service(name);
  b.set_machine_type(testing::kTestMachine);
  return b;
}

TEST(RegistryTest, OwnershipRules) {
  auto r = Open();
  absl::StatusOr<v1::RegisterReply> reply = r->Register(kOwner, TestRegistration("a"));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->owner(), kOwner);
  EXPECT_FALSE(reply->replaced());
  EXPECT_EQ(r->Register(kOther, TestRegistration("a")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(r->Unregister(kOther, "a").code(), absl::StatusCode::kPermissionDenied);
  reply = r->Register(kOwner, TestRegistration("a"));
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->replaced());
  EXPECT_EQ(r->Register("", TestRegistration("b")).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(r->Unregister(kOwner, "a").ok());
  EXPECT_EQ(r->Unregister(kOwner, "a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r->size(), 0u);
}

TEST(RegistryTest, BindAndList) {
  auto r = Open();
  ASSERT_TRUE(r->Register(kOwner, TestRegistration("b")).ok());
  ASSERT_TRUE(r->Register(kOther, TestRegistration("a")).ok());
  absl::StatusOr<v1::BindReply> b = r->Bind(kOwner, BindTo("b"));
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->trusted());
  b = r->Bind(kOwner, BindTo("a"));
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->trusted());
  EXPECT_EQ(r->Bind(kOwner, BindTo("c")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r->Bind(kOwner, BindTo("bad name")).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ListReply list = r->List();
  ASSERT_EQ(list.services_size(), 2);
  EXPECT_EQ(list.services(0).service(), "a");  // sorted
  EXPECT_EQ(list.services(0).owner(), kOther);
  EXPECT_EQ(list.services(1).service(), "b");
}

TEST(RegistryTest, LimitOnServices) {
  RegistryOptions o;
  o.max_services = 2;
  auto r = Open(o);
  ASSERT_TRUE(r->Register(kOwner, TestRegistration("a")).ok());
  ASSERT_TRUE(r->Register(kOwner, TestRegistration("b")).ok());
  EXPECT_EQ(r->Register(kOwner, TestRegistration("c")).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(r->Register(kOwner, TestRegistration("b")).ok());  // replacing is fine
}

TEST(RegistryTest, StateIsSavedAndLoaded) {
  RegistryOptions o;
  o.state_path = TempPath("saved.state");
  unlink(o.state_path.c_str());
  {
    auto r = Open(o);
    // Created empty at open.
    absl::StatusOr<v1::State> s = ReadStateFile(o.state_path);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->services_size(), 0);
    ASSERT_TRUE(r->Register(kOwner, TestRegistration("m", "CN=friend")).ok());
    ASSERT_TRUE(r->Register(kOther, TestRegistration("z")).ok());
    ASSERT_TRUE(r->Register(kOwner, TestRegistration("a")).ok());
    ASSERT_TRUE(r->Unregister(kOther, "z").ok());
  }
  absl::StatusOr<v1::State> s = ReadStateFile(o.state_path);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->services_size(), 2);
  EXPECT_EQ(s->services(0).registration().service(), "a");
  EXPECT_EQ(s->services(1).registration().service(), "m");
  auto r = Open(o);
  ASSERT_EQ(r->size(), 2u);
  absl::StatusOr<v1::BindReply> b = r->Bind("CN=friend", BindTo("m"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->keys_size(), 2);
  EXPECT_EQ(r->Unregister(kOther, "m").code(), absl::StatusCode::kPermissionDenied);
}

TEST(RegistryTest, FailedSaveChangesNothing) {
  RegistryOptions o;
  o.state_path = TempPath("unwritable.state");
  unlink(o.state_path.c_str());
  auto r = Open(o);
  ASSERT_TRUE(r->Register(kOwner, TestRegistration("kept")).ok());
  // The temporary file's name taken by a directory: the write fails (as
  // root, permissions would not stop it).
  const std::string blocker = absl::StrCat(o.state_path, ".tmp.", getpid());
  ASSERT_EQ(mkdir(blocker.c_str(), 0700), 0);
  absl::StatusOr<v1::RegisterReply> reply = r->Register(kOwner, TestRegistration("lost"));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(reply.status().message(), HasSubstr("nothing was changed"));
  EXPECT_EQ(r->Unregister(kOwner, "kept").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r->size(), 1u);
  EXPECT_TRUE(r->Bind(kOwner, BindTo("kept")).ok());
  EXPECT_EQ(r->Bind(kOwner, BindTo("lost")).status().code(), absl::StatusCode::kNotFound);
  rmdir(blocker.c_str());
  EXPECT_TRUE(r->Register(kOwner, TestRegistration("lost")).ok());
}

TEST(RegistryTest, DamagedStateFailsTheOpen) {
  RegistryOptions o;
  o.state_path = TempPath("damaged.state");
  FILE* f = fopen(o.state_path.c_str(), "w");
  fputs("GASPNSST but not really", f);
  fclose(f);
  absl::StatusOr<std::unique_ptr<Registry>> r = Registry::Open(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr(o.state_path));
}

TEST(RegistryTest, WatcherSeesCurrentSetThenChanges) {
  auto r = Open();
  ASSERT_TRUE(r->Register(kOwner, TestRegistration("a")).ok());
  absl::StatusOr<std::unique_ptr<Watcher>> w = r->Watch();
  ASSERT_TRUE(w.ok());
  v1::WatchEvent ev;
  const absl::Time soon = absl::Now() + absl::Seconds(5);
  ASSERT_EQ((*w)->Next(soon, &ev), Watcher::Result::kEvent);
  EXPECT_EQ(ev.kind(), v1::WatchEvent::REGISTERED);
  EXPECT_EQ(ev.service().service(), "a");
  ASSERT_EQ((*w)->Next(soon, &ev), Watcher::Result::kEvent);
  EXPECT_EQ(ev.kind(), v1::WatchEvent::SYNCED);
  EXPECT_EQ((*w)->Next(absl::Now() + absl::Milliseconds(10), &ev), Watcher::Result::kTimeout);

  // A change from another thread wakes the waiter.
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(r->Unregister(kOwner, "a").ok());
  });
  ASSERT_EQ((*w)->Next(soon, &ev), Watcher::Result::kEvent);
  t.join();
  EXPECT_EQ(ev.kind(), v1::WatchEvent::UNREGISTERED);
  EXPECT_EQ(ev.service().service(), "a");

  // Failed changes are not events.
  EXPECT_FALSE(r->Unregister(kOwner, "a").ok());
  ASSERT_TRUE(r->Register(kOwner, TestRegistration("b")).ok());
  r->CloseWatchers();
  // Queued events first, then closed.
  ASSERT_EQ((*w)->Next(soon, &ev), Watcher::Result::kEvent);
  EXPECT_EQ(ev.service().service(), "b");
  EXPECT_EQ((*w)->Next(soon, &ev), Watcher::Result::kClosed);
  EXPECT_EQ(r->Watch().status().code(), absl::StatusCode::kUnavailable);
}

TEST(RegistryTest, SlowWatcherOverflowsAndLimitOnWatchers) {
  RegistryOptions o;
  o.max_watch_backlog = 3;
  o.max_watchers = 2;
  auto r = Open(o);
  absl::StatusOr<std::unique_ptr<Watcher>> slow = r->Watch();
  absl::StatusOr<std::unique_ptr<Watcher>> second = r->Watch();
  ASSERT_TRUE(slow.ok() && second.ok());
  EXPECT_EQ(r->Watch().status().code(), absl::StatusCode::kResourceExhausted);
  second->reset();  // a closed stream frees its slot
  EXPECT_TRUE(r->Watch().ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(r->Register(kOwner, TestRegistration("s")).ok());
  v1::WatchEvent ev;
  EXPECT_EQ((*slow)->Next(absl::Now() + absl::Seconds(1), &ev), Watcher::Result::kOverflow);
}

}  // namespace
}  // namespace nameserver
}  // namespace gasp

#include "rpcgen/call_credential.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace rpc {
namespace {

using ::testing::HasSubstr;

absl::Span<const uint8_t> Key(const std::string& k) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(k.data()), k.size());
}

const std::string kSecret(32, 's');

CallRequest SampleCall() {
  CallRequest r;
  r.set_service("pkg.Dictionary");
  r.set_method("Insert");
  r.set_request("request bytes");
  r.set_pages("page bundle");
  r.set_caller_rank(1);
  r.set_principal("uid:0/rank1");
  return r;
}

TEST(CallCredentialTest, SignedCallIsAcceptedOnce) {
  ReplayGuard guard(4);
  CallRequest r = SampleCall();
  SignCall(Key(kSecret), 0, 1, &r);
  EXPECT_TRUE(CheckCallCredential(Key(kSecret), 0, r, &guard).ok());
  absl::Status again = CheckCallCredential(Key(kSecret), 0, r, &guard);
  EXPECT_EQ(again.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(again.message(), HasSubstr("replayed"));
}

TEST(CallCredentialTest, MissingOrWrongCredentialsNameTheSettings) {
  ReplayGuard guard(4);
  CallRequest r = SampleCall();
  absl::Status none = CheckCallCredential(Key(kSecret), 0, r, &guard);
  EXPECT_EQ(none.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.message(), HasSubstr("no job credential"));
  EXPECT_THAT(none.message(), HasSubstr("GASP_NS_CA"));
  SignCall(Key(std::string(32, 'o')), 0, 1, &r);  // another job's secret
  absl::Status other = CheckCallCredential(Key(kSecret), 0, r, &guard);
  EXPECT_THAT(other.message(), HasSubstr("does not match this job's secret"));
  r.mutable_credential()->set_mac("short");
  EXPECT_THAT(CheckCallCredential(Key(kSecret), 0, r, &guard).message(), HasSubstr("MAC"));
}

// Every part of the call is covered: changing any of them after signing
// (or presenting the call to another callee) breaks the MAC.
TEST(CallCredentialTest, EveryFieldIsBound) {
  std::vector<void (*)(CallRequest*)> edits = {
      [](CallRequest* r) { r->set_service("pkg.Other"); },
      [](CallRequest* r) { r->set_method("Erase"); },
      [](CallRequest* r) { r->set_request("request bytez"); },
      [](CallRequest* r) { r->set_pages("page bundlf"); },
      [](CallRequest* r) { r->set_caller_rank(2); },
      [](CallRequest* r) { r->set_principal("CN=mallory"); },
      [](CallRequest* r) { r->mutable_credential()->set_counter(2); },
      // Moving bytes between fields must not keep the MAC.
      [](CallRequest* r) {
        r->set_request("request bytespage bundle");
        r->set_pages("");
      },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    ReplayGuard guard(4);
    CallRequest r = SampleCall();
    SignCall(Key(kSecret), 0, 1, &r);
    edits[i](&r);
    EXPECT_FALSE(CheckCallCredential(Key(kSecret), 0, r, &guard).ok()) << "edit " << i;
  }
  ReplayGuard guard(4);
  CallRequest r = SampleCall();
  SignCall(Key(kSecret), 0, 1, &r);
  EXPECT_FALSE(CheckCallCredential(Key(kSecret), 3, r, &guard).ok()) << "made for rank 0";
}

TEST(ReplayGuardTest, OutOfOrderWithinTheWindowOnlyOnce) {
  ReplayGuard g(2);
  EXPECT_TRUE(g.Accept(1, 10));
  EXPECT_TRUE(g.Accept(1, 7));   // overtaken: still fine
  EXPECT_FALSE(g.Accept(1, 7));
  EXPECT_FALSE(g.Accept(1, 10));
  EXPECT_TRUE(g.Accept(0, 10)) << "callers have separate windows";
  EXPECT_TRUE(g.Accept(1, 10 + kReplayWindow));
  EXPECT_FALSE(g.Accept(1, 9)) << "older than the window";
  EXPECT_TRUE(g.Accept(1, 11 + 1));
  EXPECT_FALSE(g.Accept(1, 0));
  EXPECT_FALSE(g.Accept(2, 1)) << "not a rank";
  EXPECT_FALSE(g.Accept(-1, 1));
}

// Many threads, counters taken from CallCounters and checked in any order:
// every one accepted once, none twice.
TEST(ReplayGuardTest, ConcurrentCallersAcceptEachCounterOnce) {
  ReplayGuard g(2);
  CallCounters counters(2);
  std::atomic<int> accepted{0}, repeats{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        const uint64_t c = counters.Next(1);
        accepted += g.Accept(0, c) ? 1 : 0;
        repeats += g.Accept(0, c) ? 1 : 0;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 8000);
  EXPECT_EQ(repeats.load(), 0);
}

}  // namespace
}  // namespace rpc
}  // namespace gasp

// The transport conformance suite's fixture, shared by its files: a
// cluster of kRanks transports of one backend (the test parameter) with a
// registered buffer each and a record of peer-failure calls.
//   conformance_test.cc           one-sided operations and messages (and
//                                 the backend list)
//   conformance_failures_test.cc  endpoints, peer failures, malformed bytes
//   conformance_waiters_test.cc   threads waiting on shared connections
//   conformance_messages_test.cc  messages on connections that carry both
//                                 directions, from fresh connections
//   verbs_setup_test.cc           verbs set-up errors (skipped without RDMA)
#ifndef GASP_TRANSPORT_CONFORMANCE_FIXTURE_H_
#define GASP_TRANSPORT_CONFORMANCE_FIXTURE_H_

#include <sys/socket.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/wait.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/deadline_wait.h"
#include "transport/tcp_wire.h"
#include "transport/transport.h"
#include "transport/transport_test_util.h"
#include "transport/factory.h"
#include "transport/verbs_transport.h"

namespace gasp {
namespace transport {
namespace conformance {

using ::testing::HasSubstr;
using testing::Addr;
using testing::CasOp;
using testing::Cluster;
using testing::ExecuteFor;
using testing::FetchAddOp;
using testing::PostAndWait;
using testing::ReadOp;
using testing::WriteOp;

constexpr int kRanks = 3;
constexpr size_t kMemBytes = (2u << 20) + 4096;

// Sets the process-wide wait policy for a scope (GASP_WAIT_MODE's
// setting), restoring the previous one at its end.
class WaitPolicy {
 public:
  explicit WaitPolicy(WaitMode mode) : mode_(GetWaitMode()), spin_(GetSpinMicros()) {
    SetWaitPolicy(mode, spin_);
  }
  ~WaitPolicy() { SetWaitPolicy(mode_, spin_); }

 private:
  const WaitMode mode_;
  const int64_t spin_;
};

// Records peer-failure handler calls.
class FailureLog {
 public:
  PeerFailureHandler Handler() {
    return [this](int peer, const absl::Status& status) {
      std::lock_guard<std::mutex> l(mu_);
      calls_.emplace_back(peer, std::string(status.message()));
      cv_.notify_all();
    };
  }
  // Waits until at least `n` calls were recorded.
  bool WaitFor(size_t n, absl::Duration timeout) {
    std::unique_lock<std::mutex> l(mu_);
    return WaitUntil(cv_, l, absl::Now() + timeout, [&] { return calls_.size() >= n; });
  }
  std::vector<std::pair<int, std::string>> calls() {
    std::lock_guard<std::mutex> l(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<int, std::string>> calls_;
};

class ConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string reason;
    if (GetParam() == "verbs" && !VerbsDeviceAvailable(&reason)) {
      std::printf("[ SKIPPED  ] verbs backend: %s\n", reason.c_str());
      GTEST_SKIP() << "verbs backend: " << reason << " (runs in the soft-RoCE guest: VMTEST=1)";
    }
    for (int r = 0; r < kRanks; ++r) mem_[r].reset(new uint8_t[kMemBytes]());
    absl::StatusOr<Cluster> c = Cluster::Start(GetParam(), kRanks, absl::Seconds(20));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    for (int r = 0; r < kRanks; ++r) {
      absl::StatusOr<Region> reg = T(r).Register(mem_[r].get(), kMemBytes, kRemoteAll);
      ASSERT_TRUE(reg.ok()) << reg.status();
      region_[r] = *reg;
      T(r).SetPeerFailureHandler(failures_[r].Handler());
    }
  }

  void TearDown() override { cluster_.ShutdownAll().IgnoreError(); }

  Transport& T(int r) { return cluster_[r]; }
  uint8_t* Mem(int r) { return mem_[r].get(); }
  uint64_t RAddr(int r, size_t offset) { return Addr(Mem(r) + offset); }
  RemoteKey Key(int r) { return region_[r].rkey; }

  // Posts `ops` on rank `r`, waits, returns the first completion code.
  CompletionCode Outcome(int r, const std::vector<Op>& ops,
                         absl::Duration timeout = absl::Seconds(20)) {
    CompletionCounter counter;
    absl::Status s = PostAndWait(T(r), ops, &counter, timeout);
    EXPECT_TRUE(counter.done()) << s;
    return counter.first_error();
  }

  // Opens connections both ways between every pair (lazy set-up done).
  void WarmUp() {
    for (int a = 0; a < kRanks; ++a) {
      for (int b = 0; b < kRanks; ++b) {
        uint64_t v = 0;
        ASSERT_TRUE(ExecuteFor(T(a), {ReadOp(b, &v, 8, RAddr(b, 0), Key(b))}).ok());
      }
    }
  }

  // Skips the test when the backend has no hook for hanging a rank.
  bool CanPause() {
    absl::Status s = testing::PauseForTest(&T(0), false);
    return s.ok();
  }

  // Declared first: must outlive the transports (handlers, registrations).
  FailureLog failures_[kRanks];
  std::unique_ptr<uint8_t[]> mem_[kRanks];
  Region region_[kRanks];
  Cluster cluster_;
};

}  // namespace conformance
}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_CONFORMANCE_FIXTURE_H_

// FaultyTransport: each fault does what it says, Abandon forgets dropped and
// delayed ops for good, and Shutdown flushes what was never abandoned.
// Rank 0 is a FaultyTransport around tcp, rank 1 a plain tcp transport.
#include "transport/faulty_transport.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/tcp_transport.h"
#include "transport/transport_test_util.h"

namespace gasp {
namespace transport {
namespace {

using ::testing::HasSubstr;
using testing::Addr;
using testing::ExecuteFor;
using testing::LoopbackOptions;
using testing::PostAndWait;
using testing::ReadOp;
using testing::WriteOp;

constexpr size_t kMem = 1u << 16;

// Waits (bounded) until `counter` has exactly `pending` ops left.
bool WaitForPending(const CompletionCounter& counter, uint32_t pending) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (counter.pending() != pending) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class FaultyTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto& m : mem_) m.reset(new uint8_t[kMem]());
    auto inner = CreateTcpTransport(LoopbackOptions(0, 2, absl::Seconds(20)));
    ASSERT_TRUE(inner.ok()) << inner.status();
    auto faulty = std::make_unique<FaultyTransport>(std::move(*inner));
    faulty_ = faulty.get();
    auto plain = CreateTcpTransport(LoopbackOptions(1, 2, absl::Seconds(20)));
    ASSERT_TRUE(plain.ok()) << plain.status();
    t_[0] = std::move(faulty);
    t_[1] = std::move(*plain);
    std::vector<EndpointBlob> blobs = {t_[0]->LocalEndpoint(), t_[1]->LocalEndpoint()};
    for (int r = 0; r < 2; ++r) {
      ASSERT_TRUE(t_[r]->Connect(blobs).ok());
      auto reg = t_[r]->Register(mem_[r].get(), kMem, kRemoteAll);
      ASSERT_TRUE(reg.ok()) << reg.status();
      region_[r] = *reg;
    }
    faulty_->SetPeerFailureHandler([this](int peer, const absl::Status& s) {
      std::lock_guard<std::mutex> l(mu_);
      calls_.emplace_back(peer, std::string(s.message()));
    });
  }

  void TearDown() override {
    for (auto& t : t_) {
      if (t) t->Shutdown(absl::Now() + absl::Seconds(20)).IgnoreError();
    }
  }

  uint64_t RAddr(int r, size_t off) { return Addr(mem_[r].get() + off); }
  RemoteKey Key(int r) { return region_[r].rkey; }

  std::mutex mu_;
  std::vector<std::pair<int, std::string>> calls_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<uint8_t[]> mem_[2];
  Region region_[2];
  std::unique_ptr<Transport> t_[2];
  FaultyTransport* faulty_ = nullptr;
};

TEST_F(FaultyTransportTest, PassThroughByDefault) {
  EXPECT_EQ(faulty_->name(), "faulty(tcp)");
  std::memset(mem_[1].get(), 7, 64);
  std::vector<uint8_t> got(64);
  ASSERT_TRUE(ExecuteFor(*t_[0], {ReadOp(1, got.data(), 64, RAddr(1, 0), Key(1))}).ok());
  EXPECT_EQ(got, std::vector<uint8_t>(64, 7));
  ASSERT_TRUE(t_[0]->Send(1, 4, {1, 2}).ok());
  auto m = t_[1]->Recv(4, 0, absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->payload, (std::vector<uint8_t>{1, 2}));
}

TEST_F(FaultyTransportTest, DropNextTimesOutAndAbandonForgetsTheOps) {
  uint64_t a = 0, b = 0, c = 0;
  faulty_->DropNext(2);
  auto counter = std::make_unique<CompletionCounter>();
  ASSERT_TRUE(t_[0]
                  ->Post({ReadOp(1, &a, 8, RAddr(1, 0), Key(1)), ReadOp(1, &b, 8, RAddr(1, 0), Key(1)),
                          ReadOp(1, &c, 8, RAddr(1, 0), Key(1))},
                         counter.get())
                  .ok());
  EXPECT_EQ(faulty_->dropped_outstanding(), 2u);
  ASSERT_TRUE(WaitForPending(*counter, 2)) << "the op that was not dropped did not complete";
  absl::Status s = t_[0]->Wait(counter.get(), absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("held by the fault injector (to rank 1)"));
  EXPECT_EQ(counter->pending(), 2u);
  EXPECT_EQ(faulty_->dropped_outstanding(), 0u) << "Wait's Abandon must forget dropped ops";
  counter.reset();
  // Shutdown must not complete the abandoned ops (ASan: use after free).
  ASSERT_TRUE(t_[0]->Shutdown(absl::Now() + absl::Seconds(20)).ok());
}

TEST_F(FaultyTransportTest, ShutdownFlushesDroppedOps) {
  uint64_t a = 0;
  faulty_->DropNext(1);
  CompletionCounter counter;
  ASSERT_TRUE(t_[0]->Post({ReadOp(1, &a, 8, RAddr(1, 0), Key(1), 3)}, &counter).ok());
  EXPECT_FALSE(counter.done());
  ASSERT_TRUE(t_[0]->Shutdown(absl::Now() + absl::Seconds(20)).ok());
  EXPECT_TRUE(counter.done());
  EXPECT_EQ(counter.first_error(), CompletionCode::kFlushed);
  EXPECT_EQ(counter.error_wr_id(), 3u);
}

TEST_F(FaultyTransportTest, FailNthFailsExactlyThatOpWithoutExecutingIt) {
  const uint8_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  faulty_->FailNth(2, CompletionCode::kRemoteAccessError);
  CompletionCounter counter;
  absl::Status s = PostAndWait(*t_[0],
                               {WriteOp(1, ones, 8, RAddr(1, 0), Key(1), 1),
                                WriteOp(1, ones, 8, RAddr(1, 8), Key(1), 2),
                                WriteOp(1, ones, 8, RAddr(1, 16), Key(1), 3)},
                               &counter);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(counter.first_error(), CompletionCode::kRemoteAccessError);
  EXPECT_EQ(counter.error_wr_id(), 2u);
  EXPECT_EQ(mem_[1][0], 1);
  EXPECT_EQ(mem_[1][8], 0) << "the failed op was executed";
  EXPECT_EQ(mem_[1][16], 1);
  // Only once.
  EXPECT_TRUE(ExecuteFor(*t_[0], {WriteOp(1, ones, 8, RAddr(1, 8), Key(1))}).ok());
  EXPECT_EQ(mem_[1][8], 1);
}

TEST_F(FaultyTransportTest, DelayPostponesOps) {
  faulty_->Delay(absl::Milliseconds(150));
  uint64_t v = 0;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(ExecuteFor(*t_[0], {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}).ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  faulty_->ClearFaults();
  CompletionCounter counter;
  ASSERT_TRUE(t_[0]->Post({ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}, &counter).ok());
  EXPECT_EQ(faulty_->delayed_outstanding(), 0u) << "still delayed after ClearFaults";
  ASSERT_TRUE(t_[0]->Wait(&counter, absl::Now() + absl::Seconds(20)).ok());
}

TEST_F(FaultyTransportTest, AbandonedDelayedOpNeverTouchesItsBuffer) {
  std::memset(mem_[1].get(), 0x22, 4096);
  faulty_->Delay(absl::Milliseconds(200));
  std::vector<uint8_t> late(4096, 0xcd);
  auto counter = std::make_unique<CompletionCounter>();
  ASSERT_TRUE(t_[0]->Post({ReadOp(1, late.data(), 4096, RAddr(1, 0), Key(1))}, counter.get()).ok());
  absl::Status s = t_[0]->Wait(counter.get(), absl::Now() + absl::Milliseconds(30));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(faulty_->delayed_outstanding(), 0u);
  counter.reset();
  absl::SleepFor(absl::Milliseconds(300));  // past the delay
  EXPECT_EQ(late, std::vector<uint8_t>(4096, 0xcd));
}

TEST_F(FaultyTransportTest, AbandonWhileTheDelayedOpIsInFlight) {
  // The helper thread has forwarded the op, but the target hangs: Abandon
  // must reach into the inner transport too.
  uint64_t warm = 0;
  ASSERT_TRUE(ExecuteFor(*t_[0], {ReadOp(1, &warm, 8, RAddr(1, 0), Key(1))}).ok());
  ASSERT_TRUE(TcpPauseProgressForTesting(t_[1].get(), true).ok());
  faulty_->Delay(absl::Milliseconds(1));
  std::memset(mem_[1].get(), 0x22, 4096);
  std::vector<uint8_t> late(4096, 0xcd);
  auto counter = std::make_unique<CompletionCounter>();
  ASSERT_TRUE(t_[0]->Post({ReadOp(1, late.data(), 4096, RAddr(1, 0), Key(1))}, counter.get()).ok());
  absl::SleepFor(absl::Milliseconds(50));  // forwarded by now
  EXPECT_EQ(faulty_->delayed_outstanding(), 1u);
  absl::Status s = t_[0]->Wait(counter.get(), absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(faulty_->delayed_outstanding(), 0u);
  counter.reset();
  faulty_->ClearFaults();
  ASSERT_TRUE(TcpPauseProgressForTesting(t_[1].get(), false).ok());
  std::vector<uint8_t> fresh(4096, 0);
  ASSERT_TRUE(ExecuteFor(*t_[0], {ReadOp(1, fresh.data(), 4096, RAddr(1, 0), Key(1))}).ok());
  EXPECT_EQ(fresh, std::vector<uint8_t>(4096, 0x22));
  EXPECT_EQ(late, std::vector<uint8_t>(4096, 0xcd)) << "late reply written into an abandoned buffer";
}

TEST_F(FaultyTransportTest, KillPeerFailsEverythingAndReportsOnce) {
  faulty_->KillPeer(1);
  faulty_->KillPeer(1);
  {
    std::lock_guard<std::mutex> l(mu_);
    ASSERT_EQ(calls_.size(), 1u);
    EXPECT_EQ(calls_[0].first, 1);
    EXPECT_THAT(calls_[0].second, HasSubstr("rank 1"));
  }
  uint64_t v = 0;
  CompletionCounter counter;
  absl::Status s = PostAndWait(*t_[0], {ReadOp(1, &v, 8, RAddr(1, 0), Key(1), 6)}, &counter);
  EXPECT_EQ(counter.first_error(), CompletionCode::kPeerUnreachable);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
  EXPECT_EQ(t_[0]->Send(1, 1, {}).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(t_[0]->Recv(1, 1, absl::Now() + absl::Seconds(1)).status().code(),
            absl::StatusCode::kUnavailable);
  // Messages from the dead rank are not delivered to kAnyPeer either.
  ASSERT_TRUE(t_[1]->Send(0, 2, {9}).ok());
  EXPECT_EQ(t_[0]->Recv(2, kAnyPeer, absl::Now() + absl::Milliseconds(100)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // Self still works.
  EXPECT_TRUE(ExecuteFor(*t_[0], {ReadOp(0, &v, 8, RAddr(0, 0), Key(0))}).ok());
}

TEST_F(FaultyTransportTest, InvalidOpsAreRefusedWithoutConsumingFaults) {
  faulty_->DropNext(1);
  uint64_t v = 0;
  CompletionCounter counter;
  EXPECT_EQ(t_[0]->Post({ReadOp(5, &v, 8, RAddr(1, 0), Key(1))}, &counter).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(counter.pending(), 0u);
  ASSERT_TRUE(t_[0]->Post({ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}, &counter).ok());
  EXPECT_EQ(faulty_->dropped_outstanding(), 1u) << "the drop was spent on the refused op";
  t_[0]->Abandon(&counter);
}

}  // namespace
}  // namespace transport
}  // namespace gasp

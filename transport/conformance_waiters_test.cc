// The transport conformance suite, waiting threads: a thread that waits for
// replies or for a message may read its connection itself (the tcp
// backend's direct reads), so these tests mix waiters of every kind on the
// same connections, under each GASP_WAIT_MODE, and end the peer or the
// transport under a blocked waiter.
#include <atomic>
#include <thread>
#include <vector>

#include "base/wait.h"
#include "transport/conformance_fixture.h"

namespace gasp {
namespace transport {
namespace conformance {
namespace {

std::vector<uint8_t> Pattern(int seed, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return v;
}

}  // namespace

// Rank 0's threads READ, WRITE and FETCH_ADD at rank 1 (all waiting for
// replies on one connection, so some read it and the others are served by
// whoever does), while rank 1's threads wait for messages from rank 0 and
// READ rank 0 (so rank 1's side of the same pair of connections has
// readers too). Every byte and every add is checked, in each wait mode.
TEST_P(ConformanceTest, WaitersOfEveryKindShareOneConnection) {
  WarmUp();
  for (WaitMode mode : {WaitMode::kAdaptive, WaitMode::kBlock, WaitMode::kPoll}) {
    SCOPED_TRACE(static_cast<int>(mode));
    WaitPolicy policy(mode);
    constexpr int kThreads = 3;
    constexpr int kIters = 150;
    constexpr uint32_t kTag = 77;
    constexpr size_t kSlot = 8192;  // per thread, at rank 1 and at rank 0
    uint64_t* counter = reinterpret_cast<uint64_t*>(Mem(1));
    *counter = 0;
    for (int t = 0; t < kThreads; ++t) {
      std::vector<uint8_t> p = Pattern(t, kSlot);
      std::memcpy(Mem(0) + 4096 + t * kSlot, p.data(), kSlot);
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {  // rank 0: one-sided ops at rank 1
        const size_t off = 4096 + t * kSlot;
        for (int i = 0; i < kIters; ++i) {
          std::vector<uint8_t> out = Pattern(t * 1000 + i, 4096 + 8 * (i % 7));
          std::vector<uint8_t> back(out.size());
          uint64_t old = 0;
          if (!ExecuteFor(T(0), {WriteOp(1, out.data(), out.size(), RAddr(1, off), Key(1))}).ok() ||
              !ExecuteFor(T(0), {ReadOp(1, back.data(), back.size(), RAddr(1, off), Key(1))}).ok() ||
              !ExecuteFor(T(0), {FetchAddOp(1, &old, RAddr(1, 0), Key(1), 1)}).ok() ||
              back != out) {
            failures.fetch_add(1);
          }
        }
        if (!T(0).Send(1, kTag, {static_cast<uint8_t>(t)}).ok()) failures.fetch_add(1);
      });
      threads.emplace_back([&, t] {  // rank 1: a message from rank 0, and READs of rank 0
        const size_t off = 4096 + t * kSlot;
        std::vector<uint8_t> back(kSlot);
        for (int i = 0; i < kIters / 3; ++i) {
          if (!ExecuteFor(T(1), {ReadOp(0, back.data(), kSlot, RAddr(0, off), Key(0))}).ok() ||
              back != Pattern(t, kSlot)) {
            failures.fetch_add(1);
          }
        }
        absl::StatusOr<Message> m = T(1).Recv(kTag, 0, absl::Now() + absl::Seconds(60));
        if (!m.ok() || m->payload.size() != 1) failures.fetch_add(1);
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(__atomic_load_n(counter, __ATOMIC_SEQ_CST), uint64_t{kThreads} * kIters);
  }
}

// Completions are not tied to the thread that posted: ops posted on one
// thread and waited for on another, and two posts in flight on one thread
// waited for in the opposite order, all complete (the tcp backend's direct
// reads follow the posting thread's latest counter; everything else must
// still be read by someone).
TEST_P(ConformanceTest, WaitsOnOtherThreadsAndOutOfOrderComplete) {
  WarmUp();
  for (WaitMode mode : {WaitMode::kAdaptive, WaitMode::kBlock}) {
    WaitPolicy policy(mode);
    for (int i = 0; i < 20; ++i) {
      uint64_t a = 0, b = 0;
      CompletionCounter first, second;
      ASSERT_TRUE(T(0).Post({FetchAddOp(1, &a, RAddr(1, 64), Key(1), 1)}, &first).ok());
      ASSERT_TRUE(T(0).Post({FetchAddOp(2, &b, RAddr(2, 64), Key(2), 1)}, &second).ok());
      ASSERT_TRUE(T(0).Wait(&first, absl::Now() + absl::Seconds(20)).ok());
      ASSERT_TRUE(T(0).Wait(&second, absl::Now() + absl::Seconds(20)).ok());
      EXPECT_EQ(a, uint64_t(i));
      EXPECT_EQ(b, uint64_t(i));
      CompletionCounter other;
      ASSERT_TRUE(T(0).Post({ReadOp(1, &a, 8, RAddr(1, 64), Key(1))}, &other).ok());
      absl::Status s;
      std::thread([&] { s = T(0).Wait(&other, absl::Now() + absl::Seconds(20)); }).join();
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(a, uint64_t(i + 1));
    }
    std::memset(Mem(1) + 64, 0, 8);
    std::memset(Mem(2) + 64, 0, 8);
  }
}

// A thread may poll a counter with Poll() instead of calling Wait: its ops
// complete (the tcp backend parks an idle outgoing connection on which the
// peer sends no messages, watched only for its end; Poll must have its
// replies read again). Checked on connections that a finished Execute left
// idle, in each wait mode: rank 0's to rank 1, which rank 1's messages
// share, and rank 2's to rank 1, which is parked once rank 1's messages to
// rank 2 came on rank 1's own connection (the lower rank's).
TEST_P(ConformanceTest, ACounterPolledWithPollCompletes) {
  WarmUp();
  ASSERT_TRUE(T(1).Send(2, 97, {1}).ok());
  ASSERT_TRUE(T(1).Send(0, 97, {1}).ok());
  ASSERT_TRUE(T(2).Recv(97, 1, absl::Now() + absl::Seconds(20)).ok());
  ASSERT_TRUE(T(0).Recv(97, 1, absl::Now() + absl::Seconds(20)).ok());
  for (WaitMode mode : {WaitMode::kAdaptive, WaitMode::kBlock, WaitMode::kPoll}) {
    SCOPED_TRACE(static_cast<int>(mode));
    WaitPolicy policy(mode);
    for (int from : {0, 2}) {
      for (int i = 0; i < 5; ++i) {
        uint64_t old = 0, seen = 0;
        ASSERT_TRUE(ExecuteFor(T(from), {ReadOp(1, &seen, 8, RAddr(1, 128), Key(1))}).ok());
        CompletionCounter c;
        ASSERT_TRUE(T(from).Post({FetchAddOp(1, &old, RAddr(1, 128), Key(1), 1)}, &c).ok());
        const absl::Time deadline = absl::Now() + absl::Seconds(10);
        while (!c.done() && absl::Now() < deadline) {
          T(from).Poll();
          std::this_thread::yield();
        }
        EXPECT_TRUE(c.done()) << "a polled op of rank " << from << " did not complete within 10 s";
        ASSERT_TRUE(T(from).Wait(&c, absl::Now() + absl::Seconds(20)).ok());
        EXPECT_EQ(old, seen);
      }
    }
  }
  std::memset(Mem(1) + 128, 0, 8);
}

// A thread blocked in Recv for a message from rank 0 does not stop rank 1
// from serving rank 0's requests on that very connection.
TEST_P(ConformanceTest, ABlockedRecvStillServesThePeersRequests) {
  WarmUp();
  for (WaitMode mode : {WaitMode::kAdaptive, WaitMode::kBlock}) {
    WaitPolicy policy(mode);
    std::atomic<bool> got{false};
    std::thread receiver([&] {
      absl::StatusOr<Message> m = T(1).Recv(91, 0, absl::Now() + absl::Seconds(60));
      got.store(m.ok());
    });
    absl::SleepFor(absl::Milliseconds(50));  // let it block
    const std::vector<uint8_t> data = Pattern(5, 4096);
    std::vector<uint8_t> back(4096);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(ExecuteFor(T(0), {WriteOp(1, data.data(), 4096, RAddr(1, 8192), Key(1))}).ok());
      ASSERT_TRUE(ExecuteFor(T(0), {ReadOp(1, back.data(), 4096, RAddr(1, 8192), Key(1))}).ok());
      ASSERT_EQ(back, data);
    }
    EXPECT_FALSE(got.load());
    ASSERT_TRUE(T(0).Send(1, 91, {1}).ok());
    receiver.join();
    EXPECT_TRUE(got.load());
  }
}

// A waiter blocked on a peer that dies returns with the peer named, well
// before its deadline: a Recv from it and a Wait for its reply.
TEST_P(ConformanceTest, BlockedWaitersLearnOfPeerDeath) {
  WarmUp();
  if (!testing::PauseForTest(&T(2), true).ok()) GTEST_SKIP() << "backend has no pause hook";
  WaitPolicy policy(WaitMode::kBlock);
  absl::Status recv_status;
  std::thread receiver([&] {
    recv_status = T(0).Recv(93, 2, absl::Now() + absl::Seconds(60)).status();
  });
  uint64_t v = 0;
  CompletionCounter outstanding;
  ASSERT_TRUE(T(1).Post({ReadOp(2, &v, 8, RAddr(2, 0), Key(2))}, &outstanding).ok());
  absl::Status wait_status;
  std::thread waiter([&] {
    wait_status = T(1).Wait(&outstanding, absl::Now() + absl::Seconds(60));
  });
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time start = absl::Now();
  ASSERT_TRUE(testing::CrashForTest(&T(2)).ok());
  receiver.join();
  waiter.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(recv_status.code(), absl::StatusCode::kUnavailable) << recv_status;
  EXPECT_THAT(std::string(recv_status.message()), HasSubstr("rank 2"));
  EXPECT_EQ(wait_status.code(), absl::StatusCode::kUnavailable) << wait_status;
  // The survivors go on.
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}), CompletionCode::kSuccess);
}

// Messages a rank sent before it shut down are all received, whether the
// receiver was already waiting or comes later, in every wait mode: the
// goodbye on one connection does not overtake messages on the other.
TEST_P(ConformanceTest, MessagesSentBeforeShutdownAreDelivered) {
  WarmUp();
  for (WaitMode mode : {WaitMode::kAdaptive, WaitMode::kBlock, WaitMode::kPoll}) {
    SCOPED_TRACE(static_cast<int>(mode));
    WaitPolicy policy(mode);
    constexpr int kCount = 20;
    const uint32_t tag = 100 + static_cast<uint32_t>(mode);
    std::vector<int> got;
    std::thread receiver([&] {  // waiting before anything is sent
      for (int i = 0; i < kCount; ++i) {
        absl::StatusOr<Message> m = T(0).Recv(tag, 2, absl::Now() + absl::Seconds(30));
        if (!m.ok() || m->payload.size() != 1) break;
        got.push_back(m->payload[0]);
      }
    });
    absl::SleepFor(absl::Milliseconds(20));
    for (int i = 0; i < kCount; ++i) {
      ASSERT_TRUE(T(2).Send(0, tag, {static_cast<uint8_t>(i)}).ok());
      ASSERT_TRUE(T(2).Send(1, tag, {static_cast<uint8_t>(i)}).ok());
    }
    if (mode == WaitMode::kPoll) {
      ASSERT_TRUE(T(2).Shutdown(absl::Now() + absl::Seconds(10)).ok());
    }
    receiver.join();
    ASSERT_EQ(got.size(), size_t{kCount});
    for (int i = 0; i < kCount; ++i) EXPECT_EQ(got[i], i);
    for (int i = 0; i < kCount; ++i) {  // rank 1 receives only now
      absl::StatusOr<Message> m = T(1).Recv(tag, 2, absl::Now() + absl::Seconds(30));
      ASSERT_TRUE(m.ok()) << m.status();
      EXPECT_EQ(m->payload, std::vector<uint8_t>{static_cast<uint8_t>(i)});
    }
  }
  // After its goodbye, a Recv from rank 2 fails at once.
  const absl::Time start = absl::Now();
  EXPECT_EQ(T(0).Recv(7, 2, absl::Now() + absl::Seconds(30)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// Shutdown while another thread is blocked in Recv: the Recv returns, the
// shutdown completes, and nothing is reported as a failure.
TEST_P(ConformanceTest, ShutdownReleasesABlockedRecv) {
  WarmUp();
  WaitPolicy policy(WaitMode::kBlock);
  absl::Status recv_status;
  std::thread receiver([&] {
    recv_status = T(0).Recv(95, 1, absl::Now() + absl::Seconds(60)).status();
  });
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(T(0).Shutdown(absl::Now() + absl::Seconds(10)).ok());
  receiver.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(recv_status.ok());
  EXPECT_NE(recv_status.code(), absl::StatusCode::kDeadlineExceeded) << recv_status;
  EXPECT_TRUE(failures_[0].calls().empty());
}

}  // namespace conformance
}  // namespace transport
}  // namespace gasp

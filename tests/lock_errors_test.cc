// The error paths of global locks in a single-rank job (threads of one rank
// queue like remote ranks): a thread locking twice, unlocks by threads that
// do not hold the lock, and a wait past GASP_TIMEOUT, whose error names the
// thread it queued behind and the holder. The public API ends the job on
// these errors; this test calls the runtime's Sync to see them. Also the C
// API's locks (gasp_c.h) on the queue.
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gasp/gasp.h"
#include "gasp/gasp_c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/runtime_internal.h"

namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr int kTimeoutSeconds = 2;

class LockErrorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gasp::InitOptions o;
    o.settings = {{"GASP_SIZE", "1G"},
                  {"GASP_HEAP_SIZE", "64M"},
                  {"GASP_BOOT", "single"},
                  {"GASP_TIMEOUT", std::to_string(kTimeoutSeconds) + "s"},
                  {"GASP_LOCK_NODES", "8"}};
    auto rt = gasp::Init(nullptr, nullptr, o);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    initialized_ = true;
  }
  static void TearDownTestSuite() {
    if (initialized_) {
      EXPECT_EQ(gasp::Runtime().Finalize(), 0);
    }
  }

  static uint64_t NewLock() { return reinterpret_cast<uint64_t>(gasp::CoNewLock().word()); }
  static gasp::consistency::Sync* S() { return gasp::internal::GetSync(); }
  static uint64_t Tail(uint64_t lock) {
    return gasp::AtomicLoad(reinterpret_cast<uint64_t*>(lock), std::memory_order_relaxed);
  }

  static bool initialized_;
};
bool LockErrorsTest::initialized_ = false;

// Another thread of this rank that takes `lock` and holds it until
// destroyed. Its unlock may hand the lock to a waiter that gave up.
class OtherThreadHolds {
 public:
  explicit OtherThreadHolds(uint64_t lock) {
    thread_ = gasp::StartThread([this, lock] {
      EXPECT_TRUE(gasp::internal::GetSync()->Lock(lock).ok());
      tid_ = static_cast<uint64_t>(gettid());
      while (!release_) absl::SleepFor(absl::Milliseconds(1));
      EXPECT_TRUE(gasp::internal::GetSync()->Unlock(lock).ok());
    });
    while (tid_ == 0) absl::SleepFor(absl::Milliseconds(1));
  }
  ~OtherThreadHolds() {
    release_ = true;
    thread_.join();
  }
  std::string tid() const { return std::to_string(tid_.load()); }

 private:
  std::atomic<uint64_t> tid_{0};
  std::atomic<bool> release_{false};
  std::thread thread_;
};

TEST_F(LockErrorsTest, LockTwiceIsAClearError) {
  const uint64_t lock = NewLock();
  ASSERT_TRUE(S()->Lock(lock).ok());
  const absl::Status s = S()->Lock(lock);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("already held by this thread (locks are not "
                                                  "recursive)"));
  auto again = S()->TryLock(lock);  // try_lock by the holder: false, no error
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_TRUE(S()->Unlock(lock).ok());
  EXPECT_EQ(Tail(lock), 0u);  // free again
}

TEST_F(LockErrorsTest, UnlockOfAFreeLock) {
  const uint64_t lock = NewLock();
  const absl::Status s = S()->Unlock(lock);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()),
              MatchesRegex("unlock of global lock 0x[0-9a-f]+ by thread [0-9]+ of rank 0, which "
                           "does not hold it: it is not held"));
}

TEST_F(LockErrorsTest, UnlockByAnotherThreadNamesTheHolder) {
  const uint64_t lock = NewLock();
  {
    OtherThreadHolds holder(lock);
    const absl::Status s = S()->Unlock(lock);
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("which does not hold it: it is held by thread " + holder.tid() +
                          " of this rank"));
  }
  EXPECT_EQ(Tail(lock), 0u);
}

TEST_F(LockErrorsTest, TimeoutNamesThePredecessorAndTheHolder) {
  const uint64_t lock = NewLock();
  OtherThreadHolds holder(lock);
  const absl::Time start = absl::Now();
  const absl::Status s = S()->Lock(lock);
  const absl::Duration waited = absl::Now() - start;
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_GE(waited, absl::Seconds(kTimeoutSeconds));
  EXPECT_LT(waited, absl::Seconds(kTimeoutSeconds + 5));
  EXPECT_THAT(std::string(s.message()),
              MatchesRegex("waiting for global lock 0x[0-9a-f]+: gave up after GASP_TIMEOUT=2s: "
                           "queued behind thread " +
                           holder.tid() + " of this rank, which holds it and answers"));
}

TEST_F(LockErrorsTest, AWaiterFurtherBackIsToldWhoHoldsTheLock) {
  const uint64_t lock = NewLock();
  ASSERT_TRUE(S()->Lock(lock).ok());  // this thread holds it
  const uint64_t mine = Tail(lock);
  std::atomic<bool> got{false};
  std::thread waiter = gasp::StartThread([&] {
    EXPECT_TRUE(S()->Lock(lock).ok());
    got = true;
    EXPECT_TRUE(S()->Unlock(lock).ok());
  });
  // Once the waiter has swapped itself into the tail, describe the queue as
  // a third thread behind it would see it.
  uint64_t tail = mine;
  for (int i = 0; i < 5000 && tail == mine; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
    tail = Tail(lock);
  }
  ASSERT_NE(tail, mine);
  const std::string d = S()->queue_locks()->DescribeWait(lock, tail);
  EXPECT_THAT(d, MatchesRegex("queued behind thread [0-9]+ of this rank, which waits too; thread " +
                              std::to_string(gettid()) +
                              " of this rank \\(2 ahead\\) holds it and answers"));
  EXPECT_FALSE(got);  // FIFO: the waiter has not overtaken the holder
  EXPECT_TRUE(S()->Unlock(lock).ok());
  waiter.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(Tail(lock), 0u);
}

TEST_F(LockErrorsTest, TheCApiQueuesToo) {
  void* handles[2] = {gasp_lock_new_all(), gasp_lock_new()};  // collective; this rank's heap
  for (void* lock : handles) {
    EXPECT_EQ(gasp_trylock(lock), 1);
    EXPECT_EQ(gasp_trylock(lock), 0);  // held by this thread
    EXPECT_NE(Tail(reinterpret_cast<uint64_t>(lock)), 0u);
    gasp_unlock(lock);
    EXPECT_EQ(Tail(reinterpret_cast<uint64_t>(lock)), 0u);
    gasp_lock(lock);
    {
      // Another thread's trylock fails while this one holds it.
      std::thread other = gasp::StartThread([&] { EXPECT_EQ(gasp_trylock(lock), 0); });
      other.join();
    }
    gasp_unlock(lock);
  }
}

TEST_F(LockErrorsTest, RunningOutOfQueueNodesNamesTheSetting) {
  // GASP_LOCK_NODES=8: one thread holding 8 locks uses every node; the
  // nodes of the timed-out waiter above stay in their queues.
  std::vector<uint64_t> held;
  absl::Status s;
  for (int i = 0; i < 16; ++i) {
    const uint64_t lock = NewLock();
    s = S()->Lock(lock);
    if (!s.ok()) break;
    held.push_back(lock);
  }
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("raise GASP_LOCK_NODES"));
  EXPECT_LE(held.size(), 8u);
  for (uint64_t lock : held) EXPECT_TRUE(S()->Unlock(lock).ok());
}

}  // namespace

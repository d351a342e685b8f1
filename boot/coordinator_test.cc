// In-process tests of the coordinator and its clients: N client threads
// against one Coordinator on 127.0.0.1, plus raw sockets for misbehaving
// peers.
#include "boot/coordinator.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boot/coordinator_wire.h"
#include "boot/deadline_wait.h"
#include "boot/net.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace boot {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

absl::Time In(absl::Duration d) { return absl::Now() + d; }

std::unique_ptr<Coordinator> StartCoordinator(int size, CoordinatorOptions o = {}) {
  o.size = size;
  if (o.owner == "the coordinator") o.owner = "test";
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Start(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

CoordinatorClientOptions ClientOptions(const Coordinator& c, int rank, int size) {
  CoordinatorClientOptions o;
  o.coordinator = c.address();
  o.rank = rank;
  o.size = size;
  o.job_id = "job";
  o.host = "testhost";
  o.pid = 1000 + rank;
  o.timeout = absl::Seconds(2);
  o.expected_owner = "gasprun";
  return o;
}

std::unique_ptr<CoordinatorClient> ConnectOrDie(const Coordinator& c, int rank, int size) {
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> cl =
      CoordinatorClient::Connect(ClientOptions(c, rank, size), In(absl::Seconds(10)));
  EXPECT_TRUE(cl.ok()) << cl.status();
  if (!cl.ok()) return nullptr;
  // Tests tear clients down without FINALIZE: the default handler would
  // _exit the test when the others hear about it.
  (*cl)->SetJobFailureHandler([](int, const std::string&) {});
  return std::move(*cl);
}

// Records failure-handler calls. The handler shares the record, so that it
// may outlive this object (clients are destroyed after it in some tests).
class Failures {
 public:
  JobFailureHandler Handler() {
    std::shared_ptr<Inner> in = inner_;
    return [in](int rank, const std::string& why) {
      std::unique_lock<std::mutex> lock(in->mu);
      in->calls.emplace_back(rank, why);
      in->cv.notify_all();
    };
  }
  // Waits for the first call.
  bool Wait(absl::Duration d, int* rank, std::string* why) {
    Inner* in = inner_.get();
    std::unique_lock<std::mutex> lock(in->mu);
    if (!WaitUntil(in->cv, lock, absl::Now() + d, [in] { return !in->calls.empty(); })) {
      return false;
    }
    *rank = in->calls.front().first;
    *why = in->calls.front().second;
    return true;
  }
  size_t count() {
    std::unique_lock<std::mutex> lock(inner_->mu);
    return inner_->calls.size();
  }

 private:
  struct Inner {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<int, std::string>> calls ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<Inner> inner_ = std::make_shared<Inner>();
};

// A raw TCP peer that speaks (or breaks) the protocol by hand.
class RawPeer {
 public:
  explicit RawPeer(const Coordinator& c) {
    absl::StatusOr<sockaddr_in> addr = ResolveIPv4("127.0.0.1", c.port());
    EXPECT_TRUE(addr.ok());
    absl::StatusOr<UniqueFd> fd = ConnectOnce(*addr, In(absl::Seconds(5)));
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (fd.ok()) fd_ = std::move(*fd);
  }
  void Send(absl::string_view bytes) {
    ASSERT_TRUE(SendAll(fd_.get(), bytes, In(absl::Seconds(5))).ok());
  }
  void SendFrame(wire::MsgType t, const std::string& payload,
                 uint16_t version = wire::kProtocolVersion) {
    Send(wire::EncodeFrame(static_cast<uint16_t>(t), payload, version));
  }
  // Next frame, or nullopt at EOF / timeout.
  std::optional<wire::Frame> Read(absl::Duration timeout = absl::Seconds(5)) {
    absl::Time deadline = In(timeout);
    char buf[4096];
    for (;;) {
      size_t consumed = 0;
      auto f = wire::DecodeFrame(in_, wire::kMaxServerPayload, &consumed);
      if (!f.ok()) return std::nullopt;
      if (f->has_value()) {
        in_.erase(0, consumed);
        return **f;
      }
      absl::StatusOr<short> rev = PollOne(fd_.get(), POLLIN, deadline);
      if (!rev.ok() || *rev == 0) return std::nullopt;
      ssize_t n = recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) return std::nullopt;
      in_.append(buf, static_cast<size_t>(n));
    }
  }
  // True when the coordinator closes the connection within `timeout`.
  bool ClosedWithin(absl::Duration timeout) {
    absl::Time deadline = In(timeout);
    char buf[4096];
    for (;;) {
      absl::StatusOr<short> rev = PollOne(fd_.get(), POLLIN, deadline);
      if (!rev.ok() || *rev == 0) return false;
      ssize_t n = recv(fd_.get(), buf, sizeof(buf), 0);
      if (n == 0) return true;
      if (n < 0 && errno != EAGAIN && errno != EINTR) return true;  // reset counts too
    }
  }
  void Close() { fd_.reset(); }

 private:
  UniqueFd fd_;
  std::string in_;
};

wire::Hello MakeHello(int rank, int size) {
  wire::Hello h;
  h.set_protocol_version(wire::kProtocolVersion);
  h.set_rank(rank);
  h.set_size(size);
  h.set_pid(4000 + rank);
  h.set_timeout_ms(2000);
  h.set_job_id("job");
  h.set_host("rawhost");
  return h;
}

std::string ErrorMessage(const std::optional<wire::Frame>& f) {
  if (!f.has_value()) return "<no frame>";
  if (f->type != static_cast<uint16_t>(wire::MsgType::kError)) {
    return absl::StrCat("<", wire::MsgTypeName(f->type), ">");
  }
  auto e = wire::DecodeError(f->payload);
  return e.ok() ? e->message : "<bad ERROR>";
}

TEST(CoordinatorTest, AllgatherOrderingAndBarrier) {
  constexpr int kRanks = 4;
  auto coord = StartCoordinator(kRanks);
  ASSERT_NE(coord, nullptr);
  std::vector<std::string> errors(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      auto cl = ConnectOrDie(*coord, r, kRanks);
      if (!cl) return;
      EXPECT_EQ(cl->LocalAddress(), "127.0.0.1");
      EXPECT_EQ(cl->owner(), "test");
      for (int round = 0; round < 3; ++round) {
        // Blobs of different lengths per rank are delivered as they are.
        std::string mine = absl::StrCat("rank", r, "-round", round, std::string(r, '+'));
        auto all = cl->Allgather(mine, In(absl::Seconds(10)));
        if (!all.ok()) {
          errors[r] = std::string(all.status().message());
          return;
        }
        EXPECT_EQ(all->size(), static_cast<size_t>(kRanks));
        for (int q = 0; q < kRanks && q < static_cast<int>(all->size()); ++q) {
          EXPECT_EQ((*all)[q], absl::StrCat("rank", q, "-round", round, std::string(q, '+')));
        }
      }
      EXPECT_TRUE(cl->Barrier(In(absl::Seconds(10))).ok());
      EXPECT_TRUE(cl->Allgather("", In(absl::Seconds(10))).ok());
      absl::Status f = cl->Finalize(In(absl::Seconds(10)));
      EXPECT_TRUE(f.ok()) << f;
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  EXPECT_TRUE(coord->WaitAllLeft(In(absl::Seconds(5))).ok());
  EXPECT_EQ(coord->FailureReason(), "");
}

TEST(CoordinatorTest, RankThatNeverArrivesIsNamedAtTheDeadline) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto cl = ConnectOrDie(*coord, 0, 2);
  ASSERT_NE(cl, nullptr);
  Failures failures;
  cl->SetJobFailureHandler(failures.Handler());
  absl::Time start = absl::Now();
  auto all = cl->Allgather("x", In(absl::Seconds(1)));
  absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(all.status().message()),
              AllOf(HasSubstr("rank 1 of 2 never arrived at the coordinator"),
                    HasSubstr(coord->address()), HasSubstr("within GASP_TIMEOUT=2s")));
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_EQ(failures.count(), 0u);  // a timeout is an error of the call, not a job failure
}

TEST(CoordinatorTest, ConnectedRankThatSkipsTheCollectiveIsNamed) {
  auto coord = StartCoordinator(3);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 3);
  auto c1 = ConnectOrDie(*coord, 1, 3);
  ASSERT_TRUE(c0 && c1);
  auto all = c0->Allgather("x", In(absl::Milliseconds(500)));
  ASSERT_FALSE(all.ok());
  EXPECT_THAT(std::string(all.status().message()),
              AllOf(HasSubstr("rank 2 of 3 never arrived"),
                    HasSubstr("rank 1 (testhost:1001) of 3 is connected but did not reach "
                              "allgather #1")));
  ASSERT_TRUE(c0->Finalize(In(absl::Seconds(5))).ok());
  ASSERT_TRUE(c1->Finalize(In(absl::Seconds(5))).ok());
}

TEST(CoordinatorTest, VersionMismatchIsRefused) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  {
    RawPeer p(*coord);
    wire::Hello h = MakeHello(1, 2);
    h.set_protocol_version(99);
    p.SendFrame(wire::MsgType::kHello, h.SerializeAsString());
    EXPECT_THAT(ErrorMessage(p.Read()),
                AllOf(HasSubstr("rank 1 (rawhost:4001) speaks coordinator protocol version 99"),
                      HasSubstr("speaks version 3"), HasSubstr("rebuild every rank")));
    EXPECT_TRUE(p.ClosedWithin(absl::Seconds(5)));
  }
  {
    // A newer frame header whose HELLO layout is unknown: still a clear refusal.
    RawPeer p(*coord);
    p.SendFrame(wire::MsgType::kHello, std::string("\x03\x00garbage", 9), 4);
    EXPECT_THAT(ErrorMessage(p.Read()), HasSubstr("speaks coordinator protocol version 4"));
  }
  // The slot was not taken: a good rank 1 still joins.
  auto c1 = ConnectOrDie(*coord, 1, 2);
  EXPECT_NE(c1, nullptr);
}

// A coordinator that knows the job secret (gasprun's) refuses a HELLO
// without its proof or with a forged one, keeps the rank's slot free, and
// admits the rank that proves it.
TEST(CoordinatorTest, HelloMustProveTheJobSecret) {
  const std::string secret(32, 's');
  CoordinatorOptions o;
  o.secret = secret;
  auto coord = StartCoordinator(2, o);
  ASSERT_NE(coord, nullptr);
  for (const char* proof : {"", "forged: 32 bytes of nothing....."}) {
    RawPeer p(*coord);
    wire::Hello h = MakeHello(1, 2);
    h.set_proof(proof);
    p.SendFrame(wire::MsgType::kHello, h.SerializeAsString());
    EXPECT_THAT(ErrorMessage(p.Read()),
                AllOf(HasSubstr("rank 1 (rawhost:4001)"), HasSubstr("is not a process test started"),
                      HasSubstr("job secret")));
    EXPECT_TRUE(p.ClosedWithin(absl::Seconds(5)));
  }
  CoordinatorClientOptions co = ClientOptions(*coord, 1, 2);
  co.secret = secret;
  auto c1 = CoordinatorClient::Connect(co, In(absl::Seconds(10)));
  ASSERT_TRUE(c1.ok()) << c1.status();
  (*c1)->SetJobFailureHandler([](int, const std::string&) {});
}

TEST(CoordinatorTest, DuplicateRankIsRefused) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto first = ConnectOrDie(*coord, 1, 2);
  ASSERT_NE(first, nullptr);
  CoordinatorClientOptions o = ClientOptions(*coord, 1, 2);
  o.pid = 5555;
  auto second = CoordinatorClient::Connect(o, In(absl::Seconds(5)));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(second.status().message()),
              AllOf(HasSubstr("rank 1 is already connected from testhost:1001"),
                    HasSubstr("testhost:5555"), HasSubstr("same rank")));
  // The first one is unaffected.
  Failures failures;
  first->SetJobFailureHandler(failures.Handler());
  auto c0 = ConnectOrDie(*coord, 0, 2);
  ASSERT_NE(c0, nullptr);
  std::thread t([&] { EXPECT_TRUE(c0->Barrier(In(absl::Seconds(5))).ok()); });
  EXPECT_TRUE(first->Barrier(In(absl::Seconds(5))).ok());
  t.join();
  EXPECT_EQ(failures.count(), 0u);
}

TEST(CoordinatorTest, WrongSizeAndWrongJobAreRefused) {
  CoordinatorOptions o;
  o.job_id = "job";
  auto coord = StartCoordinator(2, o);
  ASSERT_NE(coord, nullptr);
  auto bad_size = CoordinatorClient::Connect(ClientOptions(*coord, 0, 3), In(absl::Seconds(5)));
  ASSERT_FALSE(bad_size.ok());
  EXPECT_THAT(std::string(bad_size.status().message()),
              AllOf(HasSubstr("one of 3 ranks"), HasSubstr("job of 2 ranks")));
  CoordinatorClientOptions other = ClientOptions(*coord, 0, 2);
  other.job_id = "other";
  auto bad_job = CoordinatorClient::Connect(other, In(absl::Seconds(5)));
  ASSERT_FALSE(bad_job.ok());
  EXPECT_THAT(std::string(bad_job.status().message()),
              AllOf(HasSubstr("job 'other'"), HasSubstr("serves job 'job'")));
  auto range = CoordinatorClient::Connect(ClientOptions(*coord, 2, 2), In(absl::Seconds(5)));
  EXPECT_FALSE(range.ok());
}

TEST(CoordinatorTest, DroppedConnectionIsBroadcastAsRankDied) {
  auto coord = StartCoordinator(3);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 3);
  auto c1 = ConnectOrDie(*coord, 1, 3);
  auto c2 = ConnectOrDie(*coord, 2, 3);
  ASSERT_TRUE(c0 && c1 && c2);
  Failures f0, f1;
  c0->SetJobFailureHandler(f0.Handler());
  c1->SetJobFailureHandler(f1.Handler());
  // Rank 0 waits in a barrier that rank 2 will never join.
  absl::Status barrier;
  std::thread t([&] { barrier = c0->Barrier(In(absl::Seconds(30))); });
  absl::SleepFor(absl::Milliseconds(100));
  c2.reset();  // no FINALIZE: a crash as far as the coordinator can tell
  int rank;
  std::string why;
  ASSERT_TRUE(f1.Wait(absl::Seconds(5), &rank, &why));
  EXPECT_EQ(rank, 2);
  EXPECT_THAT(why, AllOf(HasSubstr("rank 2 (testhost:1002)"), HasSubstr("without finalizing")));
  ASSERT_TRUE(f0.Wait(absl::Seconds(5), &rank, &why));
  EXPECT_EQ(rank, 2);
  t.join();
  EXPECT_FALSE(barrier.ok());
  EXPECT_THAT(std::string(barrier.message()), HasSubstr("rank 2"));
  EXPECT_THAT(coord->FailureReason(), HasSubstr("rank 2"));
}

TEST(CoordinatorTest, LauncherReportedDeathCarriesTheExitStatus) {
  CoordinatorOptions o;
  o.death_report_delay = absl::Seconds(20);  // only NotifyRankDied can be fast
  auto coord = StartCoordinator(2, o);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  auto c1 = ConnectOrDie(*coord, 1, 2);
  ASSERT_TRUE(c0 && c1);
  Failures f0;
  c0->SetJobFailureHandler(f0.Handler());
  c1.reset();
  absl::SleepFor(absl::Milliseconds(100));
  coord->NotifyRankDied(1, "rank 1 (testhost:1001) was killed by signal 9 (Killed)");
  int rank;
  std::string why;
  ASSERT_TRUE(f0.Wait(absl::Seconds(5), &rank, &why));
  EXPECT_EQ(rank, 1);
  EXPECT_EQ(why, "rank 1 (testhost:1001) was killed by signal 9 (Killed)");
  // A second report of the same death is not broadcast again.
  coord->NotifyRankDied(1, "again");
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(f0.count(), 1u);
}

TEST(CoordinatorTest, DeathOfARankThatNeverConnectedFailsCollectivesAtOnce) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  ASSERT_NE(c0, nullptr);
  Failures f0;
  c0->SetJobFailureHandler(f0.Handler());
  absl::Status s;
  absl::Time start = absl::Now();
  std::thread t([&] { s = c0->Allgather("x", In(absl::Seconds(30))).status(); });
  absl::SleepFor(absl::Milliseconds(100));
  coord->NotifyRankDied(1, "rank 1 (testhost:77) exited with status 3");
  t.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("exited with status 3"));
  int rank;
  std::string why;
  ASSERT_TRUE(f0.Wait(absl::Seconds(5), &rank, &why));
  EXPECT_EQ(rank, 1);
  // Late joiners of a failed job are refused with the reason.
  auto late = CoordinatorClient::Connect(ClientOptions(*coord, 1, 2), In(absl::Seconds(5)));
  ASSERT_FALSE(late.ok());
  EXPECT_THAT(std::string(late.status().message()),
              AllOf(HasSubstr("already failed"), HasSubstr("status 3")));
}

TEST(CoordinatorTest, AbortIsBroadcast) {
  auto coord = StartCoordinator(3);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 3);
  auto c1 = ConnectOrDie(*coord, 1, 3);
  auto c2 = ConnectOrDie(*coord, 2, 3);
  ASSERT_TRUE(c0 && c1 && c2);
  Failures f0, f2;
  c0->SetJobFailureHandler(f0.Handler());
  c2->SetJobFailureHandler(f2.Handler());
  ASSERT_TRUE(c1->SendAbort(3, "input file missing", In(absl::Seconds(5))).ok());
  c1.reset();  // the aborting process exits; that is not a second failure
  for (Failures* f : {&f0, &f2}) {
    int rank;
    std::string why;
    ASSERT_TRUE(f->Wait(absl::Seconds(5), &rank, &why));
    EXPECT_EQ(rank, 1);
    EXPECT_THAT(why, AllOf(HasSubstr("rank 1 (testhost:1001) aborted the job (exit code 3)"),
                           HasSubstr("input file missing")));
  }
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(f0.count(), 1u);
}

TEST(CoordinatorTest, AbortJobFromTheHostingProcess) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  auto c1 = ConnectOrDie(*coord, 1, 2);
  ASSERT_TRUE(c0 && c1);
  Failures f1;
  c1->SetJobFailureHandler(f1.Handler());
  c0->SetJobFailureHandler([](int, const std::string&) {});
  coord->AbortJob(0, 5, "rank 0 gave up", In(absl::Seconds(5)));
  int rank;
  std::string why;
  ASSERT_TRUE(f1.Wait(absl::Seconds(5), &rank, &why));
  EXPECT_EQ(rank, 0);
  EXPECT_THAT(why, HasSubstr("exit code 5"));
}

TEST(CoordinatorTest, MalformedFramesDoNotCrashTheServer) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  {
    RawPeer p(*coord);
    p.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THAT(ErrorMessage(p.Read()), HasSubstr("bad magic"));
    EXPECT_TRUE(p.ClosedWithin(absl::Seconds(5)));
  }
  {
    RawPeer p(*coord);  // a frame announcing 4 GiB
    std::string h = wire::EncodeFrame(static_cast<uint16_t>(wire::MsgType::kHello), "");
    h[8] = h[9] = h[10] = h[11] = '\xff';
    p.Send(h);
    EXPECT_THAT(ErrorMessage(p.Read()), HasSubstr("more than the limit"));
  }
  {
    RawPeer p(*coord);  // truncated HELLO payload
    p.SendFrame(wire::MsgType::kHello, std::string("\x02\x00\x01", 3));
    EXPECT_THAT(ErrorMessage(p.Read()), HasSubstr("malformed HELLO"));
  }
  {
    RawPeer p(*coord);  // not HELLO first
    p.SendFrame(wire::MsgType::kAllgather, "");
    EXPECT_THAT(ErrorMessage(p.Read()), HasSubstr("expected HELLO"));
  }
  {
    RawPeer p(*coord);  // half a header, then gone
    p.Send("GSPC\x01");
    p.Close();
  }
  for (int i = 0; i < 20; ++i) {  // random junk
    RawPeer p(*coord);
    std::string junk;
    for (int k = 0; k < 100; ++k) junk.push_back(static_cast<char>((i * 131 + k * 17) & 0xff));
    p.Send(junk);
  }
  // The job still works.
  auto c0 = ConnectOrDie(*coord, 0, 2);
  auto c1 = ConnectOrDie(*coord, 1, 2);
  ASSERT_TRUE(c0 && c1);
  std::thread t([&] { EXPECT_TRUE(c0->Barrier(In(absl::Seconds(5))).ok()); });
  EXPECT_TRUE(c1->Barrier(In(absl::Seconds(5))).ok());
  t.join();
  EXPECT_EQ(coord->FailureReason(), "");
}

TEST(CoordinatorTest, IdentifiedRankSendingGarbageIsReportedDead) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  ASSERT_NE(c0, nullptr);
  Failures f0;
  c0->SetJobFailureHandler(f0.Handler());
  RawPeer p(*coord);
  p.SendFrame(wire::MsgType::kHello, MakeHello(1, 2).SerializeAsString());
  auto w = p.Read();
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->type, static_cast<uint16_t>(wire::MsgType::kWelcome));
  p.SendFrame(wire::MsgType::kAllgather, "\x01");  // malformed ALLGATHER
  int rank;
  std::string why;
  ASSERT_TRUE(f0.Wait(absl::Seconds(5), &rank, &why));
  EXPECT_EQ(rank, 1);
  EXPECT_THAT(
      why, AllOf(HasSubstr("rank 1 (rawhost:4001)"), HasSubstr("broke the coordinator protocol")));
}

TEST(CoordinatorTest, SilentConnectionIsClosedAfterHelloTimeout) {
  CoordinatorOptions o;
  o.hello_timeout = absl::Milliseconds(200);
  auto coord = StartCoordinator(1, o);
  ASSERT_NE(coord, nullptr);
  RawPeer p(*coord);
  EXPECT_TRUE(p.ClosedWithin(absl::Seconds(5)));
}

TEST(CoordinatorTest, FinalizedRankFailsLaterCollectivesOfOthers) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  auto c1 = ConnectOrDie(*coord, 1, 2);
  ASSERT_TRUE(c0 && c1);
  ASSERT_TRUE(c1->Finalize(In(absl::Seconds(5))).ok());
  absl::Status s = c0->Barrier(In(absl::Seconds(10)));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(s.message()),
      AllOf(HasSubstr("barrier #1"), HasSubstr("rank 1 (testhost:1001) already finalized")));
  EXPECT_FALSE(c1->Barrier(In(absl::Seconds(1))).ok());  // after its own Finalize
}

TEST(CoordinatorTest, MismatchedCollectivesAreNamed) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  auto c1 = ConnectOrDie(*coord, 1, 2);
  ASSERT_TRUE(c0 && c1);
  absl::Status s0;
  std::thread t([&] { s0 = c0->Barrier(In(absl::Seconds(10))); });
  absl::SleepFor(absl::Milliseconds(100));
  absl::Status s1 = c1->Allgather("x", In(absl::Seconds(10))).status();
  t.join();
  EXPECT_EQ(s0.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s1.message()),
              AllOf(HasSubstr("is a barrier on rank 0"), HasSubstr("allgather on rank 1")));
}

TEST(CoordinatorTest, WaitAllLeftNamesTheRanksStillRunning) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  ASSERT_TRUE(c0->Finalize(In(absl::Seconds(5))).ok());
  absl::Status s = coord->WaitAllLeft(In(absl::Milliseconds(200)));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1 of 2 did not finalize"));
}

TEST(CoordinatorTest, ClientRetriesUntilTheCoordinatorListens) {
  int port;
  {
    auto probe = StartCoordinator(1);
    ASSERT_NE(probe, nullptr);
    port = probe->port();
  }
  CoordinatorClientOptions o;
  o.coordinator = absl::StrCat("127.0.0.1:", port);
  o.rank = 0;
  o.size = 1;
  o.job_id = "job";
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> cl;
  std::thread t([&] { cl = CoordinatorClient::Connect(o, In(absl::Seconds(10))); });
  absl::SleepFor(absl::Milliseconds(300));
  CoordinatorOptions co;
  co.port = port;
  auto coord = StartCoordinator(1, co);
  ASSERT_NE(coord, nullptr);
  t.join();
  ASSERT_TRUE(cl.ok()) << cl.status();
  auto all = (*cl)->Allgather("solo", In(absl::Seconds(5)));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0], "solo");
  EXPECT_TRUE((*cl)->Finalize(In(absl::Seconds(5))).ok());
}

TEST(CoordinatorTest, ConnectTimesOutNamingTheSetting) {
  int port;
  {
    auto probe = StartCoordinator(1);
    ASSERT_NE(probe, nullptr);
    port = probe->port();
  }
  CoordinatorClientOptions o;
  o.coordinator = absl::StrCat("127.0.0.1:", port);
  o.rank = 3;
  o.size = 4;
  o.timeout = absl::Milliseconds(300);
  o.expected_owner = "rank 0";
  absl::Time start = absl::Now();
  auto cl = CoordinatorClient::Connect(o, In(absl::Milliseconds(300)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(cl.status().message()),
              AllOf(HasSubstr("rank 3 could not connect"), HasSubstr("GASP_COORDINATOR=127.0.0.1:"),
                    HasSubstr("GASP_TIMEOUT=300ms"), HasSubstr("rank 0 hosts the coordinator")));
}

TEST(CoordinatorTest, PortInUseIsAClearError) {
  auto a = StartCoordinator(1);
  ASSERT_NE(a, nullptr);
  CoordinatorOptions o;
  o.port = a->port();
  o.size = 1;
  auto b = Coordinator::Start(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(b.status().message()),
              AllOf(HasSubstr(absl::StrCat("127.0.0.1:", a->port())), HasSubstr("in use")));
}

TEST(CoordinatorTest, LostCoordinatorIsAJobFailure) {
  auto coord = StartCoordinator(1);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 1);
  ASSERT_NE(c0, nullptr);
  Failures f0;
  c0->SetJobFailureHandler(f0.Handler());
  coord->Stop();
  int rank;
  std::string why;
  ASSERT_TRUE(f0.Wait(absl::Seconds(5), &rank, &why));
  EXPECT_EQ(rank, -1);
  EXPECT_THAT(why, AllOf(HasSubstr("lost the connection to the coordinator"), HasSubstr("test")));
}

TEST(CoordinatorTest, ClientMayBeDestroyedFromItsFailureHandler) {
  auto coord = StartCoordinator(2);
  ASSERT_NE(coord, nullptr);
  auto c0 = ConnectOrDie(*coord, 0, 2);
  auto c1 = ConnectOrDie(*coord, 1, 2);
  ASSERT_TRUE(c0 && c1);
  Failures done;
  JobFailureHandler record = done.Handler();
  CoordinatorClient* raw = c0.release();
  raw->SetJobFailureHandler([raw, record](int rank, const std::string& why) {
    delete raw;  // runs on raw's own monitor thread
    record(rank, why);
  });
  c1.reset();
  int rank;
  std::string why;
  EXPECT_TRUE(done.Wait(absl::Seconds(5), &rank, &why));
}

}  // namespace
}  // namespace boot
}  // namespace gasp

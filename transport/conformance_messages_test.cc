// The transport conformance suite, messages on connections that carry
// both directions: the tcp backend sends a rank's messages to a peer on
// one connection between the two, which may be the one the peer dialed
// (docs/design.md, "Transport"). These tests start from a fresh cluster
// (no connection yet), so the connections appear while messages flow:
// simultaneous first sends, order per sender with one-sided ops and
// several threads in between, a peer that dies or says goodbye while the
// other side reads or sends on the shared connection.
#include <arpa/inet.h>
#include <dirent.h>
#include <linux/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "base/wait.h"
#include "transport/conformance_fixture.h"

namespace gasp {
namespace transport {
namespace conformance {
namespace {

constexpr WaitMode kModes[] = {WaitMode::kAdaptive, WaitMode::kBlock, WaitMode::kPoll};

// A message payload naming its sender thread and its sequence number.
std::vector<uint8_t> Numbered(int thread, int seq) {
  return {static_cast<uint8_t>(thread), static_cast<uint8_t>(seq & 0xff),
          static_cast<uint8_t>(seq >> 8)};
}
int SeqOf(const std::vector<uint8_t>& p) { return p[1] | (p[2] << 8); }

// Established TCP connections whose local end is `port` (the ones a
// listener on that port accepted), from /proc/net/tcp.
int AcceptedConnections(uint16_t port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string slot, local, remote, state;
    f >> slot >> local >> remote >> state;
    const size_t colon = local.find(':');
    if (colon == std::string::npos) continue;
    if (std::stoul(local.substr(colon + 1), nullptr, 16) == port && state == "01") ++n;
  }
  return n;
}

// What this process sent and received (payload bytes, TCP_INFO) on its
// connections to `port`: the ones it dialed to the listener there.
struct DialedTraffic {
  int connections = 0;
  uint64_t sent = 0;
  uint64_t received = 0;
};
DialedTraffic TrafficTo(uint16_t port) {
  DialedTraffic t;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return t;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    if (fd <= 2 || getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != port) {
      continue;
    }
    tcp_info info{};
    socklen_t info_len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len) != 0) continue;
    ++t.connections;
    t.sent += info.tcpi_bytes_acked;
    t.received += info.tcpi_bytes_received;
  }
  closedir(dir);
  return t;
}

uint16_t TcpPort(Transport& t) {
  absl::StatusOr<tcp::TcpEndpoint> e = tcp::DecodeEndpoint(t.LocalEndpoint());
  return e.ok() ? e->port : 0;
}

// Rank `me` echoes `count` messages with `tag` from `peer`.
void EchoN(Transport& t, int peer, uint32_t tag, int count, std::atomic<int>* failures) {
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<Message> m = t.Recv(tag, peer, absl::Now() + absl::Seconds(30));
    if (!m.ok() || !t.Send(peer, tag + 1, m->payload).ok()) {
      failures->fetch_add(1);
      return;
    }
  }
}

}  // namespace

// An echo between two ranks that never spoke travels on one connection:
// the reply goes back on the connection the request came on. The echoing
// rank dials rank 0 too at its first Send (where its one-sided ops would
// go), but sends nothing there beyond its handshake. (tcp only: counts TCP
// connections and their bytes.)
TEST_P(ConformanceTest, AnEchoUsesTheConnectionTheRequestCameOn) {
  if (GetParam() != "tcp") GTEST_SKIP() << "counts TCP connections";
  const uint16_t port0 = TcpPort(T(0)), port1 = TcpPort(T(1));
  ASSERT_NE(port0, 0);
  std::atomic<int> failures{0};
  std::thread echo([&] { EchoN(T(1), 0, 300, 50, &failures); });
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(T(0).Send(1, 300, Numbered(0, i)).ok());
    absl::StatusOr<Message> m = T(0).Recv(301, 1, absl::Now() + absl::Seconds(30));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(SeqOf(m->payload), i);
  }
  echo.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(AcceptedConnections(port1), 1) << "rank 0 dials rank 1 once";
  EXPECT_EQ(AcceptedConnections(port0), 1) << "rank 1 dials rank 0 once";
  const DialedTraffic dialed = TrafficTo(port0);
  EXPECT_EQ(dialed.connections, 1);
  // HELLO and PROOF each way; 50 replies would add 50 frames.
  EXPECT_LE(dialed.sent, 2 * tcp::kFrameHeaderSize) << "rank 1 replied on the connection it dialed";
  EXPECT_LE(dialed.received, 2 * tcp::kFrameHeaderSize);
}

// A rank keeps sending its messages on the connection it chose at its
// first Send, even once the peer has dialed a second one: rank 1's
// messages go on the connection it dialed, and rank 0, whose progress
// thread is paused, gets them by reading that connection (where the first
// came) itself, in order. A rule that moved later messages to the newer
// connection could let them overtake earlier ones; here they would not
// arrive at all. (tcp only: relies on its direct reads.)
TEST_P(ConformanceTest, ASendersMessagesStayOnTheConnectionItChoseFirst) {
  if (GetParam() != "tcp") GTEST_SKIP() << "relies on the tcp backend's direct reads";
  ASSERT_TRUE(T(1).Send(0, 350, Numbered(1, 0)).ok());  // rank 1 dials rank 0
  absl::StatusOr<Message> m = T(0).Recv(350, 1, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(m.ok()) << m.status();
  uint64_t v = 0;
  ASSERT_EQ(Outcome(0, {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}), CompletionCode::kSuccess);
  ASSERT_TRUE(testing::PauseForTest(&T(0), true).ok());  // rank 0 dialed rank 1 too
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(T(1).Send(0, 350, Numbered(1, i)).ok());
  for (int i = 1; i <= 5; ++i) {
    m = T(0).Recv(350, 1, absl::Now() + absl::Seconds(3));
    ASSERT_TRUE(m.ok()) << "message " << i << ": " << m.status();
    EXPECT_EQ(SeqOf(m->payload), i);
  }
  ASSERT_TRUE(testing::PauseForTest(&T(0), false).ok());
}

// A rank whose messages to a peer go on the connection the peer dialed
// has still dialed that peer itself at its first Send: a READ probing the
// peer once it hangs (progress thread paused, like a stopped process) ends
// at the READ's own deadline, and the peer is not declared lost. Had the
// READ to dial first, it would wait out the handshake (the cluster's 20 s
// timeout), then declare the peer lost: a liveness probe would name a
// stopped rank only after it was continued, or never.
TEST_P(ConformanceTest, AProbeOfAHungPeerItOnlySentMessagesToEndsAtItsDeadline) {
  ASSERT_TRUE(T(1).Send(0, 360, Numbered(1, 0)).ok());  // rank 1 dials rank 0
  absl::StatusOr<Message> m = T(0).Recv(360, 1, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(T(0).Send(1, 361, Numbered(0, 0)).ok());
  m = T(1).Recv(361, 0, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(m.ok()) << m.status();
  if (!testing::PauseForTest(&T(1), true).ok()) GTEST_SKIP() << "backend has no pause hook";
  uint64_t v = 0;
  auto counter = std::make_unique<CompletionCounter>();
  const absl::Time start = absl::Now();
  absl::Status s = T(0).Post({ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}, counter.get());
  if (s.ok()) s = T(0).Wait(counter.get(), start + absl::Seconds(2));
  const absl::Duration took = absl::Now() - start;
  if (GetParam() == "verbs") {
    // The NIC serves a READ of a hung process's registered memory (a new
    // connection to it is not paused): the probe answers at once.
    EXPECT_TRUE(s.ok()) << s;
  } else {
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  }
  EXPECT_LT(took, absl::Seconds(5));
  counter.reset();  // abandoned (or done)
  ASSERT_TRUE(testing::PauseForTest(&T(1), false).ok());
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}), CompletionCode::kSuccess);
  EXPECT_TRUE(failures_[0].calls().empty());
}

// Both ranks of each pair send first at the same moment (their connects
// cross), then echo each other's messages for a while: every message
// arrives, in order per sender, in each wait mode. Then one-sided ops in
// both directions still work.
TEST_P(ConformanceTest, SimultaneousFirstSendsThenEchoes) {
  constexpr int kCount = 40;
  std::atomic<int> failures{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int a = 0; a < kRanks; ++a) {
    threads.emplace_back([&, a] {
      ready.fetch_add(1);
      while (ready.load() < kRanks) {
      }
      for (int b = 0; b < kRanks; ++b) {
        if (b != a && !T(a).Send(b, 310, Numbered(a, 0)).ok()) failures.fetch_add(1);
      }
      for (int b = 0; b < kRanks; ++b) {
        if (b == a) continue;
        absl::StatusOr<Message> m = T(a).Recv(310, b, absl::Now() + absl::Seconds(30));
        if (!m.ok() || m->payload != Numbered(b, 0)) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  threads.clear();
  ASSERT_EQ(failures.load(), 0);
  for (WaitMode mode : kModes) {
    SCOPED_TRACE(static_cast<int>(mode));
    WaitPolicy policy(mode);
    const uint32_t tag = 320 + 2 * static_cast<uint32_t>(mode);
    // Each rank echoes the next one, and pings the previous one.
    for (int a = 0; a < kRanks; ++a) {
      const int next = (a + 1) % kRanks;
      threads.emplace_back([&, a, next] { EchoN(T(a), next, tag, kCount, &failures); });
      threads.emplace_back([&, a, next, tag] {
        for (int i = 0; i < kCount; ++i) {
          absl::StatusOr<Message> m;
          if (!T(next).Send(a, tag, Numbered(next, i)).ok() ||
              !(m = T(next).Recv(tag + 1, a, absl::Now() + absl::Seconds(30))).ok() ||
              SeqOf(m->payload) != i) {
            failures.fetch_add(1);
            return;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    threads.clear();
    EXPECT_EQ(failures.load(), 0);
  }
  for (int a = 0; a < kRanks; ++a) {
    for (int b = 0; b < kRanks; ++b) {
      uint64_t v = 0;
      EXPECT_EQ(Outcome(a, {FetchAddOp(b, &v, RAddr(b, 0), Key(b), 1)}), CompletionCode::kSuccess);
    }
  }
}

// Every rank's threads send numbered messages to every other rank, with
// one-sided ops to the same peer between them, while that peer's threads
// receive them (each thread its own tag) and do the same: each receiver
// sees each sender thread's messages in order, and every FETCH_ADD lands.
// Starts on fresh connections, in each wait mode.
TEST_P(ConformanceTest, MessagesStayInOrderPerSenderBesideOneSidedOps) {
  constexpr int kThreads = 2;
  constexpr int kCount = 80;
  for (WaitMode mode : kModes) {
    SCOPED_TRACE(static_cast<int>(mode));
    WaitPolicy policy(mode);
    const uint32_t base = 400 + 10 * static_cast<uint32_t>(mode);
    uint64_t* adds = reinterpret_cast<uint64_t*>(Mem(0) + 512);
    for (int r = 0; r < kRanks; ++r) *reinterpret_cast<uint64_t*>(Mem(r) + 512) = 0;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int a = 0; a < kRanks; ++a) {
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, a, t] {  // sender
          std::vector<uint8_t> back(64);
          for (int i = 0; i < kCount; ++i) {
            for (int b = 0; b < kRanks; ++b) {
              if (b == a) continue;
              uint64_t old = 0;
              if (!T(a).Send(b, base + t, Numbered(t, i)).ok()) failures.fetch_add(1);
              if (i % 3 == 0 &&
                  !ExecuteFor(T(a), {FetchAddOp(b, &old, RAddr(b, 512), Key(b), 1)}).ok()) {
                failures.fetch_add(1);
              }
              if (i % 5 == 0 &&
                  !ExecuteFor(T(a), {ReadOp(b, back.data(), back.size(), RAddr(b, 1024), Key(b))})
                       .ok()) {
                failures.fetch_add(1);
              }
            }
          }
        });
        for (int from = 0; from < kRanks; ++from) {
          if (from == a) continue;
          threads.emplace_back([&, a, t, from] {  // receiver of `from`'s thread t
            for (int i = 0; i < kCount; ++i) {
              absl::StatusOr<Message> m = T(a).Recv(base + t, from, absl::Now() + absl::Seconds(60));
              if (!m.ok() || m->payload.size() != 3 || m->payload[0] != t || SeqOf(m->payload) != i) {
                failures.fetch_add(1);
                return;
              }
            }
          });
        }
      }
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    const uint64_t per_rank = uint64_t{kThreads} * ((kCount + 2) / 3) * (kRanks - 1);
    EXPECT_EQ(__atomic_load_n(adds, __ATOMIC_SEQ_CST), per_rank);
  }
}

// A rank blocked in Recv, reading the shared connection itself, learns of
// the peer's death at once: rank 0 waits for rank 2 on the connection it
// dialed (rank 2 replied on it) and for rank 1 on the connection rank 1
// dialed (rank 0 replied on it); both peers crash.
TEST_P(ConformanceTest, APeerDiesWhileTheSharedConnectionIsReadDirectly) {
  WaitPolicy policy(WaitMode::kBlock);
  std::atomic<int> failures{0};
  // Connections made by messages only: 0 dials 2, 1 dials 0.
  std::thread e2([&] { EchoN(T(2), 0, 330, 1, &failures); });
  ASSERT_TRUE(T(0).Send(2, 330, {1}).ok());
  ASSERT_TRUE(T(0).Recv(331, 2, absl::Now() + absl::Seconds(30)).ok());
  e2.join();
  std::thread e0([&] { EchoN(T(0), 1, 330, 1, &failures); });
  ASSERT_TRUE(T(1).Send(0, 330, {1}).ok());
  ASSERT_TRUE(T(1).Recv(331, 0, absl::Now() + absl::Seconds(30)).ok());
  e0.join();
  ASSERT_EQ(failures.load(), 0);
  absl::Status from1, from2;
  std::thread r1([&] { from1 = T(0).Recv(332, 1, absl::Now() + absl::Seconds(60)).status(); });
  std::thread r2([&] { from2 = T(0).Recv(332, 2, absl::Now() + absl::Seconds(60)).status(); });
  absl::SleepFor(absl::Milliseconds(100));  // both blocked
  const absl::Time start = absl::Now();
  EXPECT_TRUE(testing::CrashForTest(&T(1)).ok());
  EXPECT_TRUE(testing::CrashForTest(&T(2)).ok());
  r1.join();
  r2.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(from1.code(), absl::StatusCode::kUnavailable) << from1;
  EXPECT_THAT(std::string(from1.message()), HasSubstr("rank 1"));
  EXPECT_EQ(from2.code(), absl::StatusCode::kUnavailable) << from2;
  EXPECT_THAT(std::string(from2.message()), HasSubstr("rank 2"));
  EXPECT_TRUE(failures_[0].WaitFor(2, absl::Seconds(20)));
}

// A rank says goodbye while its peer still sends to it on the shared
// connection: its messages sent before the goodbye all reach the peer,
// the peer's next Sends fail (they do not hang), and the peer reports no
// failure. Both sides of the shared connection: rank 0 dialed rank 1 and
// rank 2 dialed rank 0, and rank 0 shuts down.
TEST_P(ConformanceTest, AGoodbyeWhileThePeerStillSendsOnTheSharedConnection) {
  for (WaitMode mode : kModes) {
    SCOPED_TRACE(static_cast<int>(mode));
    if (mode != kModes[0]) {  // a fresh cluster for each mode
      cluster_.ShutdownAll().IgnoreError();
      SetUp();
    }
    WaitPolicy policy(mode);
    std::atomic<int> failures{0};
    std::thread e1([&] { EchoN(T(1), 0, 340, 1, &failures); });
    ASSERT_TRUE(T(0).Send(1, 340, {1}).ok());  // 0 dials 1
    ASSERT_TRUE(T(0).Recv(341, 1, absl::Now() + absl::Seconds(30)).ok());
    e1.join();
    std::thread e0([&] { EchoN(T(0), 2, 340, 1, &failures); });
    ASSERT_TRUE(T(2).Send(0, 340, {1}).ok());  // 2 dials 0
    ASSERT_TRUE(T(2).Recv(341, 0, absl::Now() + absl::Seconds(30)).ok());
    e0.join();
    // Rank 1 and rank 2 keep sending to rank 0 until a Send fails.
    std::atomic<bool> stop{false};
    std::vector<absl::Status> last(kRanks);
    std::vector<std::thread> senders;
    for (int s : {1, 2}) {
      senders.emplace_back([&, s] {
        const absl::Time give_up = absl::Now() + absl::Seconds(30);
        for (int i = 0; !stop.load() && absl::Now() < give_up; ++i) {
          last[s] = T(s).Send(0, 342, Numbered(s, i));
          if (!last[s].ok()) return;
        }
      });
    }
    constexpr int kBeforeBye = 30;
    for (int i = 0; i < kBeforeBye; ++i) {
      for (int p : {1, 2}) ASSERT_TRUE(T(0).Send(p, 343, Numbered(0, i)).ok());
    }
    absl::StatusOr<Message> first = T(0).Recv(342, 1, absl::Now() + absl::Seconds(30));
    EXPECT_TRUE(first.ok()) << first.status();
    EXPECT_TRUE(T(0).Shutdown(absl::Now() + absl::Seconds(10)).ok());
    for (auto& t : senders) t.join();
    stop.store(true);
    for (int p : {1, 2}) {
      EXPECT_FALSE(last[p].ok()) << "rank " << p << " could still send after the goodbye";
      for (int i = 0; i < kBeforeBye; ++i) {
        absl::StatusOr<Message> m = T(p).Recv(343, 0, absl::Now() + absl::Seconds(30));
        ASSERT_TRUE(m.ok()) << "rank " << p << ", message " << i << ": " << m.status();
        EXPECT_EQ(SeqOf(m->payload), i);
      }
      EXPECT_EQ(T(p).Recv(343, 0, absl::Now() + absl::Seconds(30)).status().code(),
                absl::StatusCode::kUnavailable);
      EXPECT_TRUE(failures_[p].calls().empty()) << failures_[p].calls()[0].second;
    }
    EXPECT_EQ(failures.load(), 0);
  }
}

}  // namespace conformance
}  // namespace transport
}  // namespace gasp

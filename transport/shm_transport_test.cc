// The shm backend beyond the conformance suite: what only it has (the
// socket directory, the same-host and same-user rules, chunking the
// largest message through a ring) and a node-mate that really is another
// process, killed without warning.
#include "transport/shm_transport.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/shm_wire.h"
#include "transport/transport_test_util.h"

namespace gasp {
namespace transport {
namespace {

using ::testing::HasSubstr;
using testing::Cluster;
using testing::LoopbackOptions;

TEST(ShmTransportTest, SocketDirectoryIsPrivateAndRemovedAtShutdown) {
  absl::StatusOr<std::unique_ptr<Transport>> t =
      CreateShmTransport(LoopbackOptions(0, 1, absl::Seconds(5)));
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<shm::ShmEndpoint> e = shm::DecodeShmEndpoint((*t)->LocalEndpoint());
  ASSERT_TRUE(e.ok()) << e.status();
  const std::string dir = e->path.substr(0, e->path.rfind('/'));
  struct stat st {};
  ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
  EXPECT_EQ(st.st_mode & 0777, 0700u) << dir;
  EXPECT_EQ(st.st_uid, geteuid());
  ASSERT_TRUE((*t)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
  EXPECT_NE(stat(e->path.c_str(), &st), 0) << "socket left behind";
  EXPECT_NE(stat(dir.c_str(), &st), 0) << "directory left behind";
}

TEST(ShmTransportTest, BlobsOfAnotherHostOrUserAreRefusedWithAHint) {
  absl::StatusOr<Cluster> c = Cluster::Start("shm", 2, absl::Seconds(5));
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<std::unique_ptr<Transport>> fresh =
      CreateShmTransport(LoopbackOptions(0, 2, absl::Seconds(5)));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  absl::StatusOr<shm::ShmEndpoint> e = shm::DecodeShmEndpoint(c->blobs[1]);
  ASSERT_TRUE(e.ok());
  shm::ShmEndpoint other_host = *e;
  other_host.boot_id[0] ^= 1;
  absl::Status s =
      (*fresh)->Connect({(*fresh)->LocalEndpoint(), shm::EncodeShmEndpoint(other_host)});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("GASP_TRANSPORT=tcp"));
  shm::ShmEndpoint other_user = *e;
  other_user.uid += 1;
  s = (*fresh)->Connect({(*fresh)->LocalEndpoint(), shm::EncodeShmEndpoint(other_user)});
  EXPECT_THAT(std::string(s.message()), HasSubstr("uid"));
  // A tcp blob is refused naming both backends.
  absl::StatusOr<Cluster> tcp = Cluster::Start("tcp", 2, absl::Seconds(5));
  ASSERT_TRUE(tcp.ok());
  s = (*fresh)->Connect({(*fresh)->LocalEndpoint(), tcp->blobs[1]});
  EXPECT_THAT(std::string(s.message()), HasSubstr("tcp backend"));
  EXPECT_TRUE((*fresh)->Connect({(*fresh)->LocalEndpoint(), c->blobs[1]}).ok());
  EXPECT_TRUE((*fresh)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
  EXPECT_TRUE(tcp->ShutdownAll().ok());
  EXPECT_TRUE(c->ShutdownAll().ok());
}

TEST(ShmTransportTest, LargestMessagesBothWaysAndToSelf) {
  // 64 MiB is 64 times the ring: the sender waits for room while the
  // receiver's progress thread drains it.
  absl::StatusOr<Cluster> c = Cluster::Start("shm", 2, absl::Seconds(30));
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<uint8_t> big(kMaxMessageBytes);
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<uint8_t>(i >> 12);
  big.back() = 0x77;
  for (int from : {0, 1}) {
    for (int to : {1 - from, from}) {
      SCOPED_TRACE(absl::StrCat(from, " -> ", to));
      ASSERT_TRUE((*c)[from].Send(to, 3, big).ok());
      absl::StatusOr<Message> m = (*c)[to].Recv(3, from, absl::Now() + absl::Seconds(30));
      ASSERT_TRUE(m.ok()) << m.status();
      EXPECT_TRUE(m->payload == big);
    }
  }
  EXPECT_TRUE(c->ShutdownAll().ok());
}

// ---- A node-mate in another process ----

// Writes/reads all of `n` bytes on a pipe.
bool PipeWrite(int fd, const void* p, size_t n) { return write(fd, p, n) == static_cast<ssize_t>(n); }
bool PipeRead(int fd, void* p, size_t n) { return read(fd, p, n) == static_cast<ssize_t>(n); }

struct Shared {
  EndpointBlob blob;
  uint64_t addr = 0;
  RemoteKey rkey;
};

// The child: rank 1 of 2. Publishes its blob, region address and key,
// connects with the parent's blob, then serves (progress thread) until it
// is killed.
[[noreturn]] void RunChild(int to_parent, int from_parent) {
  absl::StatusOr<std::unique_ptr<Transport>> t =
      CreateShmTransport(LoopbackOptions(1, 2, absl::Seconds(20)));
  if (!t.ok()) _exit(2);
  static uint64_t words[512];
  absl::StatusOr<Region> r = (*t)->Register(words, sizeof(words), kRemoteAll);
  if (!r.ok()) _exit(3);
  Shared mine{(*t)->LocalEndpoint(), reinterpret_cast<uint64_t>(words), r->rkey};
  EndpointBlob parent;
  if (!PipeWrite(to_parent, &mine, sizeof(mine)) || !PipeRead(from_parent, &parent, sizeof(parent))) {
    _exit(4);
  }
  if (!(*t)->Connect({parent, mine.blob}).ok()) _exit(5);
  pause();  // computes nothing: the progress thread serves the parent
  _exit(0);
}

TEST(ShmTransportTest, ANodeMateThatIsKilledFailsItsOpsAndIsReportedOnce) {
  // A directory of this test's own for the socket directories: shm
  // transports of other tests running on the host at the same time remove
  // a dead rank's directory too, which the checks at the end must not race.
  char runtime_dir[] = "/tmp/gasp-shm-killed-XXXXXX";
  ASSERT_NE(mkdtemp(runtime_dir), nullptr);
  const char* saved = std::getenv("XDG_RUNTIME_DIR");
  const std::string saved_dir = saved != nullptr ? saved : "";
  ASSERT_EQ(setenv("XDG_RUNTIME_DIR", runtime_dir, 1), 0);
  struct Restore {
    std::string dir, saved;
    bool had;
    ~Restore() {
      if (had) {
        setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
      } else {
        unsetenv("XDG_RUNTIME_DIR");
      }
      rmdir(dir.c_str());
    }
  } restore{runtime_dir, saved_dir, saved != nullptr};
  int up[2], down[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(down), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) RunChild(up[1], down[0]);
  Shared theirs;
  ASSERT_TRUE(PipeRead(up[0], &theirs, sizeof(theirs)));
  absl::StatusOr<std::unique_ptr<Transport>> t =
      CreateShmTransport(LoopbackOptions(0, 2, absl::Seconds(20)));
  ASSERT_TRUE(t.ok()) << t.status();
  const EndpointBlob mine = (*t)->LocalEndpoint();
  ASSERT_TRUE(PipeWrite(down[1], &mine, sizeof(mine)));
  ASSERT_TRUE((*t)->Connect({mine, theirs.blob}).ok());
  std::vector<std::pair<int, std::string>> failures;
  std::mutex mu;
  (*t)->SetPeerFailureHandler([&](int peer, const absl::Status& s) {
    std::lock_guard<std::mutex> l(mu);
    failures.emplace_back(peer, std::string(s.message()));
  });
  // One-sided ops into the other process's memory, served while it sleeps.
  uint64_t v = 0x1234, old = 0;
  ASSERT_TRUE(testing::ExecuteFor(**t, {testing::WriteOp(1, &v, 8, theirs.addr, theirs.rkey)}).ok());
  ASSERT_TRUE(testing::ExecuteFor(**t, {testing::FetchAddOp(1, &old, theirs.addr, theirs.rkey, 1)}).ok());
  EXPECT_EQ(old, 0x1234u);
  uint64_t back = 0;
  ASSERT_TRUE(testing::ExecuteFor(**t, {testing::ReadOp(1, &back, 8, theirs.addr, theirs.rkey)}).ok());
  EXPECT_EQ(back, 0x1235u);
  // Stopped, an op waits; killed, the op fails at once with the peer named.
  ASSERT_EQ(kill(child, SIGSTOP), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, WUNTRACED), child);  // stopped for sure
  ASSERT_TRUE(WIFSTOPPED(status));
  CompletionCounter counter;
  ASSERT_TRUE((*t)->Post({testing::ReadOp(1, &back, 8, theirs.addr, theirs.rkey, 7)}, &counter).ok());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(counter.done());
  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const absl::Time start = absl::Now();
  absl::Status s = (*t)->Wait(&counter, absl::Now() + absl::Seconds(20));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(counter.first_error(), CompletionCode::kPeerUnreachable) << s;
  EXPECT_EQ(counter.error_wr_id(), 7u);
  absl::SleepFor(absl::Milliseconds(100));
  {
    std::lock_guard<std::mutex> l(mu);
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_EQ(failures[0].first, 1);
    EXPECT_THAT(failures[0].second, HasSubstr("without goodbye"));
  }
  EXPECT_TRUE((*t)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
  for (int fd : {up[0], up[1], down[0], down[1]}) close(fd);
  // A killed rank cannot remove its socket directory: the next transport
  // created on this host does (and leaves the live ones alone).
  absl::StatusOr<shm::ShmEndpoint> dead = shm::DecodeShmEndpoint(theirs.blob);
  ASSERT_TRUE(dead.ok());
  const std::string dead_dir = dead->path.substr(0, dead->path.rfind('/'));
  struct stat st {};
  EXPECT_EQ(stat(dead_dir.c_str(), &st), 0) << "the killed rank's directory is gone already?";
  absl::StatusOr<Cluster> next = Cluster::Start("shm", 2, absl::Seconds(5));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NE(stat(dead_dir.c_str(), &st), 0) << dead_dir << " left behind";
  absl::StatusOr<shm::ShmEndpoint> live = shm::DecodeShmEndpoint(next->blobs[0]);
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(stat(live->path.c_str(), &st), 0) << "a live rank's socket was removed";
  EXPECT_TRUE(next->ShutdownAll().ok());
}

}  // namespace
}  // namespace transport
}  // namespace gasp

#include "base/accept_guard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace {

// A non-blocking listener on 127.0.0.1; *port gets its port.
int Listen(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 ? fd : -1;
}

TEST(SourceCaps, CapsPerSourceAndInAll) {
  SourceCaps caps(2, 3);
  EXPECT_TRUE(caps.Admit(1));
  EXPECT_TRUE(caps.Admit(1));
  EXPECT_FALSE(caps.Admit(1)) << "per source";
  EXPECT_TRUE(caps.Admit(2));
  EXPECT_FALSE(caps.Admit(3)) << "in all";
  EXPECT_EQ(caps.total(), 3);
  EXPECT_EQ(caps.from(1), 2);
  caps.Release(1);
  EXPECT_TRUE(caps.Admit(3));
  caps.Release(9);  // never admitted: no effect
  EXPECT_EQ(caps.total(), 3);
  EXPECT_EQ(caps.from(9), 0);
}

TEST(AcceptGuard, AcceptsAndReportsAnEmptyQueue) {
  int port = 0;
  const int l = Listen(&port);
  ASSERT_GE(l, 0);
  AcceptGuard guard("test listener");
  EXPECT_FALSE(guard.Next(l).has_value());
  EXPECT_EQ(guard.paused_until(), absl::InfinitePast());
  const int c = Connect(port);
  ASSERT_GE(c, 0);
  std::optional<AcceptedConn> a = guard.Next(l);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->ip, 0x7f000001u);
  EXPECT_NE(fcntl(a->fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(FormatIpv4(a->ip, 80), "127.0.0.1:80");
  close(a->fd);
  close(c);
  close(l);
}

// Out of descriptors: the waiting connection is shed with the spare
// descriptor (its client sees the close), nothing is returned, and the
// listener is not paused while the spare works.
TEST(AcceptGuard, ShedsAtTheDescriptorLimit) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check probes memory through a pipe(): at EMFILE it reports
  // every virtual call (the log line's stream) as a bad object. The plain
  // build runs this test; tests/flood_test.sh runs the path at `ulimit -n 60`.
  GTEST_SKIP() << "the sanitizer runtime itself needs descriptors at EMFILE";
#endif
  int port = 0;
  const int l = Listen(&port);
  ASSERT_GE(l, 0);
  AcceptGuard guard("test listener");
  const int c = Connect(port);
  ASSERT_GE(c, 0);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  std::vector<int> fill;
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(dup(0) + 1);  // the next free descriptor is the last
  close(static_cast<int>(low.rlim_cur - 1));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fill.push_back(fd);
  EXPECT_FALSE(guard.Next(l).has_value());
  EXPECT_EQ(guard.paused_until(), absl::InfinitePast()) << "the spare shed it: no pause";
  for (int fd : fill) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  timeval tv{5, 0};  // a guard that did not shed would leave it open
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char b;
  EXPECT_EQ(recv(c, &b, 1, 0), 0) << "the client sees its connection closed";
  close(c);
  close(l);
}

}  // namespace
}  // namespace gasp

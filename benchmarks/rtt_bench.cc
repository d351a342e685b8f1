// Round trips of the transport beside a bare TCP ping-pong, in one run
// (issue "fast paths", part 1: the baseline every tcp change is measured
// against). Rank 0 measures against rank 1:
//
//   bare TCP    16 B request header (+ payload), reply of 8 B or 4 KiB, one
//               connection with TCP_NODELAY, between the same two processes
//               and hosts as gasp's traffic; blocking recv, and busy-polling
//               recv(MSG_DONTWAIT). Also an 8 B echo whose reply comes back
//               on a second connection, as gasp's messages did before they
//               shared one connection per pair (each rank sent on the
//               connection it opened): TCP alone charges a small message
//               for that (each side's stream then carries data one way
//               only, and every segment gets a bare ACK)
//   gasp        one-sided READ/WRITE of 8 B and 4 KiB, COMPARE_SWAP and
//               FETCH_ADD through the transport (Execute, one op at a time),
//               and a message ping-pong (Send/Recv, rank 1 echoes) of 8 B
//               and 4 KiB
//
// Each gasp row is divided by the bare row with the same bytes on the wire
// (READ 4 KiB by "16 B -> 4 KiB", WRITE 4 KiB by "4 KiB -> 8 B", a 4 KiB
// message echo by "4 KiB -> 4 KiB"), in both bare modes. The waiting mode of gasp's side is GASP_WAIT_MODE.
//
// When the runtime's transport is not shm and ranks 0 and 1 share a host,
// the same gasp rows are measured again over a second, shm transport
// between the same processes (side_shm.h) and printed beside the first
// transport's figures.
//
//   gasprun -np 2 bazel-bin/benchmarks/rtt_bench [iterations]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "benchmarks/echo.h"
#include "benchmarks/side_shm.h"
#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"
#include "transport/transport.h"

namespace {

using gasp::bench::Echo;
using gasp::bench::MessageRtt;
using gasp::bench::StopEcho;
using gasp::bench::TimedMedian;
namespace transport = gasp::transport;

// What the bare server needs to know per request.
struct Request {
  uint32_t payload;  // bytes following the header
  uint32_t reply;    // bytes to answer with; 0 ends the server
  uint32_t poll;     // 1: busy-poll for the next request
  uint32_t second;   // 1: answer on the second connection
};

// Where rank 1's bare server listens, published through global memory.
struct Rendezvous {
  char host[64];
  uint32_t port;
};


[[noreturn]] void Fail(const char* what) {
  std::perror(what);
  gasp::Abort(1, what);
}

// Reads exactly n bytes; busy-polls with MSG_DONTWAIT when `poll`.
bool RecvAll(int fd, void* p, size_t n, bool poll) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = recv(fd, c, n, poll ? MSG_DONTWAIT : 0);
    if (r > 0) {
      c += r;
      n -= static_cast<size_t>(r);
    } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
      return false;
    }
  }
  return true;
}

bool SendAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t r = send(fd, c, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Rank 1: answers requests until one asks for 0 bytes.
void Serve(int listener) {
  int fd = accept(listener, nullptr, nullptr);
  int back = accept(listener, nullptr, nullptr);  // replies of `second` requests
  if (fd < 0 || back < 0) Fail("rtt_bench: accept");
  NoDelay(fd);
  NoDelay(back);
  std::vector<char> buf(8192);
  bool poll = false;
  for (;;) {
    Request req;
    if (!RecvAll(fd, &req, sizeof(req), poll)) break;
    if (req.reply == 0 || req.payload > buf.size() || req.reply > buf.size()) break;
    if (!RecvAll(fd, buf.data(), req.payload, poll)) break;
    if (!SendAll(req.second != 0 ? back : fd, buf.data(), req.reply)) break;
    poll = req.poll != 0;
  }
  close(back);
  close(fd);
}

int Listen(Rendezvous* out) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail("rtt_bench: socket");
  const std::string host = gasp::internal::AdvertisedHost();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Fail("rtt_bench: bind");
  if (listen(fd, 1) != 0) Fail("rtt_bench: listen");
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  inet_ntop(AF_INET, &a.sin_addr, out->host, sizeof(out->host));
  out->port = ntohs(a.sin_port);
  return fd;
}

int Connect(const Rendezvous& r) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(r.port));
  inet_pton(AF_INET, r.host, &a.sin_addr);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    Fail("rtt_bench: connect");
  }
  NoDelay(fd);
  return fd;
}

// Median round trip of `iters` bare requests, in microseconds; with
// `back` >= 0 the replies come on that second connection.
double Bare(int fd, int iters, uint32_t payload, uint32_t reply, bool poll, int back = -1) {
  std::vector<char> buf(8192);
  Request req{payload, reply, poll ? 1u : 0u, back >= 0 ? 1u : 0u};
  // The warm-up also switches the server to the new mode.
  return TimedMedian(iters, [&](int) {
    if (!SendAll(fd, &req, sizeof(req)) || !SendAll(fd, buf.data(), payload) ||
        !RecvAll(back >= 0 ? back : fd, buf.data(), reply, poll)) {
      Fail("rtt_bench: bare ping-pong");
    }
  });
}

// Median of `iters` single ops through gasp's transport, in microseconds.
double Gasp(gasp::transport::Transport* tr, gasp::transport::Op op, int iters) {
  return TimedMedian(iters, [&](int) {
    if (!tr->Execute(absl::MakeConstSpan(&op, 1), absl::Now() + absl::Seconds(30)).ok()) {
      gasp::Abort(1, "rtt_bench: transport op failed");
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  gasp::Result<gasp::Runtime> rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", rt.status().message().c_str());
    return 1;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int me = rt->rank();
  if (rt->size() < 2 || iters < 1) {
    if (me == 0) std::fprintf(stderr, "rtt_bench: needs 2 ranks and iterations >= 1\n");
    (void)rt->Finalize();
    return 2;
  }
  auto* rv = static_cast<Rendezvous*>(gasp::CoAlloc(sizeof(Rendezvous), gasp::Placement::OnRank(1)));
  char* target = static_cast<char*>(gasp::CoAlloc(8192, gasp::Placement::OnRank(1)));
  std::thread server;
  if (me == 1) {
    int listener = Listen(rv);
    server = std::thread([listener] {
      Serve(listener);
      close(listener);
    });
  }
  gasp::Barrier();  // the rendezvous is published
  // The shm transport beside the runtime's (unless that is shm already).
  absl::StatusOr<gasp::bench::SideShm> side = gasp::bench::SideShm{};
  if (gasp::internal::GetTransport()->name() != "shm") {
    auto* coh = gasp::internal::GetCoherence();
    void* home = me == 1 ? reinterpret_cast<void*>(
                               coh->HomeAddress(1, reinterpret_cast<uint64_t>(target)))
                         : nullptr;
    side = gasp::bench::OpenSideShm(home, 8192);
  }
  if (me == 0) {
    const int fd = Connect(*rv);
    const int back = Connect(*rv);
    auto* tr = gasp::internal::GetTransport();
    auto* coh = gasp::internal::GetCoherence();
    std::vector<char> buf(8192);
    auto op = [&](gasp::transport::OpType type, size_t bytes) {
      gasp::transport::Op o;
      o.type = type;
      o.peer = 1;
      o.local = buf.data();
      o.length = bytes;
      o.remote_addr = coh->HomeAddress(1, reinterpret_cast<uint64_t>(target));
      o.rkey = coh->HomeKey(reinterpret_cast<uint64_t>(target), 1);
      return o;
    };
    using T = gasp::transport::OpType;
    struct Bares {
      double small, read4k, write4k, echo4k, two_conns;
    } block{}, poll{};
    for (int p = 0; p < 2; ++p) {
      Bares& b = p == 0 ? block : poll;
      b.small = Bare(fd, iters, 0, 8, p == 1);
      b.two_conns = Bare(fd, iters, 8, 8, p == 1, back);
      b.read4k = Bare(fd, iters, 0, 4096, p == 1);
      b.write4k = Bare(fd, iters, 4096, 8, p == 1);
      b.echo4k = Bare(fd, iters, 4096, 4096, p == 1);
    }
    // Back to a blocking server: a busy-polling one would take a core from
    // rank 1's progress thread during the gasp rows.
    (void)Bare(fd, 1, 0, 8, false);
    struct GaspRow {
      const char* name;
      T type;
      size_t bytes;
      double Bares::*baseline;
    };
    const GaspRow rows[] = {
        {"READ 8 B", T::kRead, 8, &Bares::small},
        {"READ 4 KiB", T::kRead, 4096, &Bares::read4k},
        {"WRITE 8 B", T::kWrite, 8, &Bares::small},
        {"WRITE 4 KiB", T::kWrite, 4096, &Bares::write4k},
        {"COMPARE_SWAP", T::kCompareSwap, 8, &Bares::small},
        {"FETCH_ADD", T::kFetchAdd, 8, &Bares::small},
    };
    const char* mode = std::getenv("GASP_WAIT_MODE");
    std::printf("# rtt_bench: rank 0 -> rank 1 (%s), transport %s, GASP_WAIT_MODE=%s, %d "
                "iterations, medians in us\n",
                gasp::internal::DescribeRank(1).c_str(), tr->name().c_str(),
                mode != nullptr ? mode : "(default)", iters);
    std::printf(" %-28s %10s %10s\n", "bare TCP ping-pong", "blocking", "busy-poll");
    std::printf(" %-28s %10.2f %10.2f\n", "16 B -> 8 B", block.small, poll.small);
    std::printf(" %-28s %10.2f %10.2f\n", "16 B -> 4 KiB", block.read4k, poll.read4k);
    std::printf(" %-28s %10.2f %10.2f\n", "16 B + 4 KiB -> 8 B", block.write4k, poll.write4k);
    std::printf(" %-28s %10.2f %10.2f\n", "16 B + 4 KiB -> 4 KiB", block.echo4k, poll.echo4k);
    std::printf(" %-28s %10.2f %10.2f\n", "16+8 B -> 8 B, 2nd conn", block.two_conns,
                poll.two_conns);
    std::printf(" %-28s %10s %12s %12s\n", "gasp transport op", "median", "/ blocking", "/ busy-poll");
    double main_us[8];
    int k = 0;
    for (const GaspRow& r : rows) {
      const double g = main_us[k++] = Gasp(tr, op(r.type, r.bytes), iters);
      std::printf(" %-28s %10.2f %11.2fx %11.2fx\n", r.name, g, g / (block.*r.baseline),
                  g / (poll.*r.baseline));
    }
    const double m8 = MessageRtt(tr, 8, iters), m4k = MessageRtt(tr, 4096, iters);
    main_us[6] = m8;
    main_us[7] = m4k;
    std::printf(" %-28s %10.2f %11.2fx %11.2fx\n", "message 8 B echo", m8, m8 / block.small,
                m8 / poll.small);
    std::printf(" %-28s %10s %11.2fx %11.2fx\n", "  / bare echo on 2 conns", "",
                m8 / block.two_conns, m8 / poll.two_conns);
    std::printf(" %-28s %10.2f %11.2fx %11.2fx\n", "message 4 KiB echo", m4k, m4k / block.echo4k,
                m4k / poll.echo4k);
    StopEcho(tr);
    if (side.ok() && side->transport != nullptr) {
      transport::Transport* st = side->transport.get();
      std::printf(" %-28s %10s %12s\n", "same ops over shm", "median", "/ first");
      k = 0;
      for (const GaspRow& r : rows) {
        gasp::transport::Op o = op(r.type, r.bytes);
        o.remote_addr = side->target_addr;
        o.rkey = side->rkey;
        const double g = Gasp(st, o, iters);
        std::printf(" shm %-24s %10.2f %11.2fx\n", r.name, g, g / main_us[k++]);
      }
      const double s8 = MessageRtt(st, 8, iters), s4k = MessageRtt(st, 4096, iters);
      std::printf(" shm %-24s %10.2f %11.2fx\n", "message 8 B echo", s8, s8 / main_us[6]);
      std::printf(" shm %-24s %10.2f %11.2fx\n", "message 4 KiB echo", s4k, s4k / main_us[7]);
      StopEcho(st);
    } else {
      std::printf("# shm rows: %s\n", side.ok() ? "the job already runs on shm"
                                                : side.status().ToString().c_str());
    }
    Request stop{0, 0, 0, 0};
    (void)SendAll(fd, &stop, sizeof(stop));
    close(back);
    close(fd);
  }
  if (me == 1) {
    Echo(gasp::internal::GetTransport());
    if (side.ok() && side->transport != nullptr) Echo(side->transport.get());
  }
  if (gasp::internal::GetTransport()->name() != "shm") {
    gasp::Barrier();  // neither side leaves while the other still measures
    if (side.ok() && side->transport != nullptr) {
      (void)side->transport->Shutdown(absl::Now() + absl::Seconds(5));
    }
  }
  if (server.joinable()) server.join();
  return rt->Finalize();
}

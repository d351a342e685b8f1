// Helpers shared by rtt_bench and barrier_bench: medians of timed loops and
// the transport message echo between rank 0 and rank 1.
#ifndef GASP_BENCHMARKS_ECHO_H_
#define GASP_BENCHMARKS_ECHO_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/time/clock.h"
#include "gasp/gasp.h"
#include "transport/transport.h"

namespace gasp {
namespace bench {

// Outside the runtime's reserved tag range (consistency/tags.h).
inline constexpr uint32_t kEchoTag = 0x52545401;
// Samples timed after this many untimed warm-up iterations.
inline constexpr int kWarmup = 10;

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median in microseconds of `iters` calls of body() (after kWarmup).
template <typename Body>
double TimedMedian(int iters, Body body) {
  std::vector<double> t;
  for (int i = 0; i < iters + kWarmup; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    body(i);
    if (i >= kWarmup) {
      t.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  return Median(t);
}

// Rank 1: echoes rank 0's messages until an empty one.
inline void Echo(transport::Transport* tr) {
  for (;;) {
    auto m = tr->Recv(kEchoTag, 0, absl::Now() + absl::Minutes(5));
    if (!m.ok()) Abort(1, "echo: receive failed");
    if (m->payload.empty()) return;
    if (!tr->Send(0, kEchoTag, m->payload).ok()) Abort(1, "echo: send failed");
  }
}

// Rank 0: median message round trip with rank 1's Echo (Send, then Recv).
inline double MessageRtt(transport::Transport* tr, size_t bytes, int iters) {
  std::vector<uint8_t> payload(bytes, 1);
  return TimedMedian(iters, [&](int) {
    if (!tr->Send(1, kEchoTag, payload).ok() ||
        !tr->Recv(kEchoTag, 1, absl::Now() + absl::Seconds(30)).ok()) {
      Abort(1, "echo: message ping-pong failed");
    }
  });
}

// Rank 0: ends rank 1's Echo.
inline void StopEcho(transport::Transport* tr) {
  if (!tr->Send(1, kEchoTag, {}).ok()) Abort(1, "echo: stopping the echo failed");
}

}  // namespace bench
}  // namespace gasp

#endif  // GASP_BENCHMARKS_ECHO_H_

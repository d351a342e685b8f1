// The home side of packed diffs: a thread ("gasp-diff") that receives diff
// messages (consistency/diff_wire.h) from other ranks, checks them like a
// NIC checks a one-sided WRITE, writes them into this rank's home pages,
// and replies. The application's threads never have to call gasp for it.
//
// Checks, for every record before anything is written, what a NIC checks
// for a one-sided WRITE: the bytes lie inside a region this rank registered
// with remote-write rights, under the message's remote key. The runtime
// lists those regions (AcceptWrites) before it hands their keys out, so a
// rank that holds a key can use it at once, even before this rank has
// finished the collective allocation that made it. A refused message
// writes nothing; the reply names why.
#ifndef GASP_CONSISTENCY_DIFF_SERVICE_H_
#define GASP_CONSISTENCY_DIFF_SERVICE_H_

#include <atomic>
#include <mutex>
#include <vector>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "consistency/diff_wire.h"
#include "consistency/tags.h"
#include "gas/range.h"
#include "transport/transport.h"

namespace gasp {
namespace consistency {

class DiffService {
 public:
  // All must outlive the service.
  DiffService(gas::GlobalRange* range, transport::Transport* transport, int rank);
  ~DiffService();  // Stop()

  // Starts the thread.
  void Start();
  // Stops it (returns within about 200 ms; the transport may already be
  // shut down).
  void Stop();

  // Diffs may write [offset, offset+length) of the range under `rkey`.
  // Thread-safe.
  void AcceptWrites(uint64_t offset, uint64_t length, uint64_t rkey);

  // Checks and applies one message from `from` (the thread's work; public
  // for tests). Returns the reason for refusing it; nothing is written then.
  absl::Status Apply(int from, absl::Span<const uint8_t> message);

 private:
  void Loop();

  gas::GlobalRange* const range_;
  transport::Transport* const transport_;
  const int rank_;
  struct Region {
    uint64_t offset, length, rkey;
  };
  std::mutex regions_mu_;
  std::vector<Region> regions_;  // guarded by regions_mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_DIFF_SERVICE_H_

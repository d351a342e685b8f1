// The home side of packed diffs: a thread ("gasp-diff") that receives diff
// messages (consistency/diff_wire.h) from other ranks, checks them like a
// NIC checks a one-sided WRITE, writes them into this rank's home pages,
// and replies. The application's threads never have to call gasp for it.
//
// Checks, for every record before anything is written: the pages are
// allocated, homed at this rank, in the default protection domain (domain
// pages take one-sided WRITEs, which the NIC checks against the domain's
// own registration), and the message's remote key is this rank's key of
// that segment. A refused message writes nothing; the reply names why.
#ifndef GASP_CONSISTENCY_DIFF_SERVICE_H_
#define GASP_CONSISTENCY_DIFF_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "consistency/diff_wire.h"
#include "consistency/tags.h"
#include "gas/range.h"
#include "gas/segment.h"
#include "transport/transport.h"

namespace gasp {
namespace consistency {

class DiffService {
 public:
  // All must outlive the service.
  DiffService(gas::GlobalRange* range, const gas::SegmentTable* segments,
              transport::Transport* transport, int rank);
  ~DiffService();  // Stop()

  // Starts the thread.
  void Start();
  // Stops it (returns within about 200 ms; the transport may already be
  // shut down).
  void Stop();

  // Checks and applies one message from `from` (the thread's work; public
  // for tests). Returns the reason for refusing it; nothing is written then.
  absl::Status Apply(int from, absl::Span<const uint8_t> message);

 private:
  void Loop();

  gas::GlobalRange* const range_;
  const gas::SegmentTable* const segments_;
  transport::Transport* const transport_;
  const int rank_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_DIFF_SERVICE_H_

// The runtime's process-wide state, shared by runtime.cc (init, memory,
// synchronization) and domains.cc (protection domains). Internal.
#ifndef GASP_RUNTIME_STATE_H_
#define GASP_RUNTIME_STATE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/settings.h"
#include "boot/bootstrap.h"
#include "boot/endpoint_exchange.h"
#include "boot/job_secret.h"
#include "consistency/coherence.h"
#include "consistency/sync.h"
#include "gas/heap.h"
#include "gas/range.h"
#include "gas/segment.h"
#include "protect/protection.h"
#include "runtime/stats_export.h"
#include "transport/transport.h"

namespace gasp {
namespace rt {

// A protection domain as the runtime sees it (the collective id is the
// index in State::domains). Everything here is the same on every rank
// except the keys and `local`.
struct DomainInfo {
  std::string name;
  protect::DomainId local = protect::kNoDomain;  // this process's protect/ id
  // Access each rank was granted (collective knowledge; kNone: none).
  std::vector<protect::Rights> granted;
  // The domain's segments, in allocation order: offset from the range base,
  // this rank's read-only and read-write keys for its home span (0: no
  // pages here), and the segment's key table (index = rank) that the DSM
  // reads, where granted keys are installed.
  struct Seg {
    uint64_t offset = 0;
    uint64_t ro_key = 0;
    uint64_t rw_key = 0;
    std::vector<uint64_t>* keys = nullptr;
  };
  std::vector<Seg> segments;
};

struct State {
  Config config;
  std::unique_ptr<gas::GlobalRange> range;
  std::unique_ptr<boot::Bootstrap> boot;
  // Keys the tcp handshake and shipped calls' credentials; never logged.
  boot::JobSecret secret;
  std::unique_ptr<transport::Transport> transport;
  // Registrations of this rank's home pages (its heap, its share of each
  // collective segment) and every rank's keys for them, per segment. A
  // deque: segments point into it, so elements never move.
  std::vector<transport::Region> regions;
  std::deque<std::vector<uint64_t>> segment_keys;
  // What this rank knows of each first-touch segment's homes (gas::Segment::touch).
  std::deque<std::unique_ptr<std::atomic<int32_t>[]>> touch_homes;
  std::vector<boot::RankRecord> records;
  std::unique_ptr<gas::SegmentTable> segments;
  std::unique_ptr<protect::Protection> protection;
  std::unique_ptr<consistency::Coherence> coherence;
  std::unique_ptr<consistency::Sync> sync;
  std::unique_ptr<gas::HeapAllocator> heap;
  std::mutex alloc_mu;  // collective allocation bookkeeping
  uint64_t next_collective = 0;  // offset of the next collective segment
  uint64_t heap_area = 0;        // offset where the per-rank heaps begin
  uint64_t lock_segment = 0;     // offset of the current lock segment
  uint64_t next_lock = 0;        // lock slots used in it
  std::deque<DomainInfo> domains;  // index 0: the default domain
  uint64_t key_epoch = 0;          // key exchanges so far (collective order)
  std::vector<std::function<void()>> at_finalize;
  std::unique_ptr<StatsExporter> stats_export;  // GASP_STATS_FILE; null without
  std::string job_id;           // boot::JobIdOf: the launcher's, else from the secret
  std::string advertised_host;  // where other ranks reach this one (transport address)
  bool bind_all = false;        // GASP_TCP_ADDR=0.0.0.0: listeners bind every interface
  int rank = 0;
  int size = 1;
};

// The live state; ends the process with a message if Init has not run.
State& S();
// nullptr before Init and after Finalize.
State* StateOrNull();

// "rank 3 (host:pid)".
std::string Describe(int rank);

// Ends the job (see runtime.cc: a peer's death makes this rank collateral).
[[noreturn]] void Die(const absl::Status& status, const char* what);
inline void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) Die(status, what);
}

// Registers [offset, offset+length) of this rank's system view for remote
// access with `access` (transport::kRemote*).
absl::StatusOr<transport::Region> RegisterHome(State& s, uint64_t offset, uint64_t length,
                                               uint32_t access);

// domains.cc ---------------------------------------------------------------

// Creates the protection layer (GASP_PROTECT) and the default domain entry.
// Must run before the coherence layer installs its fault handler, so that
// violations are seen before misses.
absl::Status InitProtection(State& s);
// After the coherence layer exists: connects domains and page states.
void ConnectProtection(State& s);

// For a collective segment in `domain` (non-zero): registers this rank's
// home span [first_page, end_page) read-only and read-write, sends the
// matching key to every rank granted the domain, receives the keys of the
// other ranks if this rank is granted, and returns the key table to put in
// the segment. Collective.
absl::StatusOr<std::vector<uint64_t>*> DomainSegmentKeys(State& s, int domain, uint64_t offset,
                                                         uint64_t first_page, uint64_t end_page);
// After the segment is in the table: attaches its pages to the domain.
absl::Status AttachDomainSegment(State& s, int domain, uint64_t offset, uint64_t length);
// The protect/ id of a collective domain id (InvalidArgument if unknown).
absl::StatusOr<protect::DomainId> LocalDomain(State& s, int domain);

}  // namespace rt
}  // namespace gasp

#endif  // GASP_RUNTIME_STATE_H_

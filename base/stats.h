// Per-rank counters. Cheap relaxed atomic adds on hot paths; printed at
// finalize with GASP_STATS=1, written as JSON with GASP_STATS_FILE, and
// readable at any time with gasp::Stats() (by name) or gasp::StatsReport().
#ifndef GASP_BASE_STATS_H_
#define GASP_BASE_STATS_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace gasp {

enum class Counter : int {
  kReadFaults,       // read faults on non-home pages
  kWriteFaults,      // write faults (twins made)
  kPagesFetched,     // pages brought in by READ (prefetched ones included)
  kPagesPrefetched,  // of those, pages beyond the faulting one
  kBytesFetched,
  kDiffPages,        // dirty pages diffed at a release
  kDiffRuns,         // byte runs written home
  kDiffBytes,
  kInvalidations,    // cached pages dropped at acquires
  kLockAcquires,
  kLockWaitNs,       // time spent in lock acquire
  kLockRetries,      // failed COMPARE_SWAPs on lock words (queueing, test-and-set)
  kBarriers,
  kBarrierWaitNs,
  kAtomics,          // remote atomics issued by the API
  kRemoteOps,        // one-sided ops posted to the transport
  kMessagesSent,
  kRpcsShipped,      // function-shipping calls made
  kPagesBundled,     // pages sent whole in function-shipping bundles
  kPagesInstalled,   // bundled pages installed as cached copies
  kDataShipped,      // calls run here by data shipping
  kCacheChunksRegistered,  // page-cache chunks registered for zero-copy fetches
  kDirtyInvalidations,     // pages another thread held dirty at an acquire: written home, dropped
  kHomeWriteFaults,        // first writes to closed home pages (a write notice each)
  kNoticesSent,            // pages named in this rank's write notices (barriers and log)
  kNoticesReceived,        // pages named in other ranks' notices at this rank's acquires
  kNoticeLogOverflows,     // acquires that found the notice log lapped: whole cache dropped
  kDiffMessages,           // packed diff messages sent to homes
  kDiffMessageBytes,
  kDiffMessagesApplied,    // packed diff messages this rank applied as a home
  kPagesRefetchedAhead,    // pages fetched beyond the window because an acquire had dropped them
  kPagesClaimed,           // first-touch pages this rank became the home of
  kZeroCopies,             // first-touch pages read before anyone wrote them (zeros, no home)
  kTouchDirectoryOps,      // first-touch directory READs and COMPARE_SWAPs
  kHotBlocks,              // shared home blocks written in consecutive intervals: left open
  kReadFaultNs,            // time in read faults that fetched (trap excluded)
  kFetchWaitNs,            // of which waiting for the READs
  kRpcsRefused,            // shipped calls refused for a missing, wrong or replayed credential
  kLockHandoffs,           // locks this rank's threads queued for and were handed by a predecessor
  kPagesBundledAsDiffs,    // pages sent in bundles as the bytes changed since last sent
  kShippedDiffsDropped,    // bundled diffs that did not apply here: the copy dropped instead
  kPagesRefreshed,         // clean copies fetched anew in place at an acquire instead of dropped
  kNoticesCarried,         // pages named in notices sent inside shipped calls instead of the log
  kCount
};

// Name of a counter in snake_case ("read_faults").
const char* CounterName(Counter c);

// Adds `n` to counter `c` (relaxed; async-signal-safe).
void StatAdd(Counter c, uint64_t n = 1);

// Current value.
uint64_t StatGet(Counter c);

// Sets every counter to zero (tests and benchmarks).
void StatsReset();

// One "name value" pair per line, prefixed by `prefix`.
std::string FormatStats(const std::string& prefix);

}  // namespace gasp

#endif  // GASP_BASE_STATS_H_

// Per-rank metrics files: GASP_STATS_FILE (a JSON dump of this rank's
// counters at finalize) and GASP_STATS_INTERVAL (the same file rewritten
// during the run). tools/gasp_stats merges the files. Internal.
#ifndef GASP_RUNTIME_STATS_EXPORT_H_
#define GASP_RUNTIME_STATS_EXPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace gasp {
namespace rt {

// Who writes a dump: the JSON header and the pattern's escapes.
struct StatsIdentity {
  int rank = 0;
  int size = 1;
  std::string host;
  int pid = 0;
};

// `pattern` with %r, %h and %p replaced by rank, host and pid, and %% by %.
// Any other % (or a % at the end) is InvalidArgument naming GASP_STATS_FILE.
absl::StatusOr<std::string> ExpandStatsPattern(absl::string_view pattern,
                                               const StatsIdentity& id);

// The Init-time check of GASP_STATS_FILE: the pattern expands, names a file
// per rank (%r) when there is more than one rank, and its directory exists
// and is writable. Errors are InvalidArgument naming the setting.
absl::Status CheckStatsPattern(absl::string_view pattern, const StatsIdentity& id);

// `text` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view text);

// One dump: {"rank":R,"size":N,"host":"h","pid":P,"elapsed_s":x,
// "final":b,"dump":k,"counters":{"read_faults":n,...}} and a newline.
// `dump` counts this rank's dumps, this one included.
std::string StatsJson(const StatsIdentity& id, double elapsed_s, bool final, uint64_t dump,
                      const std::vector<std::pair<std::string, uint64_t>>& counters);

// Replaces `path` by a file holding `content`: written to a temporary file
// in the same directory, then renamed over `path`, so that a reader sees
// the old file or the new one, never a part. On error nothing is left
// behind and `path` is unchanged.
absl::Status ReplaceFile(const std::string& path, absl::string_view content);

// The dumps of one rank. Thread-compatible: one thread calls Start and
// Finish (the runtime's Init and Finalize).
class StatsExporter {
 public:
  // Validates `pattern` (CheckStatsPattern). `interval` zero: a dump at
  // Finish only. nullptr when `pattern` is empty (no file wanted).
  static absl::StatusOr<std::unique_ptr<StatsExporter>> Create(absl::string_view pattern,
                                                               absl::Duration interval,
                                                               StatsIdentity id);
  ~StatsExporter();  // stops the thread if Finish did not

  // Starts the thread that rewrites the file every interval (if any).
  void Start();
  // Stops that thread (it waits on a notification, so at once) and writes
  // the final dump. The error names GASP_STATS_FILE and the path; callers
  // warn (metrics must not fail the job).
  absl::Status Finish();

  const std::string& path() const { return path_; }
  // Dumps written so far.
  uint64_t dumps() const { return dumps_.load(); }

 private:
  StatsExporter(std::string path, absl::Duration interval, StatsIdentity id);
  absl::Status Dump(bool final);
  void Loop();
  void Stop();

  const std::string path_;
  const absl::Duration interval_;
  const StatsIdentity id_;
  const absl::Time start_;
  std::atomic<uint64_t> dumps_{0};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace rt
}  // namespace gasp

#endif  // GASP_RUNTIME_STATS_EXPORT_H_

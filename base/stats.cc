#include "base/stats.h"

#include "absl/strings/str_format.h"

namespace gasp {
namespace {

constexpr int kNum = static_cast<int>(Counter::kCount);
std::atomic<uint64_t> g_counters[kNum];

const char* const kNames[kNum] = {
    "read_faults",    "write_faults",   "pages_fetched", "pages_prefetched", "bytes_fetched",
    "diff_pages",     "diff_runs",      "diff_bytes",    "invalidations",    "lock_acquires",
    "lock_wait_ns",   "lock_retries",   "barriers",      "barrier_wait_ns",  "atomics",
    "remote_ops",     "messages_sent",  "rpcs_shipped",  "pages_bundled", "pages_installed",
    "data_shipped",   "cache_chunks_registered",
    "dirty_invalidations", "home_write_faults", "notices_sent", "notices_received",
    "notice_log_overflows", "diff_messages", "diff_message_bytes", "diff_messages_applied",
    "pages_refetched_ahead",
    "pages_claimed", "zero_copies", "touch_directory_ops",
    "hot_blocks", "read_fault_ns", "fetch_wait_ns", "rpcs_refused", "lock_handoffs",
    "pages_bundled_as_diffs", "shipped_diffs_dropped",
    "pages_refreshed", "notices_carried"};

}  // namespace

const char* CounterName(Counter c) { return kNames[static_cast<int>(c)]; }

void StatAdd(Counter c, uint64_t n) {
  g_counters[static_cast<int>(c)].fetch_add(n, std::memory_order_relaxed);
}

uint64_t StatGet(Counter c) {
  return g_counters[static_cast<int>(c)].load(std::memory_order_relaxed);
}

void StatsReset() {
  for (auto& c : g_counters) c.store(0, std::memory_order_relaxed);
}

std::string FormatStats(const std::string& prefix) {
  std::string out;
  for (int i = 0; i < kNum; ++i) {
    absl::StrAppendFormat(&out, "%s%-24s %d\n", prefix, kNames[i], g_counters[i].load());
  }
  return out;
}

}  // namespace gasp

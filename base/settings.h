// The one table of GASP_* settings. It drives environment parsing, the
// `gasp_info -c` listing and the generated docs/settings.md.
//
// Precedence: options passed to gasp::Init > environment > default.
#ifndef GASP_BASE_SETTINGS_H_
#define GASP_BASE_SETTINGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gasp {

// Typed values of every setting. Field comments name the variable.
struct Config {
  uint64_t base = 0;               // GASP_BASE
  uint64_t size_bytes = 0;         // GASP_SIZE
  uint64_t heap_bytes = 0;         // GASP_HEAP_SIZE
  std::string transport;           // GASP_TRANSPORT
  absl::Duration timeout;          // GASP_TIMEOUT
  std::string log_level;           // GASP_LOG_LEVEL
  std::string log_file;            // GASP_LOG_FILE
  bool stats = false;              // GASP_STATS
  std::string stats_file;          // GASP_STATS_FILE
  absl::Duration stats_interval;   // GASP_STATS_INTERVAL (zero: off)
  int64_t prefetch_pages = 0;      // GASP_PREFETCH_PAGES
  int64_t prefetch_max_pages = 0;  // GASP_PREFETCH_MAX_PAGES
  int64_t max_dirty_pages = 0;     // GASP_MAX_DIRTY_PAGES
  int64_t notice_log_entries = 0;  // GASP_NOTICE_LOG_ENTRIES
  int64_t lock_nodes = 0;          // GASP_LOCK_NODES
  bool packed_diffs = true;        // GASP_PACKED_DIFFS
  int64_t diff_direct_bytes = 0;   // GASP_DIFF_DIRECT_BYTES
  int64_t home_open_pages = 0;     // GASP_HOME_OPEN_PAGES
  int64_t guard_pages = 0;         // GASP_GUARD_PAGES
  std::string wait_mode;           // GASP_WAIT_MODE
  int64_t spin_us = 0;             // GASP_SPIN_US
  std::string boot;                // GASP_BOOT
  std::string coordinator;         // GASP_COORDINATOR
  std::string tcp_addr;            // GASP_TCP_ADDR
  int64_t tcp_port = 0;            // GASP_TCP_PORT
  std::string net_devices;         // GASP_NET_DEVICES
  int64_t ib_gid_index = -1;       // GASP_IB_GID_INDEX
  int64_t ib_timeout = 0;          // GASP_IB_TIMEOUT
  int64_t ib_retry_count = 0;      // GASP_IB_RETRY_COUNT
  std::string home_policy;         // GASP_HOME_POLICY
  std::string protect;             // GASP_PROTECT
  bool pkeys_strict = false;       // GASP_PKEYS_STRICT
  uint64_t cache_reg_chunk = 0;    // GASP_CACHE_REG_CHUNK
  int64_t cyclic_block_pages = 0;  // GASP_CYCLIC_BLOCK_PAGES
  std::string nameserver;          // GASP_NAMESERVER
  std::string ns_ca;               // GASP_NS_CA
  std::string ns_cert;             // GASP_NS_CERT
  std::string ns_key;              // GASP_NS_KEY
  std::string ns_principal;        // GASP_NS_PRINCIPAL
  int64_t ship_copy_pages = 0;     // GASP_SHIP_COPY_PAGES
};

enum class SettingType { kBool, kInt, kSize, kAddress, kDuration, kString, kChoice };

// One row of the table.
struct SettingSpec {
  const char* name;           // environment variable, e.g. "GASP_SIZE"
  SettingType type;
  const char* default_value;  // as text, parsed like an env value
  const char* doc;            // one or two sentences for users
  const char* choices;        // kChoice: "a|b|c"; otherwise ""
  int64_t min_value;          // kInt/kSize: inclusive bounds; kDuration: in
  int64_t max_value;          // milliseconds (min 0 accepts "0": off)
};

// The table, in documentation order.
const std::vector<SettingSpec>& AllSettings();

// Looks a row up by name; nullptr if unknown.
const SettingSpec* FindSetting(const std::string& name);

// Builds a Config from defaults, then `getenv`, then `overrides` (keyed by
// variable name). Every malformed or out-of-range value is an
// InvalidArgument error naming the variable, the value and what is
// accepted. Unknown GASP_* names in `overrides` are errors; unknown ones in
// the environment are returned in `unknown_env` (callers warn) when non-null.
absl::StatusOr<Config> LoadConfig(const std::map<std::string, std::string>& overrides,
                                  const std::function<const char*(const char*)>& getenv_fn,
                                  std::vector<std::string>* unknown_env = nullptr);

// LoadConfig with the process environment.
absl::StatusOr<Config> LoadConfigFromEnv(const std::map<std::string, std::string>& overrides = {});

// Parses helpers, exposed for tests and for launcher variables.
absl::StatusOr<uint64_t> ParseSize(const std::string& text);  // 4096, 64k, 16M, 2G, 1T, 0x...
absl::StatusOr<absl::Duration> ParseDurationSetting(const std::string& text);  // 30s, 500ms, 2m, 5

// Renders the effective value of `spec` in `config` as text.
std::string FormatSetting(const Config& config, const SettingSpec& spec);

// Markdown reference of the table (the content of docs/settings.md).
std::string SettingsMarkdown();

// Launcher-provided variables (set by gasprun, not by users); they are
// not settings but must not be reported as unknown.
const std::vector<std::string>& LauncherVariables();

}  // namespace gasp

#endif  // GASP_BASE_SETTINGS_H_

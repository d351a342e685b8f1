#include "base/settings.h"

#include <cstdlib>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

extern char** environ;

namespace gasp {
namespace {

using Field = std::variant<uint64_t Config::*, int64_t Config::*, bool Config::*,
                           std::string Config::*, absl::Duration Config::*>;

struct Row {
  SettingSpec spec;
  Field field;
};

constexpr int64_t kTiB = int64_t{1} << 40;
constexpr int64_t kWeekMs = int64_t{7} * 24 * 3600 * 1000;

// The table. Keep the docs short and say which knob to change for what.
const std::vector<Row>& Rows() {
  static const std::vector<Row>* rows = new std::vector<Row>{
      {{"GASP_BASE", SettingType::kAddress, "0x200000000000",
        "Virtual address where the global range starts, identical on every rank. Change it when "
        "init reports a collision with another mapping.",
        "", 0x10000000, 0x7f0000000000},
       &Config::base},
      {{"GASP_SIZE", SettingType::kSize, "64G",
        "Size of the global range (virtual; memory is used only for what is allocated and "
        "touched). Raise it when allocations report the range exhausted.",
        "", 16 << 20, 64 * kTiB},
       &Config::size_bytes},
      {{"GASP_HEAP_SIZE", SettingType::kSize, "1G",
        "Per-rank heap for gasp::New, carved from the top of the range (homed at its rank). "
        "All heaps together may take at most half of GASP_SIZE.",
        "", 1 << 20, 32 * kTiB},
       &Config::heap_bytes},
      {{"GASP_TRANSPORT", SettingType::kChoice, "auto",
        "Transport for one-sided operations and messages. auto picks verbs where an RDMA "
        "device has an active port, else tcp (the choice and the reason are logged at info). "
        "shm: shared-memory rings between the ranks of one host, for jobs whose ranks all "
        "run on one machine (a rank on another host is refused at connect).",
        "auto|tcp|verbs|shm", 0, 0},
       &Config::transport},
      {{"GASP_TIMEOUT", SettingType::kDuration, "60s",
        "Deadline for every blocking wait (rendezvous, remote operations, locks, barriers). "
        "A peer that does not answer within it is reported by rank and host.",
        "", 1, kWeekMs},
       &Config::timeout},
      {{"GASP_LOG_LEVEL", SettingType::kChoice, "warn", "Log threshold.",
        "error|warn|info|debug|trace", 0, 0},
       &Config::log_level},
      {{"GASP_LOG_FILE", SettingType::kString, "",
        "Log file instead of stderr; %h, %p and %r expand to host, pid and rank.", "", 0, 0},
       &Config::log_file},
      {{"GASP_STATS", SettingType::kBool, "0",
        "Print the per-rank counters (faults, fetches, diffs, locks, barriers) at finalize.", "",
        0, 0},
       &Config::stats},
      {{"GASP_STATS_FILE", SettingType::kString, "",
        "Each rank writes its counters as JSON to this file at finalize (replaced whole, never "
        "half written); %r, %h and %p expand to rank, host and pid, %% to %. With more than one "
        "rank it must contain %r. tools/gasp_stats merges the files (docs/running.md, "
        "\"Metrics\").",
        "", 0, 0},
       &Config::stats_file},
      {{"GASP_STATS_INTERVAL", SettingType::kDuration, "0",
        "Also rewrite GASP_STATS_FILE this often during the run (\"final\":false), so that long "
        "runs can be watched. 0: only at finalize. At least 10ms; requires GASP_STATS_FILE.",
        "", 0, kWeekMs},
       &Config::stats_interval},
      {{"GASP_PREFETCH_PAGES", SettingType::kInt, "4",
        "Extra pages fetched after a read-faulting page, in the same READ, when they are "
        "invalid and homed at the same rank. 0 disables prefetch.",
        "", 0, 1024},
       &Config::prefetch_pages},
      {{"GASP_PREFETCH_MAX_PAGES", SettingType::kInt, "64",
        "Sequential read faults (each on the page after the previous fetch from the same home) "
        "double the prefetch window up to this many pages; any other fault resets it to "
        "GASP_PREFETCH_PAGES.",
        "", 0, 1024},
       &Config::prefetch_max_pages},
      {{"GASP_MAX_DIRTY_PAGES", SettingType::kInt, "65536",
        "Twins kept before dirty pages are written home early (a release of the oldest "
        "writes). Bounds the twin memory at this many pages.",
        "", 16, 1 << 24},
       &Config::max_dirty_pages},
      {{"GASP_NOTICE_LOG_ENTRIES", SettingType::kInt, "65536",
        "Entries (24 bytes each, homed at rank 0) of the ring that carries write notices from "
        "releases to the acquires of locks and atomics, so that those acquires invalidate only "
        "pages other ranks wrote. A rank that falls this far behind drops its whole cache "
        "instead (counter notice_log_overflows). 0: no log; every lock or atomic acquire drops "
        "the whole cache.",
        "", 0, 1 << 24},
       &Config::notice_log_entries},
      {{"GASP_LOCK_NODES", SettingType::kInt, "1024",
        "Queue nodes (64 bytes each, registered at their rank) per rank for global locks: "
        "every thread needs one per lock it holds or waits for, so this bounds the locks the "
        "threads of one rank hold or await at once. Every rank must use the same value.",
        "", 1, 1 << 20},
       &Config::lock_nodes},
      {{"GASP_PACKED_DIFFS", SettingType::kBool, "1",
        "Send the short byte runs of a release to each home in one message, applied by the "
        "home's diff thread, instead of one one-sided WRITE per run. 0: WRITEs only.",
        "", 0, 0},
       &Config::packed_diffs},
      {{"GASP_DIFF_DIRECT_BYTES", SettingType::kInt, "1024",
        "Byte runs of a diff at least this long go home as one-sided WRITEs (zero copy, no CPU "
        "at the home); shorter ones are packed (GASP_PACKED_DIFFS).",
        "", 1, 1 << 20},
       &Config::diff_direct_bytes},
      {{"GASP_HOME_OPEN_PAGES", SettingType::kInt, "64",
        "A rank's own (home) pages are read-only until written after each release, so that "
        "the write is noticed; one write fault opens this many aligned pages at once and "
        "notes them all as written. Larger: fewer faults for codes that write their home data "
        "densely; smaller: fewer needless invalidations at other ranks for sparse writers.",
        "", 1, 512},
       &Config::home_open_pages},
      {{"GASP_REFRESH_PAGES", SettingType::kInt, "8192",
        "At an acquire of a barrier or lock, clean cached pages that its write notices name "
        "and that this rank read again after an earlier acquire dropped them are fetched anew "
        "in place (they stay readable: no protection change, no fault) instead of being "
        "dropped; at most this many pages per acquire, the rest are dropped. Every 8th such "
        "acquire refreshes none, so pages no longer read stop being refreshed. 0: always drop.",
        "", 0, 1 << 24},
       &Config::refresh_pages},
      {{"GASP_GUARD_PAGES", SettingType::kInt, "0",
        "Debugging: leave this many unallocated pages after every collective allocation, so "
        "that an access past the end of one faults with the allocation named instead of "
        "silently landing in the next one. Every rank must use the same value.",
        "", 0, 1 << 20},
       &Config::guard_pages},
      {{"GASP_WAIT_MODE", SettingType::kChoice, "adaptive",
        "How waiting threads (completions, messages, progress) wait: adaptive spins "
        "GASP_SPIN_US then blocks; poll never blocks, and the tcp progress thread keeps polling "
        "for GASP_SPIN_US after each event (dedicated cores only); block never spins "
        "(oversubscribed nodes).",
        "adaptive|poll|block", 0, 0},
       &Config::wait_mode},
      {{"GASP_SPIN_US", SettingType::kInt, "100",
        "Microseconds an adaptive wait spins before it blocks (and, with GASP_WAIT_MODE=poll, "
        "how long the tcp progress thread polls after an event). Spinning saves a wake-up per "
        "remote operation. Unless set, it is 0 when this host's ranks outnumber its cores "
        "(a spinning waiter would hold the core the rank it waits for needs).",
        "", 0, 1000000},
       &Config::spin_us},
      {{"GASP_BOOT", SettingType::kChoice, "auto",
        "Bootstrap: auto uses gasprun's variables, then PMIx when PMIX_NAMESPACE is set, then a "
        "TCP rendezvous at GASP_COORDINATOR, else a single rank.",
        "auto|pmix|tcp|single", 0, 0},
       &Config::boot},
      {{"GASP_COORDINATOR", SettingType::kString, "",
        "host:port of the TCP rendezvous. gasprun sets it; with mpirun/srun without PMIx, set it "
        "to an address of rank 0's host and a free port (rank 0 listens there).",
        "", 0, 0},
       &Config::coordinator},
      {{"GASP_TCP_ADDR", SettingType::kString, "",
        "IPv4 address the tcp transport and the function-shipping server listen on and "
        "advertise. Default: the address this rank uses to reach the coordinator, else the "
        "first non-loopback interface's (127.0.0.1 without one). 0.0.0.0: listen on every "
        "interface (advertising the default).",
        "", 0, 0},
       &Config::tcp_addr},
      {{"GASP_TCP_PORT", SettingType::kInt, "0", "TCP port of the tcp transport (0: any free port).",
        "", 0, 65535},
       &Config::tcp_port},
      {{"GASP_NET_DEVICES", SettingType::kString, "",
        "RDMA devices and ports for the verbs transport, e.g. mlx5_0:1,mlx5_1:1; the ranks of "
        "a host are spread over the list; ^mlx5_1 excludes a device. Empty: every device with "
        "an active port.",
        "", 0, 0},
       &Config::net_devices},
      {{"GASP_IB_GID_INDEX", SettingType::kInt, "-1",
        "GID table index for RoCE. -1 picks per node: RoCE v2 with an IPv4 address first. "
        "gasp_info -d lists the GIDs.",
        "", -1, 65535},
       &Config::ib_gid_index},
      {{"GASP_IB_TIMEOUT", SettingType::kInt, "14",
        "Local ACK timeout exponent of verbs queue pairs (4.096 us x 2^n). Raise it on lossy or "
        "congested fabrics before a live peer is declared unreachable.",
        "", 1, 31},
       &Config::ib_timeout},
      {{"GASP_IB_RETRY_COUNT", SettingType::kInt, "7",
        "Transport retries of verbs queue pairs before an operation fails with \"peer "
        "unreachable\" (the peer is then taken as dead).",
        "", 0, 7},
       &Config::ib_retry_count},
      {{"GASP_HOME_POLICY", SettingType::kChoice, "block",
        "Default home policy of collective allocations: block (contiguous share per rank), "
        "cyclic (blocks of GASP_CYCLIC_BLOCK_PAGES dealt round-robin) or first_touch (each "
        "page's home is the first rank that writes it; docs/running.md).",
        "block|cyclic|first_touch", 0, 0},
       &Config::home_policy},
      {{"GASP_CYCLIC_BLOCK_PAGES", SettingType::kInt, "16",
        "Pages per block of the cyclic home policy. Larger blocks mean fewer mappings "
        "(vm.max_map_count).",
        "", 1, 1 << 20},
       &Config::cyclic_block_pages},
      {{"GASP_CACHE_REG_CHUNK", SettingType::kSize, "2M",
        "verbs: the first fetch into each chunk of this many bytes of a rank's page cache "
        "registers the chunk in the background, so that later fetches into it need no bounce "
        "copy. Registration pins the chunk (counts against ulimit -l; memory grows by chunk). "
        "0: never (every fetch is copied from a bounce buffer).",
        "", 0, 1 << 30},
       &Config::cache_reg_chunk},
      {{"GASP_PROTECT", SettingType::kChoice, "auto",
        "Protection-domain backend: pkeys (memory protection keys: per-thread rights, a "
        "domain switch is one WRPKRU), mprotect (process-wide fallback for CPUs without "
        "PKU: correct, slower, isolates only gate users), or auto (pkeys when the CPU and "
        "kernel support it). See docs/protection.md.",
        "auto|pkeys|mprotect", 0, 0},
       &Config::protect},
      {{"GASP_PKEYS_STRICT", SettingType::kBool, "0",
        "With the pkeys backend, refuse to start when executable code outside gasp's gate "
        "can write PKRU (a WRPKRU or XRSTOR byte sequence, ERIM's check; the C library's "
        "pkey_set and the loader's trampolines excepted). 0: report such code as a warning. "
        "See docs/protection.md.",
        "", 0, 0},
       &Config::pkeys_strict},
      {{"GASP_NAMESERVER", SettingType::kString, "",
        "host:port of the name server (services register and bind there). gasprun starts one on "
        "127.0.0.1 and sets it unless it is already set or --no-nameserver is given. Empty: no "
        "name server.",
        "", 0, 0},
       &Config::nameserver},
      {{"GASP_NS_CA", SettingType::kString, "",
        "PEM file of the CA that signed the name server's certificate, and the ranks' "
        "(function-shipped calls use the same mutual TLS). GASP_NS_CA, GASP_NS_CERT and "
        "GASP_NS_KEY are set together; all empty means insecure, which works only with a "
        "loopback GASP_NAMESERVER (development).",
        "", 0, 0},
       &Config::ns_ca},
      {{"GASP_NS_CERT", SettingType::kString, "",
        "PEM certificate of this process for the name server and for function-shipped calls "
        "(both directions: it needs extendedKeyUsage serverAuth and clientAuth); its subject "
        "is the principal that services trust (or not).",
        "", 0, 0},
       &Config::ns_cert},
      {{"GASP_NS_KEY", SettingType::kString, "",
        "PEM private key of GASP_NS_CERT.", "", 0, 0},
       &Config::ns_key},
      {{"GASP_NS_PRINCIPAL", SettingType::kString, "",
        "Principal this process presents to an insecure (loopback, development) name server. "
        "Empty: uid:<uid>/rank<rank>. Ignored with mutual TLS, where the principal is the "
        "subject of GASP_NS_CERT.",
        "", 0, 0},
       &Config::ns_principal},
      {{"GASP_SHIP_COPY_PAGES", SettingType::kInt, "8192",
        "Function shipping: copies (4 KiB each, over all destination ranks) of the pages this "
        "rank last sent in call bundles, so that a page changed since is sent as the bytes "
        "that differ from the copy the receiver holds (docs/services.md). Allocated as "
        "needed; when all are in use, the least recently sent is given up and its page goes "
        "in full the next time it changes. 0: changed pages always go in full.",
        "", 0, 1 << 22},
       &Config::ship_copy_pages},
  };
  return *rows;
}

absl::Status Invalid(const SettingSpec& spec, const std::string& value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s=%s is not valid: %s (default %s)", spec.name, value, why,
                      spec.default_value));
}

// "30s", "500ms", "2m", a number of seconds, or 0; never negative.
absl::StatusOr<absl::Duration> ParseDurationText(const std::string& text) {
  std::string t(absl::StripAsciiWhitespace(text));
  double secs;
  absl::Duration d;
  if (absl::SimpleAtod(t, &secs)) {
    d = absl::Seconds(secs);
  } else if (!absl::ParseDuration(t, &d)) {
    return absl::InvalidArgumentError(
        "expected a duration like 30s, 500ms, 2m or a number of seconds");
  }
  if (d < absl::ZeroDuration()) return absl::InvalidArgumentError("must not be negative");
  return d;
}

absl::Status Apply(const Row& row, const std::string& value, Config* config) {
  const SettingSpec& spec = row.spec;
  std::string v(absl::StripAsciiWhitespace(value));
  switch (spec.type) {
    case SettingType::kBool: {
      std::string l = absl::AsciiStrToLower(v);
      bool b;
      if (l == "1" || l == "true" || l == "yes" || l == "on") {
        b = true;
      } else if (l == "0" || l == "false" || l == "no" || l == "off" || l.empty()) {
        b = false;
      } else {
        return Invalid(spec, value, "expected 0/1, true/false, yes/no or on/off");
      }
      config->*std::get<bool Config::*>(row.field) = b;
      return absl::OkStatus();
    }
    case SettingType::kInt: {
      int64_t n;
      if (!absl::SimpleAtoi(v, &n)) return Invalid(spec, value, "expected an integer");
      if (n < spec.min_value || n > spec.max_value) {
        return Invalid(spec, value,
                       absl::StrFormat("must be in [%d, %d]", spec.min_value, spec.max_value));
      }
      config->*std::get<int64_t Config::*>(row.field) = n;
      return absl::OkStatus();
    }
    case SettingType::kSize:
    case SettingType::kAddress: {
      absl::StatusOr<uint64_t> n = ParseSize(v);
      if (!n.ok()) return Invalid(spec, value, n.status().message());
      if (*n < static_cast<uint64_t>(spec.min_value) || *n > static_cast<uint64_t>(spec.max_value)) {
        return Invalid(spec, value,
                       absl::StrFormat("must be in [%#x, %#x]", spec.min_value, spec.max_value));
      }
      if (*n % 4096 != 0) return Invalid(spec, value, "must be a multiple of the 4 KiB page size");
      config->*std::get<uint64_t Config::*>(row.field) = *n;
      return absl::OkStatus();
    }
    case SettingType::kDuration: {
      absl::StatusOr<absl::Duration> d = ParseDurationText(v);
      if (!d.ok()) return Invalid(spec, value, d.status().message());
      const absl::Duration lo = absl::Milliseconds(spec.min_value);
      const absl::Duration hi = absl::Milliseconds(spec.max_value);
      if (*d < lo || *d > hi) {
        return Invalid(spec, value,
                       absl::StrFormat("must be in [%s, %s]", absl::FormatDuration(lo),
                                       absl::FormatDuration(hi)));
      }
      config->*std::get<absl::Duration Config::*>(row.field) = *d;
      return absl::OkStatus();
    }
    case SettingType::kChoice: {
      std::string l = absl::AsciiStrToLower(v);
      for (absl::string_view c : absl::StrSplit(spec.choices, '|')) {
        if (l == c) {
          config->*std::get<std::string Config::*>(row.field) = l;
          return absl::OkStatus();
        }
      }
      return Invalid(spec, value, absl::StrCat("expected one of ", spec.choices));
    }
    case SettingType::kString:
      config->*std::get<std::string Config::*>(row.field) = v;
      return absl::OkStatus();
  }
  return absl::InternalError("unreachable");
}

}  // namespace

const std::vector<SettingSpec>& AllSettings() {
  static const std::vector<SettingSpec>* specs = [] {
    auto* v = new std::vector<SettingSpec>;
    for (const Row& r : Rows()) v->push_back(r.spec);
    return v;
  }();
  return *specs;
}

const SettingSpec* FindSetting(const std::string& name) {
  for (const Row& r : Rows()) {
    if (name == r.spec.name) return &r.spec;
  }
  return nullptr;
}

const std::vector<std::string>& LauncherVariables() {
  static const std::vector<std::string>* v = new std::vector<std::string>{
      "GASP_RANK", "GASP_NRANKS", "GASP_LOCAL_RANK", "GASP_LOCAL_NRANKS", "GASP_LAUNCHER",
      "GASP_JOB_ID", "GASP_JOB_SECRET_FD"};
  return *v;
}

absl::StatusOr<uint64_t> ParseSize(const std::string& text) {
  std::string t(absl::StripAsciiWhitespace(text));
  if (t.empty()) return absl::InvalidArgumentError("empty value");
  if (absl::StartsWithIgnoreCase(t, "0x")) {
    uint64_t n;
    if (!absl::SimpleHexAtoi(t, &n)) return absl::InvalidArgumentError("bad hexadecimal number");
    return n;
  }
  uint64_t mult = 1;
  char last = absl::ascii_tolower(t.back());
  std::string digits = t;
  if (last == 'b') {  // allow "16MB", "16MiB"
    digits.pop_back();
    if (!digits.empty() && absl::ascii_tolower(digits.back()) == 'i') digits.pop_back();
    if (digits.empty()) return absl::InvalidArgumentError("no number");
    last = absl::ascii_tolower(digits.back());
  }
  switch (last) {
    case 'k': mult = uint64_t{1} << 10; break;
    case 'm': mult = uint64_t{1} << 20; break;
    case 'g': mult = uint64_t{1} << 30; break;
    case 't': mult = uint64_t{1} << 40; break;
    default: break;
  }
  if (mult != 1) digits.pop_back();
  uint64_t n;
  if (!absl::SimpleAtoi(digits, &n)) {
    return absl::InvalidArgumentError("expected a size like 4096, 64k, 16M, 2G, 1T or 0x1000");
  }
  if (n > UINT64_MAX / mult) return absl::InvalidArgumentError("size overflows 64 bits");
  return n * mult;
}

absl::StatusOr<absl::Duration> ParseDurationSetting(const std::string& text) {
  GASP_ASSIGN_OR_RETURN(absl::Duration d, ParseDurationText(text));
  if (d <= absl::ZeroDuration()) return absl::InvalidArgumentError("must be positive");
  if (d > absl::Hours(24 * 7)) return absl::InvalidArgumentError("must be at most a week");
  return d;
}

absl::StatusOr<Config> LoadConfig(const std::map<std::string, std::string>& overrides,
                                  const std::function<const char*(const char*)>& getenv_fn,
                                  std::vector<std::string>* unknown_env) {
  Config config;
  for (const Row& row : Rows()) {
    GASP_RETURN_IF_ERROR(Apply(row, row.spec.default_value, &config));
    const char* env = getenv_fn(row.spec.name);
    if (env != nullptr) GASP_RETURN_IF_ERROR(Apply(row, env, &config));
  }
  for (const auto& [name, value] : overrides) {
    const Row* found = nullptr;
    for (const Row& row : Rows()) {
      if (name == row.spec.name) found = &row;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown setting '", name, "' passed to gasp::Init (see gasp_info -c)"));
    }
    GASP_RETURN_IF_ERROR(Apply(*found, value, &config));
  }
  if (unknown_env != nullptr) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      absl::string_view kv(*e);
      if (!absl::StartsWith(kv, "GASP_")) continue;
      std::string name(kv.substr(0, kv.find('=')));
      bool known = FindSetting(name) != nullptr;
      for (const std::string& l : LauncherVariables()) known = known || l == name;
      if (!known) unknown_env->push_back(name);
    }
  }
  if (config.heap_bytes > config.size_bytes / 2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_HEAP_SIZE=%d is more than half of GASP_SIZE=%d: raise GASP_SIZE or lower "
        "GASP_HEAP_SIZE",
        config.heap_bytes, config.size_bytes));
  }
  if (config.stats_interval > absl::ZeroDuration() && config.stats_file.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_STATS_INTERVAL=%s needs GASP_STATS_FILE (the file the periodic dumps rewrite): "
        "set GASP_STATS_FILE, e.g. to stats.%%r.json, or unset GASP_STATS_INTERVAL",
        absl::FormatDuration(config.stats_interval)));
  }
  // Each dump writes and renames a file: more often would be I/O, not metrics.
  if (config.stats_interval > absl::ZeroDuration() &&
      config.stats_interval < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_STATS_INTERVAL=%s is below 10ms: raise it, or 0 for a dump at finalize only",
        absl::FormatDuration(config.stats_interval)));
  }
  if (config.base + config.size_bytes > 0x7f0000000000ull) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_BASE=%#x + GASP_SIZE=%#x ends at %#x, above the user address space limit "
        "0x7f0000000000: lower GASP_BASE or GASP_SIZE",
        config.base, config.size_bytes, config.base + config.size_bytes));
  }
  return config;
}

absl::StatusOr<Config> LoadConfigFromEnv(const std::map<std::string, std::string>& overrides) {
  return LoadConfig(overrides, [](const char* n) { return std::getenv(n); });
}

std::string FormatSetting(const Config& config, const SettingSpec& spec) {
  for (const Row& row : Rows()) {
    if (&row.spec != &spec && std::string(row.spec.name) != spec.name) continue;
    switch (spec.type) {
      case SettingType::kBool:
        return config.*std::get<bool Config::*>(row.field) ? "1" : "0";
      case SettingType::kInt:
        return absl::StrCat(config.*std::get<int64_t Config::*>(row.field));
      case SettingType::kSize:
        return absl::StrCat(config.*std::get<uint64_t Config::*>(row.field));
      case SettingType::kAddress:
        return absl::StrFormat("%#x", config.*std::get<uint64_t Config::*>(row.field));
      case SettingType::kDuration:
        return absl::FormatDuration(config.*std::get<absl::Duration Config::*>(row.field));
      case SettingType::kString:
      case SettingType::kChoice:
        return config.*std::get<std::string Config::*>(row.field);
    }
  }
  return "";
}

std::string SettingsMarkdown() {
  static const char* kTypeNames[] = {"bool", "integer", "size", "address", "duration", "string",
                                     "choice"};
  std::string out =
      "# Settings reference\n\n"
      "<!-- Generated from base/settings.cc by `gasp_info --markdown`; "
      "//base:settings_doc_test fails when this file is stale. -->\n\n"
      "Every setting is an environment variable; options passed to `gasp::Init` override the\n"
      "environment, which overrides the default. `gasp_info -c` prints the effective values.\n"
      "Sizes take k/M/G/T suffixes (binary) or hex; durations take `30s`, `500ms`, `2m` or a\n"
      "plain number of seconds. A malformed or out-of-range value stops `gasp::Init` with an\n"
      "error naming the variable.\n\n"
      "| Variable | Type | Default | Description |\n|---|---|---|---|\n";
  for (const SettingSpec& s : AllSettings()) {
    std::string type = kTypeNames[static_cast<int>(s.type)];
    if (s.type == SettingType::kChoice) type = absl::StrCat("`", s.choices, "`");
    if (s.type == SettingType::kInt) type = absl::StrFormat("integer %d..%d", s.min_value, s.max_value);
    std::string def = *s.default_value ? absl::StrCat("`", s.default_value, "`") : "(empty)";
    absl::StrAppend(&out, "| `", s.name, "` | ", type, " | ", def, " | ", s.doc, " |\n");
  }
  absl::StrAppend(&out,
                  "\n## Set by launchers\n\n"
                  "`gasprun` passes these to each rank; users do not set them: ",
                  absl::StrJoin(LauncherVariables(), ", ",
                                [](std::string* o, const std::string& s) {
                                  absl::StrAppend(o, "`", s, "`");
                                }),
                  ".\n");
  return out;
}

}  // namespace gasp

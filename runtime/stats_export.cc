#include "runtime/stats_export.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "base/stats.h"
#include "base/status.h"
#include "base/thread.h"
#include "gasp/gasp.h"

namespace gasp {

std::vector<std::pair<std::string, uint64_t>> Stats() {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (int i = 0; i < static_cast<int>(Counter::kCount); ++i) {
    const Counter c = static_cast<Counter>(i);
    out.emplace_back(CounterName(c), StatGet(c));
  }
  return out;
}

namespace rt {
namespace {

// Expands the pattern; `*per_rank` tells whether it used %r.
absl::StatusOr<std::string> Expand(absl::string_view pattern, const StatsIdentity& id,
                                   bool* per_rank) {
  std::string out;
  *per_rank = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      out.push_back(pattern[i]);
      continue;
    }
    const char c = i + 1 < pattern.size() ? pattern[++i] : '\0';
    switch (c) {
      case 'r': absl::StrAppend(&out, id.rank); *per_rank = true; break;
      case 'h': out += id.host; break;
      case 'p': absl::StrAppend(&out, id.pid); break;
      case '%': out.push_back('%'); break;
      default:
        return absl::InvalidArgumentError(absl::StrFormat(
            "GASP_STATS_FILE=%s: unknown escape '%%%s' (use %%r rank, %%h host, %%p pid, "
            "%%%% for a literal %%)",
            pattern, c == '\0' ? std::string() : std::string(1, c)));
    }
  }
  return out;
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ExpandStatsPattern(absl::string_view pattern,
                                               const StatsIdentity& id) {
  bool per_rank;
  return Expand(pattern, id, &per_rank);
}

absl::Status CheckStatsPattern(absl::string_view pattern, const StatsIdentity& id) {
  bool per_rank;
  GASP_ASSIGN_OR_RETURN(std::string path, Expand(pattern, id, &per_rank));
  if (id.size > 1 && !per_rank) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_STATS_FILE=%s has no %%r: the %d ranks would overwrite each other's file; put "
        "%%r in the name, e.g. stats.%%r.json",
        pattern, id.size));
  }
  if (path.empty() || path.back() == '/') {
    return absl::InvalidArgumentError(
        absl::StrFormat("GASP_STATS_FILE=%s names a directory, not a file", pattern));
  }
  const std::string dir = DirOf(path);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_STATS_FILE=%s: directory '%s' does not exist (create it, or point "
        "GASP_STATS_FILE elsewhere)",
        pattern, dir));
  }
  if (access(dir.c_str(), W_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_STATS_FILE=%s: directory '%s' is not writable: %s", pattern, dir,
        std::strerror(errno)));
  }
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GASP_STATS_FILE=%s: '%s' is a directory", pattern, path));
  }
  return absl::OkStatus();
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    const unsigned char u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        // Other control characters have no short form. Bytes above 0x7f
        // pass as they are (UTF-8 stays UTF-8).
        if (u < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", u);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string StatsJson(const StatsIdentity& id, double elapsed_s, bool final, uint64_t dump,
                      const std::vector<std::pair<std::string, uint64_t>>& counters) {
  std::string out = absl::StrFormat(
      "{\"rank\":%d,\"size\":%d,\"host\":%s,\"pid\":%d,\"elapsed_s\":%.3f,\"final\":%s,"
      "\"dump\":%d,\"counters\":{",
      id.rank, id.size, JsonString(id.host), id.pid, elapsed_s, final ? "true" : "false", dump);
  for (size_t i = 0; i < counters.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", JsonString(counters[i].first), ":",
                    counters[i].second);
  }
  out += "}}\n";
  return out;
}

absl::Status ReplaceFile(const std::string& path, absl::string_view content) {
  // Beside the target: rename(2) is atomic only within one file system. The
  // pid keeps two writers of one directory apart. No fsync: the point is
  // that readers never see a part, not durability across a crash, and a
  // sync per dump would cost on parallel file systems.
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(absl::StrCat("creating ", tmp), errno);
  absl::Status st = WriteAll(fd, content);
  // close() reports delayed write errors on NFS and Lustre.
  if (close(fd) != 0 && st.ok()) st = ErrnoError(absl::StrCat("closing ", tmp), errno);
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoError(absl::StrCat("renaming ", tmp, " to ", path), errno);
  }
  if (!st.ok()) unlink(tmp.c_str());
  return st;
}

absl::StatusOr<std::unique_ptr<StatsExporter>> StatsExporter::Create(absl::string_view pattern,
                                                                     absl::Duration interval,
                                                                     StatsIdentity id) {
  if (pattern.empty()) return nullptr;
  GASP_RETURN_IF_ERROR(CheckStatsPattern(pattern, id));
  GASP_ASSIGN_OR_RETURN(std::string path, ExpandStatsPattern(pattern, id));
  return std::unique_ptr<StatsExporter>(
      new StatsExporter(std::move(path), interval, std::move(id)));
}

StatsExporter::StatsExporter(std::string path, absl::Duration interval, StatsIdentity id)
    : path_(std::move(path)), interval_(interval), id_(std::move(id)), start_(absl::Now()) {}

StatsExporter::~StatsExporter() { Stop(); }

void StatsExporter::Start() {
  if (interval_ > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

absl::Status StatsExporter::Finish() {
  Stop();
  return Dump(true);
}

void StatsExporter::Stop() {
  if (!thread_.joinable()) return;
  stop_.Notify();
  thread_.join();
}

absl::Status StatsExporter::Dump(bool final) {
  const double elapsed_s = absl::ToDoubleSeconds(absl::Now() - start_);
  const uint64_t n = dumps_.load() + 1;
  absl::Status st = ReplaceFile(path_, StatsJson(id_, elapsed_s, final, n, Stats()));
  if (!st.ok()) return Annotate(st, absl::StrCat("GASP_STATS_FILE: writing ", path_));
  dumps_.store(n);
  return absl::OkStatus();
}

void StatsExporter::Loop() {
  SetThreadName("gasp-stats");
  LogLimiter limiter(absl::Minutes(1));
  absl::Time next = absl::Now() + interval_;
  // Waits on the notification, not in sleeps: Finish wakes it at once.
  while (!stop_.WaitForNotificationWithDeadline(next)) {
    absl::Status st = Dump(false);
    uint64_t held_back = 0;
    if (!st.ok() && limiter.Allow(&held_back)) {
      GASP_LOG(Warn) << st << " (periodic dump; " << held_back
                     << " earlier failures not reported)";
    }
    // A dump slower than the interval skips ticks rather than queueing them.
    next += interval_;
    if (next < absl::Now()) next = absl::Now() + interval_;
  }
}

}  // namespace rt
}  // namespace gasp

#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace gasp {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kWarn)};
std::atomic<int> g_fd{2};
std::mutex g_mu;  // guards g_pattern, g_prefix writes and file reopen
std::string g_pattern;
// Prefix kept in a fixed buffer so the signal-safe path can read it.
char g_prefix[128] = "[gasp r?/?]";
std::atomic<int> g_prefix_len{11};

std::string HostName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) return "unknown";
  char* dot = std::strchr(host, '.');
  if (dot != nullptr) *dot = '\0';
  return host;
}

void BuildPrefix(int rank, int size) {
  std::string r = rank < 0 ? "r?/?" : absl::StrFormat("r%d/%d", rank, size);
  std::string p = absl::StrFormat("[gasp %s %s:%d]", r, HostName(), getpid());
  size_t n = std::min(p.size(), sizeof(g_prefix) - 1);
  std::memcpy(g_prefix, p.data(), n);
  g_prefix[n] = '\0';
  g_prefix_len.store(static_cast<int>(n), std::memory_order_release);
}

absl::Status OpenLogFile(int rank) {
  if (g_pattern.empty()) return absl::OkStatus();
  std::string path = absl::StrReplaceAll(
      g_pattern, {{"%h", HostName()},
                  {"%p", absl::StrCat(getpid())},
                  {"%r", rank < 0 ? std::string("unknown") : absl::StrCat(rank)}});
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot open log file '%s' (from GASP_LOG_FILE=%s): %s", path, g_pattern,
        std::strerror(errno)));
  }
  int old = g_fd.exchange(fd);
  if (old > 2) close(old);
  return absl::OkStatus();
}

void WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
}

char LevelLetter(LogLevel level) { return "EWIDT"[static_cast<int>(level)]; }

}  // namespace

absl::Status ParseLogLevel(absl::string_view text, LogLevel* level) {
  std::string t = absl::AsciiStrToLower(text);
  static const char* kNames[] = {"error", "warn", "info", "debug", "trace"};
  for (int i = 0; i < 5; ++i) {
    if (t == kNames[i]) {
      *level = static_cast<LogLevel>(i);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", text, "' (expected error|warn|info|debug|trace)"));
}

const char* LogLevelName(LogLevel level) {
  static const char* kNames[] = {"error", "warn", "info", "debug", "trace"};
  return kNames[static_cast<int>(level)];
}

absl::Status ConfigureLogging(LogLevel level, const std::string& file_pattern) {
  g_level.store(static_cast<int>(level));
  std::lock_guard<std::mutex> lock(g_mu);
  g_pattern = file_pattern;
  // Without %r the file can be opened now; otherwise wait for SetLogRank.
  if (!file_pattern.empty() && file_pattern.find("%r") == std::string::npos) {
    return OpenLogFile(-1);
  }
  return absl::OkStatus();
}

void SetLogRank(int rank, int size) {
  std::lock_guard<std::mutex> lock(g_mu);
  BuildPrefix(rank, size);
  if (g_pattern.find("%r") != std::string::npos) {
    absl::Status s = OpenLogFile(rank);
    if (!s.ok()) {
      std::string line = absl::StrCat(g_prefix, " E ", s.message(), "\n");
      WriteAll(2, line.data(), line.size());
    }
  }
}

std::string LogPrefix() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_prefix_len.load() == 11 && std::strcmp(g_prefix, "[gasp r?/?]") == 0) BuildPrefix(-1, 0);
  return g_prefix;
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void LogLine(LogLevel level, const char* file, int line, absl::string_view message) {
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  std::string text =
      absl::StrFormat("%s %c %s:%d] %s\n", LogPrefix(), LevelLetter(level), base, line, message);
  WriteAll(g_fd.load(), text.data(), text.size());
}

void LogRawSignalSafe(LogLevel level, const char* message) {
  if (!LogEnabled(level)) return;
  int fd = g_fd.load(std::memory_order_relaxed);
  char letter[4] = {' ', LevelLetter(level), ' ', '\0'};
  WriteAll(fd, g_prefix, static_cast<size_t>(g_prefix_len.load(std::memory_order_acquire)));
  WriteAll(fd, letter, 3);
  WriteAll(fd, message, std::strlen(message));
  WriteAll(fd, "\n", 1);
}

}  // namespace gasp

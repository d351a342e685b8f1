// Logging with a rank prefix: "[gasp r3/8 host:pid] W file.cc:42] message".
//
// Quiet by default (GASP_LOG_LEVEL=warn). Lines go to stderr, or to the file
// named by GASP_LOG_FILE where %h, %p and %r expand to host, pid and rank.
// Thread-safe. GASP_LOG_RAW is async-signal-safe (for the SIGSEGV path).
#ifndef GASP_BASE_LOG_H_
#define GASP_BASE_LOG_H_

#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gasp {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3, kTrace = 4 };

// Parses "error|warn|info|debug|trace" (case-insensitive).
absl::Status ParseLogLevel(absl::string_view text, LogLevel* level);
const char* LogLevelName(LogLevel level);

// Sets the threshold and destination. `file_pattern` empty means stderr.
// The pattern is expanded when the rank is known (SetLogRank), so that
// "%r" names the right file; until then lines go to stderr.
absl::Status ConfigureLogging(LogLevel level, const std::string& file_pattern);

// Records rank and job size for the prefix (and for %r in GASP_LOG_FILE).
// rank < 0 means "not known yet" and prints "r?".
void SetLogRank(int rank, int size);

// The current prefix, e.g. "[gasp r3/8 vm:1234]".
std::string LogPrefix();

// True when a message at `level` would be written.
bool LogEnabled(LogLevel level);

// Writes one line. Prefer the GASP_LOG macro.
void LogLine(LogLevel level, const char* file, int line, absl::string_view message);

// Async-signal-safe: writes prefix + message + newline with write(2) to the
// log destination. No allocation, no locks.
void LogRawSignalSafe(LogLevel level, const char* message);

namespace internal {
class LogStream {
 public:
  LogStream(LogLevel level, const char* file, int line) : level_(level), file_(file), line_(line) {}
  ~LogStream() { LogLine(level_, file_, line_, stream_.str()); }
  template <typename T>
  LogStream& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};
}  // namespace internal

}  // namespace gasp

// GASP_LOG(Warn) << "text " << value;  Levels: Error, Warn, Info, Debug, Trace.
#define GASP_LOG(level)                                      \
  if (!::gasp::LogEnabled(::gasp::LogLevel::k##level)) {     \
  } else                                                     \
    ::gasp::internal::LogStream(::gasp::LogLevel::k##level, __FILE__, __LINE__)

#endif  // GASP_BASE_LOG_H_

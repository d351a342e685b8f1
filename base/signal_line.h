// A log line built in signal context: a fixed buffer and appenders that
// neither allocate nor call snprintf (not async-signal-safe). Used by the
// SIGSEGV paths' reports (protect/violation.cc, gas/fault_report.cc) with
// LogRawSignalSafe. Text beyond the buffer is cut.
#ifndef GASP_BASE_SIGNAL_LINE_H_
#define GASP_BASE_SIGNAL_LINE_H_

#include <cstddef>
#include <cstdint>

namespace gasp {

struct SignalLine {
  char buf[320] = {0};
  size_t n = 0;

  SignalLine& Str(const char* s) {
    while (s != nullptr && *s != '\0' && n + 1 < sizeof(buf)) buf[n++] = *s++;
    buf[n] = '\0';
    return *this;
  }
  SignalLine& Dec(long long v) {
    char t[24];
    int i = 0;
    const bool neg = v < 0;
    unsigned long long u = neg ? 0ULL - static_cast<unsigned long long>(v) : v;
    do {
      t[i++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (neg) t[i++] = '-';
    return Digits(t, i);
  }
  SignalLine& Hex(unsigned long long u) {
    char t[20];
    int i = 0;
    do {
      t[i++] = "0123456789abcdef"[u & 15];
      u >>= 4;
    } while (u != 0);
    Str("0x");
    return Digits(t, i);
  }

 private:
  // Appends t[i-1] .. t[0] (digits were produced least significant first).
  SignalLine& Digits(const char* t, int i) {
    while (i > 0 && n + 1 < sizeof(buf)) buf[n++] = t[--i];
    buf[n] = '\0';
    return *this;
  }
};

}  // namespace gasp

#endif  // GASP_BASE_SIGNAL_LINE_H_

// Unwinding and symbolization in signal context.
//
// Unwinding: glibc's backtrace() (libgcc's DWARF unwinder), not
// absl::GetStackTrace: on x86-64 Abseil walks frame pointers, which -O2
// code (installed libgasp, users' programs) omits, and cannot step over the
// kernel's signal frame. The DWARF unwinder uses .eh_frame, present in every
// x86-64 object, and glibc's __restore_rt carries the CFI that leads it from
// the handler into the faulting frame. Only its first call allocates
// (dlopen of libgcc_s): InitFaultReports makes that call.
// Symbolization: absl::Symbolize, not backtrace_symbols_fd: the latter only
// knows dynamic (exported) symbols, so the user's own static functions in
// an executable would show as bare offsets. absl::Symbolize reads the ELF
// symbol tables itself and is documented async-signal-safe.
#include "gas/fault_report.h"

#include <execinfo.h>

#include <atomic>
#include <cstdint>

#include "absl/debugging/symbolize.h"
#include "base/log.h"
#include "base/signal_line.h"

extern "C" __attribute__((noinline, used, visibility("default"))) void gasp_fault_breakpoint(
    const void* addr, const void* pc) {
  // An empty asm with the arguments as inputs: the call and the arguments
  // survive any optimization level, and gdb can print them.
  asm volatile("" : : "r"(addr), "r"(pc) : "memory");
}

namespace gasp {
namespace gas {
namespace {

constexpr int kMaxFrames = 64;

std::atomic<bool> g_initialized{false};

// " in SYMBOL" when known. `lookup` is the address to look up: a return
// address minus one, so that a call at a function's end names that function.
SignalLine& AppendSymbol(SignalLine& line, const void* lookup) {
  char name[192];
  if (absl::Symbolize(lookup, name, sizeof(name))) line.Str(" in ").Str(name);
  return line;
}

uintptr_t ProgramCounter(const ucontext_t* uc) {
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#else
#error "ProgramCounter: port me"
#endif
}

// Logs frames from the faulting one outwards (the frames of the handler
// and of the kernel's signal trampoline are skipped when the faulting pc is
// found among them).
void LogBacktrace(uintptr_t pc) {
  void* frames[kMaxFrames];
  const int n = g_initialized.load(std::memory_order_acquire) ? backtrace(frames, kMaxFrames) : 0;
  int first = 0;
  for (int i = 0; i < n; ++i) {
    if (reinterpret_cast<uintptr_t>(frames[i]) == pc) {
      first = i;
      break;
    }
  }
  if (n == 0) {
    LogRawSignalSafe(LogLevel::kError, "fault report: no backtrace (InitFaultReports not called)");
  }
  for (int i = first; i < n; ++i) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(frames[i]);
    SignalLine line;
    line.Str("  #").Dec(i - first).Str(" ").Hex(a);
    AppendSymbol(line, reinterpret_cast<const void*>(i == first && first != 0 ? a : a - 1));
    LogRawSignalSafe(LogLevel::kError, line.buf);
  }
}

}  // namespace

void InitFaultReports(const char* argv0) {
  if (g_initialized.exchange(true)) return;
  absl::InitializeSymbolizer(argv0);
  void* frames[2];
  (void)backtrace(frames, 2);  // loads libgcc_s now, not in the handler
}

void ReportForeignFault(const char* what, const siginfo_t* info, const ucontext_t* uc) {
  const uintptr_t pc = ProgramCounter(uc);
  gasp_fault_breakpoint(info->si_addr, reinterpret_cast<const void*>(pc));
  SignalLine line;
  line.Str("fault report: ").Str(what == nullptr ? "SIGSEGV" : what).Str(": address ");
  line.Hex(reinterpret_cast<uintptr_t>(info->si_addr)).Str(", pc ").Hex(pc);
  AppendSymbol(line, reinterpret_cast<const void*>(pc)).Str("; backtrace:");
  LogRawSignalSafe(LogLevel::kError, line.buf);
  LogBacktrace(pc);
}

}  // namespace gas
}  // namespace gasp

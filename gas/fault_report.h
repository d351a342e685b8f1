// Reports of SIGSEGVs gasp decided are not its own: an access to an
// unallocated global address (consistency/), to a domain this thread was
// not granted or a write to a read-only grant (protect/), and a fault
// outside the global range that no handler claims (fault_dispatcher.cc). The report names
// the faulting address, the program counter and a symbolized backtrace
// from the faulting instruction outwards; the caller then ends the process
// as before (docs/debugging.md).
#ifndef GASP_GAS_FAULT_REPORT_H_
#define GASP_GAS_FAULT_REPORT_H_

#include <signal.h>
#include <ucontext.h>

// Called once per fatal fault, before anything is printed, with the
// faulting address and program counter. It does nothing: it exists so that
// a debugger can stop on gasp's verdict rather than on every SIGSEGV (the
// DSM's page faults are SIGSEGVs too): `break gasp_fault_breakpoint`
// (install/share/gasp.gdb). Never inlined, never optimized away; exported
// from libgasp.so.
extern "C" void gasp_fault_breakpoint(const void* addr, const void* pc);

namespace gasp {
namespace gas {

// Loads the unwinder and the symbol tables now, outside signal context
// (the first backtrace() dlopens libgcc_s, which allocates). `argv0` may
// be null. Call once, early (gasp::Init does). Idempotent.
void InitFaultReports(const char* argv0);

// Signal context (async-signal-safe after InitFaultReports). Calls
// gasp_fault_breakpoint, then logs the faulting address (`info->si_addr`),
// the program counter (REG_RIP of `uc`) with its symbol, and the backtrace
// starting at the faulting frame. `what` is a short verdict ("load outside
// any allocation") or null.
void ReportForeignFault(const char* what, const siginfo_t* info, const ucontext_t* uc);

}  // namespace gas
}  // namespace gasp

#endif  // GASP_GAS_FAULT_REPORT_H_

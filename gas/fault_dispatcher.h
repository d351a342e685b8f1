// The one process-wide SIGSEGV dispatcher. Layers register handlers; each
// fault is offered to them in registration order (protect/ registers its
// SEGV_PKUERR handler before gas/ registers the range handler); the first
// that claims it wins and the faulting instruction is retried. Faults
// nobody claims go to the handler the application had installed before
// gasp (or are reported, gas/fault_report.h, and get the default action:
// a core dump).
//
// Handlers run in signal context: no allocation, no locks the faulting
// thread may hold, errno preserved by the dispatcher. Several threads may
// fault at once.
#ifndef GASP_GAS_FAULT_DISPATCHER_H_
#define GASP_GAS_FAULT_DISPATCHER_H_

#include <signal.h>

#include "absl/status/status.h"

namespace gasp {
namespace gas {

// Returns true when the fault was handled (the instruction is retried).
using FaultHandlerFn = bool (*)(void* context, siginfo_t* info, ucontext_t* uc);

// Installs the dispatcher on first use and appends `fn`. At most 8
// handlers. Thread-safe with respect to other registrations.
absl::Status RegisterFaultHandler(FaultHandlerFn fn, void* context);

// Removes a handler registered with the same fn and context.
void UnregisterFaultHandler(FaultHandlerFn fn, void* context);

// True when the fault was a write (x86-64 page-fault error code bit 1).
bool FaultIsWrite(const ucontext_t* uc);

}  // namespace gas
}  // namespace gasp

#endif  // GASP_GAS_FAULT_DISPATCHER_H_

// The SIGSEGV handler of the protection layer, registered with the
// process-wide dispatcher (gas/fault_dispatcher.h) before the coherence
// handler. It claims:
//   * pkeys, SEGV_PKUERR in an attached range: if the thread has the right
//     (a process grant it has not seen yet), it fixes the PKRU in the signal
//     frame and retries; otherwise it is a protection violation.
//   * mprotect, SEGV_ACCERR in a range of a domain that is not open for
//     this kind of access: a protection violation.
// Everything else is declined (coherence misses, faults outside domains).
// A violation is logged (signal-safe), counted, given to the callback;
// unless the callback repaired it, it is reported (pc, backtrace:
// gas/fault_report.h), SIGSEGV is reset to its default action
// and the access retried, so the process ends with SIGSEGV (no later
// handler in the chain may mistake it for a coherence miss). Coherence
// declines SEGV_PKUERR too.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "base/signal_line.h"
#include "gas/fault_dispatcher.h"
#include "gas/fault_report.h"
#include "protect/core.h"
#include "protect/cpu_probe.h"

#ifndef SEGV_PKUERR
#define SEGV_PKUERR 4
#endif

namespace gasp {
namespace protect {
namespace {


bool HandleFault(void* context, siginfo_t* info, ucontext_t* uc) {
  Core* core = static_cast<Core*>(context);
  if (!core->live.load(std::memory_order_acquire)) return false;
  const bool pkeys = core->kind == BackendKind::kPkeys;
  uint32_t entry_pkru = 0;
  if (pkeys) {
    // The kernel runs handlers with its default PKRU (key 0 only). Open
    // everything while we read our metadata; restored on every path below.
    entry_pkru = ReadPkru();
    WritePkru(0);
  }
  bool handled = false;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const int slot = core->FindRange(addr);
  const DomainId d = slot < 0 ? -1 : core->ranges[slot].domain.load(std::memory_order_acquire);
  if (d > 0) {
    const bool write = gas::FaultIsWrite(uc);
    const Rights need = write ? Rights::kReadWrite : Rights::kRead;
    const ThreadState* ts = SignalSafeThreadState(core);
    bool violation = false;
    int pkey = -1;
    if (pkeys && info->si_code == SEGV_PKUERR) {
      pkey = info->si_pkey;
      const int key = core->domains[d].key.load(std::memory_order_acquire);
      uint32_t frame = 0;
      if (Covers(EffectiveRights(*core, ts, d), need) && key >= 0 && key == pkey &&
          FramePkru(uc, &frame)) {
        const uint32_t want = ComputePkru(*core, ts, frame);
        const uint32_t bits = (want >> (2 * key)) & 3;
        const bool allows = write ? bits == 0 : (bits & 1) == 0;
        if (want != frame && allows && SetFramePkru(uc, want)) {
          handled = true;  // lazily picked up a grant; retry
        } else {
          violation = true;
        }
      } else {
        violation = true;
      }
    } else if (!pkeys && info->si_code == SEGV_ACCERR) {
      const DomainSlot& s = core->domains[d];
      Rights open = s.writers.load() > 0   ? Rights::kReadWrite
                    : s.readers.load() > 0 ? Rights::kRead
                                           : Rights::kNone;
      violation = !Covers(open, need);
    }
    if (violation) {
      core->violations.fetch_add(1);
      Violation v;
      v.domain = d;
      v.domain_name = core->domains[d].name;
      v.address = addr;
      v.write = write;
      v.pkey = pkey;
      v.si_code = info->si_code;
      v.tid = static_cast<pid_t>(syscall(SYS_gettid));
      SignalLine line;
      line.Str("protect: protection violation: ");
      line.Str(write ? "write to " : "read of ");
      line.Hex(addr);
      line.Str(" in domain ");
      line.Dec(d);
      line.Str(" (");
      line.Str(v.domain_name);
      line.Str(") by thread ");
      line.Dec(v.tid);
      if (pkey >= 0) {
        line.Str(", pkey ");
        line.Dec(pkey);
      }
      line.Str(pkeys ? " [SEGV_PKUERR]" : " [SEGV_ACCERR, mprotect backend]");
      LogRawSignalSafe(LogLevel::kError, line.buf);
      if (pkeys) WritePkru(entry_pkru);
      if (core->on_violation != nullptr && core->on_violation(v, core->violation_context)) {
        return true;  // repaired: retry
      }
      gas::ReportForeignFault("protection violation", info, uc);
      // Fatal. Declining is not enough: a later handler in the chain (the
      // DSM's) would take the fault for a miss and retry it forever. Reset
      // SIGSEGV to its default action and retry: the access faults again
      // and the kernel ends the process with SIGSEGV.
      struct sigaction dfl;
      std::memset(&dfl, 0, sizeof(dfl));
      dfl.sa_handler = SIG_DFL;
      sigemptyset(&dfl.sa_mask);
      sigaction(SIGSEGV, &dfl, nullptr);
      return true;
    }
  }
  if (pkeys) WritePkru(entry_pkru);
  return handled;
}

}  // namespace

absl::Status InstallFaultHandler(Core* core) { return gas::RegisterFaultHandler(HandleFault, core); }

void RemoveFaultHandler(Core* core) { gas::UnregisterFaultHandler(HandleFault, core); }

}  // namespace protect
}  // namespace gasp

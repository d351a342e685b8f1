#include "gas/fault_dispatcher.h"

#include <ucontext.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "base/status.h"
#include "gas/fault_report.h"

namespace gasp {
namespace gas {
namespace {

constexpr int kMaxHandlers = 8;

struct Slot {
  std::atomic<FaultHandlerFn> fn{nullptr};
  std::atomic<void*> context{nullptr};
};

Slot g_slots[kMaxHandlers];
std::mutex g_mu;  // registration only; never taken in signal context
bool g_installed = false;
struct sigaction g_previous;

void Chain(int sig, siginfo_t* info, void* uc) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(sig, info, uc);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Nobody's: a bug outside the global range (a null pointer, say). Report
  // it like gasp's own verdicts (and stop a debugger there: gasp.gdb lets
  // SIGSEGVs through). Then the default action: restore it and return; the
  // instruction faults again and the kernel terminates the process with
  // SIGSEGV (core dump).
  ReportForeignFault("SIGSEGV outside the global range, not a DSM fault", info,
                     static_cast<const ucontext_t*>(uc));
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGSEGV, &dfl, nullptr);
}

void Dispatch(int sig, siginfo_t* info, void* uc) {
  int saved_errno = errno;
  for (Slot& s : g_slots) {
    FaultHandlerFn fn = s.fn.load(std::memory_order_acquire);
    if (fn != nullptr && fn(s.context.load(std::memory_order_acquire), info,
                            static_cast<ucontext_t*>(uc))) {
      errno = saved_errno;
      return;
    }
  }
  errno = saved_errno;
  Chain(sig, info, uc);
}

}  // namespace

absl::Status RegisterFaultHandler(FaultHandlerFn fn, void* context) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_installed) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = Dispatch;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &g_previous) != 0) {
      return ErrnoError("installing the SIGSEGV dispatcher", errno);
    }
    g_installed = true;
  }
  for (Slot& s : g_slots) {
    if (s.fn.load() == nullptr) {
      s.context.store(context, std::memory_order_release);
      s.fn.store(fn, std::memory_order_release);
      return absl::OkStatus();
    }
  }
  return absl::ResourceExhaustedError("too many SIGSEGV handlers registered");
}

void UnregisterFaultHandler(FaultHandlerFn fn, void* context) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (Slot& s : g_slots) {
    if (s.fn.load() == fn && s.context.load() == context) {
      s.fn.store(nullptr, std::memory_order_release);
      s.context.store(nullptr, std::memory_order_release);
    }
  }
}

bool FaultIsWrite(const ucontext_t* uc) {
#if defined(__x86_64__)
  return (uc->uc_mcontext.gregs[REG_ERR] & 0x2) != 0;
#else
#error "FaultIsWrite: port me"
#endif
}

}  // namespace gas
}  // namespace gasp

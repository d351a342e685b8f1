#include "gas/fault_dispatcher.h"

#include <setjmp.h>
#include <sys/mman.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace gasp {
namespace gas {
namespace {

struct Arena {
  char* base;
  size_t len;
  std::atomic<int> reads{0};
  std::atomic<int> writes{0};
};

// Claims faults inside the arena and opens the page.
bool OpenPage(void* ctx, siginfo_t* info, ucontext_t* uc) {
  auto* a = static_cast<Arena*>(ctx);
  char* addr = static_cast<char*>(info->si_addr);
  if (addr < a->base || addr >= a->base + a->len) return false;
  (FaultIsWrite(uc) ? a->writes : a->reads).fetch_add(1);
  char* page = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(addr) & ~uintptr_t{4095});
  mprotect(page, 4096, PROT_READ | PROT_WRITE);
  return true;
}

sigjmp_buf g_jump;
std::atomic<int> g_app_handler_calls{0};
void AppHandler(int, siginfo_t*, void*) {
  g_app_handler_calls.fetch_add(1);
  siglongjmp(g_jump, 1);
}

TEST(FaultDispatcherTest, ClaimsOwnFaultsChainsOthersAndSeesWrites) {
  // The application's own handler, installed before the dispatcher.
  struct sigaction sa = {};
  sa.sa_sigaction = AppHandler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  ASSERT_EQ(sigaction(SIGSEGV, &sa, nullptr), 0);

  const size_t kPages = 64;
  char* mem = static_cast<char*>(
      mmap(nullptr, kPages * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  Arena arena{mem, kPages * 4096};
  ASSERT_TRUE(RegisterFaultHandler(OpenPage, &arena).ok());

  volatile char v = mem[0];  // read fault
  (void)v;
  mem[4096] = 1;  // write fault
  EXPECT_EQ(arena.reads.load(), 1);
  EXPECT_EQ(arena.writes.load(), 1);

  // Several threads faulting at once on distinct pages.
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (size_t p = 2 + t; p < kPages; p += 4) mem[p * 4096 + 7] = static_cast<char>(p);
    });
  }
  for (auto& t : ts) t.join();
  for (size_t p = 2; p < kPages; ++p) EXPECT_EQ(mem[p * 4096 + 7], static_cast<char>(p));

  // A fault outside every registered area reaches the application's handler.
  char* other = static_cast<char*>(
      mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (sigsetjmp(g_jump, 1) == 0) {
    volatile char x = other[0];
    (void)x;
    ADD_FAILURE() << "load from PROT_NONE memory did not fault";
  }
  EXPECT_EQ(g_app_handler_calls.load(), 1);
  UnregisterFaultHandler(OpenPage, &arena);
  munmap(other, 4096);
  munmap(mem, kPages * 4096);
}

}  // namespace
}  // namespace gas
}  // namespace gasp

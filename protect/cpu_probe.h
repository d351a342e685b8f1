// CPU and kernel probe for x86 memory protection keys (MPK/PKU), and the raw
// PKRU instructions.
//
// Never call glibc's pkey_set/pkey_get: they execute WRPKRU/RDPKRU
// unconditionally and raise SIGILL on a CPU without PKU (most VMs). Call
// ProbePku() first; ReadPkru/WritePkru are only legal when it says usable.
#ifndef GASP_PROTECT_CPU_PROBE_H_
#define GASP_PROTECT_CPU_PROBE_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace gasp {
namespace protect {

struct PkuProbe {
  bool cpuid_pku = false;   // CPUID.(EAX=7,ECX=0):ECX bit 3
  bool cpuid_ospke = false; // CPUID.(EAX=7,ECX=0):ECX bit 4 (the OS set CR4.PKE)
  bool pkey_alloc_ok = false;  // the kernel handed out a key (and it was freed)
  size_t pkru_xsave_offset = 0;  // CPUID.(EAX=0xD,ECX=9):EBX, for signal frames
  std::string reason;       // why not usable; empty when usable
  bool usable() const { return cpuid_pku && cpuid_ospke && pkey_alloc_ok; }
};

// Runs once per process (cached, thread-safe). Does not execute RDPKRU/WRPKRU.
const PkuProbe& ProbePku();

// PKRU: two bits per key k: bit 2k = access disable (AD), bit 2k+1 = write
// disable (WD).
constexpr uint32_t PkruAd(int key) { return 1u << (2 * key); }
constexpr uint32_t PkruWd(int key) { return 1u << (2 * key + 1); }
constexpr uint32_t PkruKeyMask(int key) { return 3u << (2 * key); }

// RDPKRU / WRPKRU as raw opcodes. Async-signal-safe. Only after ProbePku().usable().
inline uint32_t ReadPkru() {
  uint32_t eax, edx;
  __asm__ volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
  return eax;
}
// The only WRPKRU in gasp: one out-of-line function in its own section
// ("gasp_pkru"), so that the code scan (code_scan.h) can tell gasp's gate
// from a WRPKRU anywhere else in the process.
void WritePkru(uint32_t value);
// [*begin, *end): the addresses of the "gasp_pkru" section holding it.
void PkruGateBounds(uintptr_t* begin, uintptr_t* end);

// Raw syscalls (no glibc wrappers needed). Return -1 and set errno on error.
int SysPkeyAlloc(unsigned int flags, unsigned int init_rights);
int SysPkeyFree(int key);
int SysPkeyMprotect(void* addr, size_t len, int prot, int key);

// In a SIGSEGV handler: the PKRU value the interrupted context will get back
// at sigreturn, stored in the XSAVE area of the signal frame. Returns false
// when the frame has no PKRU slot. Async-signal-safe.
bool FramePkru(void* ucontext, uint32_t* value);
bool SetFramePkru(void* ucontext, uint32_t value);

}  // namespace protect
}  // namespace gasp

#endif  // GASP_PROTECT_CPU_PROBE_H_

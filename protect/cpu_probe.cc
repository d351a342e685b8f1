#include "protect/cpu_probe.h"

#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstring>

namespace gasp {
namespace protect {
namespace {

#ifndef SYS_pkey_mprotect
#define SYS_pkey_mprotect 329
#define SYS_pkey_alloc 330
#define SYS_pkey_free 331
#endif

constexpr uint32_t kFpXstateMagic1 = 0x46505853U;  // "FPXS", in _fpx_sw_bytes
constexpr int kXfeaturePkru = 9;

PkuProbe DoProbe() {
  PkuProbe p;
  unsigned int eax, ebx, ecx, edx;
  if (__get_cpuid_max(0, nullptr) < 7) {
    p.reason = "CPUID has no leaf 7 (no PKU)";
    return p;
  }
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  p.cpuid_pku = (ecx >> 3) & 1;
  p.cpuid_ospke = (ecx >> 4) & 1;
  if (!p.cpuid_pku) {
    p.reason = "CPU lacks PKU (CPUID.7.0:ECX bit 3 clear)";
    return p;
  }
  if (!p.cpuid_ospke) {
    p.reason = "OS did not enable PKU (CPUID.7.0:ECX bit 4 OSPKE clear)";
    return p;
  }
  if (__get_cpuid_max(0, nullptr) >= 0xD) {
    __cpuid_count(0xD, kXfeaturePkru, eax, ebx, ecx, edx);
    p.pkru_xsave_offset = ebx;
  }
  int key = SysPkeyAlloc(0, 0);
  if (key < 0) {
    p.reason = std::string("pkey_alloc failed: ") + strerror(errno);
    return p;
  }
  SysPkeyFree(key);
  p.pkey_alloc_ok = true;
  return p;
}

}  // namespace

const PkuProbe& ProbePku() {
  static const PkuProbe probe = DoProbe();
  return probe;
}

int SysPkeyAlloc(unsigned int flags, unsigned int init_rights) {
  return static_cast<int>(syscall(SYS_pkey_alloc, flags, init_rights));
}
int SysPkeyFree(int key) { return static_cast<int>(syscall(SYS_pkey_free, key)); }
int SysPkeyMprotect(void* addr, size_t len, int prot, int key) {
  return static_cast<int>(syscall(SYS_pkey_mprotect, addr, len, prot, key));
}

namespace {
// The XSAVE area of a signal frame: the legacy FXSAVE region (512 bytes,
// software bytes at 464), then the XSAVE header (xstate_bv at 512).
unsigned char* FrameXsave(void* ucontext, size_t offset) {
  ucontext_t* uc = static_cast<ucontext_t*>(ucontext);
  if (uc == nullptr || uc->uc_mcontext.fpregs == nullptr || offset < 576) return nullptr;
  unsigned char* base = reinterpret_cast<unsigned char*>(uc->uc_mcontext.fpregs);
  uint32_t magic1, xstate_size;
  uint64_t xfeatures;
  std::memcpy(&magic1, base + 464, 4);
  std::memcpy(&xfeatures, base + 464 + 8, 8);
  std::memcpy(&xstate_size, base + 464 + 16, 4);
  if (magic1 != kFpXstateMagic1) return nullptr;
  if (!(xfeatures & (1ULL << kXfeaturePkru))) return nullptr;
  if (offset + 4 > xstate_size) return nullptr;
  return base;
}
}  // namespace

bool FramePkru(void* ucontext, uint32_t* value) {
  const size_t off = ProbePku().pkru_xsave_offset;
  unsigned char* base = FrameXsave(ucontext, off);
  if (base == nullptr) return false;
  uint64_t bv;
  std::memcpy(&bv, base + 512, 8);
  if (!(bv & (1ULL << kXfeaturePkru))) {
    *value = 0;  // init state of PKRU: all access
    return true;
  }
  std::memcpy(value, base + off, 4);
  return true;
}

bool SetFramePkru(void* ucontext, uint32_t value) {
  const size_t off = ProbePku().pkru_xsave_offset;
  unsigned char* base = FrameXsave(ucontext, off);
  if (base == nullptr) return false;
  std::memcpy(base + off, &value, 4);
  uint64_t bv;
  std::memcpy(&bv, base + 512, 8);
  bv |= 1ULL << kXfeaturePkru;  // else XRSTOR would load the init value (0 = all access)
  std::memcpy(base + 512, &bv, 8);
  return true;
}

__attribute__((noinline, section("gasp_pkru"))) void WritePkru(uint32_t value) {
  __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(value), "c"(0), "d"(0) : "memory");
}

}  // namespace protect
}  // namespace gasp

// Defined by the linker around the section, in the object that holds
// WritePkru (this one), whether it is linked statically or as a library.
extern "C" {
extern const char __start_gasp_pkru[];
extern const char __stop_gasp_pkru[];
}

namespace gasp {
namespace protect {

void PkruGateBounds(uintptr_t* begin, uintptr_t* end) {
  *begin = reinterpret_cast<uintptr_t>(__start_gasp_pkru);
  *end = reinterpret_cast<uintptr_t>(__stop_gasp_pkru);
}

}  // namespace protect
}  // namespace gasp

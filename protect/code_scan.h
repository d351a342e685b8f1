// ERIM's check: the byte sequences that can change PKRU from user space,
// anywhere in the process's executable code. Memory protection keys keep
// stray pointers out of a domain, but any WRPKRU (0F 01 EF) or XRSTOR
// (0F AE /5, memory operand) in executable memory is a gadget that code
// able to jump there can use to open every domain. gasp's own WRPKRU lives
// in one function in the "gasp_pkru" section (cpu_probe.h); every other
// occurrence, at any byte offset (not only instruction starts), is reported.
// docs/protection.md, "Threat model", gives the result on Debian 12 and
// what remains.
#ifndef GASP_PROTECT_CODE_SCAN_H_
#define GASP_PROTECT_CODE_SCAN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace gasp {
namespace protect {

enum class GadgetKind { kWrpkru, kXrstor };
const char* GadgetName(GadgetKind kind);  // "WRPKRU", "XRSTOR"

// Calls `found(offset, kind)` for every WRPKRU and XRSTOR byte sequence in
// `code` (LFENCE, 0F AE E8, is not XRSTOR: register operand).
void ScanBytes(absl::Span<const uint8_t> code,
               const std::function<void(size_t offset, GadgetKind kind)>& found);

struct CodeSite {
  GadgetKind kind = GadgetKind::kWrpkru;
  std::string object;   // path of the loaded object ("" for the executable: its path)
  uintptr_t address = 0;
  uintptr_t offset = 0;  // from the object's load base
  std::string symbol;   // nearest dynamic symbol, "" when unknown
  // A site of the C library or dynamic loader that every process has
  // (glibc's pkey_set, ld.so's lazy-binding XSAVE trampolines): reported,
  // but not refused by GASP_PKEYS_STRICT (nothing a program can change).
  bool system = false;

  std::string Describe() const;  // "WRPKRU at libc.so.6+0x1234 (pkey_set)"
};

// Every site in the executable segments of the loaded objects
// (dl_iterate_phdr), except gasp's own gate section.
std::vector<CodeSite> ScanLoadedCode();

// The policy at Init under GASP_PROTECT=pkeys: logs every site (system
// ones at info, others as a warning). With `strict` (GASP_PKEYS_STRICT=1)
// a non-system site is a FailedPrecondition naming it.
absl::Status CheckLoadedCode(const std::vector<CodeSite>& sites, bool strict);

}  // namespace protect
}  // namespace gasp

#endif  // GASP_PROTECT_CODE_SCAN_H_

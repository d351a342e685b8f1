#include "protect/code_scan.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "protect/cpu_probe.h"

namespace gasp {
namespace protect {

const char* GadgetName(GadgetKind kind) {
  return kind == GadgetKind::kWrpkru ? "WRPKRU" : "XRSTOR";
}

// Reads whole executable segments, which may hold read-only data that
// AddressSanitizer keeps poisoned (redzones around string literals): the
// loop is plain loads, not instrumented, and calls no intercepted memchr.
__attribute__((no_sanitize("address"))) void ScanBytes(
    absl::Span<const uint8_t> code, const std::function<void(size_t, GadgetKind)>& found) {
  const uint8_t* b = code.data();
  const size_t n = code.size();
  for (size_t k = 0; k + 2 < n; ++k) {
    if (b[k] != 0x0f) continue;
    const uint8_t op = b[k + 1], modrm = b[k + 2];
    if (op == 0x01 && modrm == 0xef) found(k, GadgetKind::kWrpkru);
    // 0F AE /5: reg field 5; mod 3 (a register operand) is LFENCE.
    if (op == 0xae && ((modrm >> 3) & 7) == 5 && (modrm >> 6) != 3) found(k, GadgetKind::kXrstor);
  }
}

std::string CodeSite::Describe() const {
  std::string where = object;
  const size_t slash = where.rfind('/');
  if (slash != std::string::npos) where = where.substr(slash + 1);
  return absl::StrFormat("%s at %s+%#x%s", GadgetName(kind), where, offset,
                         symbol.empty() ? "" : absl::StrCat(" (", symbol, ")"));
}

namespace {

bool SystemSite(const CodeSite& s) {
  if (s.kind == GadgetKind::kWrpkru) {
    return absl::StrContains(s.object, "libc.so") && s.symbol == "pkey_set";
  }
  return absl::StrContains(s.object, "ld-linux");
}

std::string ExecutablePath() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("(the executable)");
}

int ScanObject(dl_phdr_info* info, size_t, void* out) {
  auto* sites = static_cast<std::vector<CodeSite>*>(out);
  const std::string name = info->dlpi_name[0] != '\0' ? info->dlpi_name : ExecutablePath();
  uintptr_t gate_begin = 0, gate_end = 0;
  PkruGateBounds(&gate_begin, &gate_end);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    const auto* code = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
    ScanBytes(absl::MakeConstSpan(code, ph.p_memsz), [&](size_t k, GadgetKind kind) {
      const uintptr_t addr = reinterpret_cast<uintptr_t>(code + k);
      if (addr >= gate_begin && addr < gate_end) return;  // gasp's own gate
      CodeSite s;
      s.kind = kind;
      s.object = name;
      s.address = addr;
      s.offset = addr - info->dlpi_addr;
      Dl_info d{};
      if (dladdr(code + k, &d) != 0 && d.dli_sname != nullptr) s.symbol = d.dli_sname;
      s.system = SystemSite(s);
      sites->push_back(std::move(s));
    });
  }
  return 0;
}

}  // namespace

std::vector<CodeSite> ScanLoadedCode() {
  std::vector<CodeSite> sites;
  dl_iterate_phdr(ScanObject, &sites);
  return sites;
}

absl::Status CheckLoadedCode(const std::vector<CodeSite>& sites, bool strict) {
  std::vector<std::string> system, foreign;
  for (const CodeSite& s : sites) (s.system ? system : foreign).push_back(s.Describe());
  if (!system.empty()) {
    GASP_LOG(Info) << "pkeys code scan: " << system.size()
                   << " PKRU-writing sequence(s) of the C library and loader, present in every "
                      "process: "
                   << absl::StrJoin(system, ", ");
  }
  if (foreign.empty()) return absl::OkStatus();
  const std::string list = absl::StrJoin(foreign, ", ");
  if (strict) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GASP_PKEYS_STRICT=1: executable code outside gasp's gate can change PKRU (open every "
        "protection domain): ",
        list,
        " (addr2line -f -e OBJECT OFFSET names the function); remove that code, or unset "
        "GASP_PKEYS_STRICT to run with a warning"));
  }
  GASP_LOG(Warn) << "pkeys code scan: " << foreign.size()
                 << " PKRU-writing sequence(s) outside gasp's gate (code that jumps there can "
                    "open every domain; GASP_PKEYS_STRICT=1 refuses to start): "
                 << list;
  return absl::OkStatus();
}

}  // namespace protect
}  // namespace gasp

#include "gas/range.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/log.h"
#include "base/status.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace gasp {
namespace gas {
namespace {

int ProtFlags(Prot prot) {
  switch (prot) {
    case Prot::kNone: return PROT_NONE;
    case Prot::kRead: return PROT_READ;
    case Prot::kReadWrite: return PROT_READ | PROT_WRITE;
  }
  return PROT_NONE;
}

}  // namespace

std::string DescribeMappingsAt(uint64_t addr, uint64_t len) {
  std::ifstream maps("/proc/self/maps");
  std::string line, out;
  while (std::getline(maps, line)) {
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" -"), absl::SkipEmpty());
    if (f.size() < 2) continue;
    uint64_t lo = std::stoull(f[0], nullptr, 16), hi = std::stoull(f[1], nullptr, 16);
    if (lo < addr + len && hi > addr) {
      if (!out.empty()) out += "; ";
      out += line;
    }
  }
  return out;
}

bool RunningOnValgrind() {
#if __has_include(<valgrind/valgrind.h>)
  if (RUNNING_ON_VALGRIND) return true;
#endif
  const char* preload = std::getenv("LD_PRELOAD");
  return preload != nullptr && std::strstr(preload, "vgpreload") != nullptr;
}

long MaxMapCount() {
  std::ifstream f("/proc/sys/vm/max_map_count");
  long n = -1;
  if (f >> n) return n;
  return -1;
}

absl::StatusOr<std::unique_ptr<GlobalRange>> GlobalRange::Reserve(uint64_t base, uint64_t size) {
  if (base % kPageSize != 0 || size % kPageSize != 0 || size == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GASP_BASE=%#x and GASP_SIZE=%#x must be non-zero multiples of the page size", base,
        size));
  }
  int fd = memfd_create("gasp-range", MFD_CLOEXEC);
  if (fd < 0) return ErrnoError("memfd_create for the global range", errno);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    close(fd);
    return ErrnoError(absl::StrFormat("ftruncate of the range file to GASP_SIZE=%#x", size), e);
  }
  void* want = reinterpret_cast<void*>(base);
  void* app = mmap(want, size, PROT_NONE, MAP_SHARED | MAP_FIXED_NOREPLACE | MAP_NORESERVE, fd, 0);
  if (app == MAP_FAILED || app != want) {
    int e = errno;
    if (app != MAP_FAILED) munmap(app, size);  // old kernel: flag taken as a hint
    close(fd);
    std::string who = DescribeMappingsAt(base, size);
    return absl::AlreadyExistsError(absl::StrFormat(
        "cannot reserve the global range [%#x, %#x) (GASP_BASE=%#x, GASP_SIZE=%#x): %s%s. Pick "
        "a free area with GASP_BASE (and/or a smaller GASP_SIZE); see /proc/<pid>/maps",
        base, base + size, base, size,
        app == MAP_FAILED ? std::strerror(e) : "kernel ignored MAP_FIXED_NOREPLACE",
        who.empty() ? "" : absl::StrCat("; in the way: ", who)));
  }
#if __has_include(<valgrind/memcheck.h>)
  // Memcheck marks a PROT_NONE mapping inaccessible and ignores the
  // mprotects that open its pages later: every access to the app view
  // would be an "Invalid read/write". The range is the DSM's to police.
  (void)VALGRIND_MAKE_MEM_DEFINED(app, size);
#endif
  void* sys = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (sys == MAP_FAILED) {
    int e = errno;
    munmap(app, size);
    close(fd);
    return ErrnoError(
        absl::StrFormat("mapping the system view of the global range (GASP_SIZE=%#x)%s", size,
                        RunningOnValgrind() ? ": under valgrind, set GASP_SIZE=32G or less" : ""),
        e);
  }
  long max_maps = MaxMapCount();
  if (max_maps > 0 && max_maps < 262144) {
    GASP_LOG(Info) << "vm.max_map_count=" << max_maps
                   << ": scattered cached pages split mappings; if mprotect reports ENOMEM, "
                      "raise it (sysctl -w vm.max_map_count=1048576)";
  }
  return std::unique_ptr<GlobalRange>(new GlobalRange(base, size, fd, static_cast<char*>(sys)));
}

GlobalRange::~GlobalRange() {
  munmap(reinterpret_cast<void*>(base_), size_);
  munmap(sys_, size_);
  close(fd_);
}

uint64_t GlobalRange::ResidentBytes() const {
  struct stat st;
  if (fstat(fd_, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

int GlobalRange::ProtectRaw(uint64_t offset, uint64_t length, Prot prot) const {
  if (length == 0) return 0;
  if (mprotect(app(offset), length, ProtFlags(prot)) != 0) return errno;
  return 0;
}

absl::Status GlobalRange::Protect(uint64_t offset, uint64_t length, Prot prot) const {
  int e = ProtectRaw(offset, length, prot);
  if (e == 0) return absl::OkStatus();
  if (e == ENOMEM) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "mprotect of global pages [%#x, %#x) failed: too many mappings (vm.max_map_count=%d); "
        "raise it with sysctl -w vm.max_map_count=1048576",
        base_ + offset, base_ + offset + length, MaxMapCount()));
  }
  return ErrnoError(absl::StrFormat("mprotect of global pages at %#x", base_ + offset), e);
}

}  // namespace gas
}  // namespace gasp

#include "base/fd_limit.h"

#include <sys/resource.h>

#include <cstdio>

namespace gasp {

size_t RaiseDescriptorLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  // An unlimited hard limit still stops at the kernel's nr_open.
  rlim_t target = lim.rlim_max;
  if (target == RLIM_INFINITY) {
    unsigned long nr_open = 1 << 20;
    if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
      if (std::fscanf(f, "%lu", &nr_open) != 1) nr_open = 1 << 20;
      std::fclose(f);
    }
    target = static_cast<rlim_t>(nr_open);
  }
  if (lim.rlim_cur < target) {
    rlimit want = lim;
    want.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) lim = want;
  }
  return static_cast<size_t>(lim.rlim_cur);
}

}  // namespace gasp

// The process's descriptor limit. Every listening socket in gasp (the tcp
// transport, gasprun's coordinator, the gRPC servers) closes connections
// that do not authenticate within a second or two; a flood of connections
// should meet those deadlines before it meets EMFILE.
#ifndef GASP_BASE_FD_LIMIT_H_
#define GASP_BASE_FD_LIMIT_H_

#include <cstddef>

namespace gasp {

// Raises the soft RLIMIT_NOFILE to the hard limit (what `ulimit -n` allows
// without privileges; the kernel's nr_open when the hard limit is
// unlimited) and returns the soft limit now in force; 0 when it cannot be
// read. gasp uses poll and epoll only, never select. An application that
// calls select() itself must keep its descriptors below FD_SETSIZE as
// always (docs/running.md).
size_t RaiseDescriptorLimit();

}  // namespace gasp

#endif  // GASP_BASE_FD_LIMIT_H_

// The process's descriptor limit. Every listening socket in gasp (the tcp
// transport, gasprun's coordinator, the gRPC servers) closes connections
// that do not authenticate within a second or two; a flood of connections
// should meet those deadlines before it meets EMFILE.
#ifndef GASP_BASE_FD_LIMIT_H_
#define GASP_BASE_FD_LIMIT_H_

#include <cstddef>

namespace gasp {

// Raises the soft RLIMIT_NOFILE to the hard limit (what `ulimit -n` allows
// without privileges) and returns the soft limit now in force; 0 when it
// cannot be read. gasp uses poll and epoll only, never select, so
// descriptors above FD_SETSIZE are fine.
size_t RaiseDescriptorLimit();

}  // namespace gasp

#endif  // GASP_BASE_FD_LIMIT_H_

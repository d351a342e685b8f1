// Names for the runtime's own threads, so that `top -H`, perf and gdb show
// which of a rank's threads is busy (gasp-verbs, gasp-tcp, gasp-register,
// ...), as UCX and NCCL name theirs.
#ifndef GASP_BASE_THREAD_H_
#define GASP_BASE_THREAD_H_

namespace gasp {

// Names the calling thread. Linux keeps at most 15 characters; a longer
// name is cut. Best effort: a failure is ignored (the name is cosmetic).
void SetThreadName(const char* name);

}  // namespace gasp

#endif  // GASP_BASE_THREAD_H_

# gdb command file for gasp programs (docs/debugging.md).
#
#   gdb -x PREFIX/share/gasp/gasp.gdb --args ./prog args...
#   gasprun -np 4 --gdb 2 ./prog args...      (rank 2 under gdb, with this file)
#
# gasp is a distributed shared memory: a global page that is not on this
# rank yet, or that another rank wrote since the last barrier, is
# PROT_NONE or read-only, and touching it raises SIGSEGV. gasp's handler
# fetches the page and the access is retried. So a healthy gasp program
# takes thousands of SIGSEGVs, and gdb, which stops at every SIGSEGV by
# default, would stop at each of them.

# Let the DSM's page faults through to gasp's handler, silently. "pass" is
# essential: "nopass" would hide the fault from gasp and the access would
# fault again forever.
handle SIGSEGV nostop noprint pass

# Stop instead when gasp decides a SIGSEGV is not its own: a load or store
# outside every allocation of the global range, into a protection domain
# this thread was not granted, a write to a read-only grant, or a fault
# outside the global range (a null pointer) that no handler claims. gasp calls
# gasp_fault_breakpoint(addr, pc) before it prints its fault report and
# ends the job; "bt" then shows the handler's frames, "<signal handler
# called>", and below it the faulting frame of the program.
# Pending: the symbol lives in libgasp.so, loaded after gdb starts.
set breakpoint pending on
break gasp_fault_breakpoint

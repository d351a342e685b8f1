// gasprun --gdb RANK / --gdb-batch RANK: one rank of a local job under gdb
// with gasp's command file (install/share/gasp.gdb; docs/debugging.md).
#ifndef GASP_TOOLS_GDB_RANK_H_
#define GASP_TOOLS_GDB_RANK_H_

#include <optional>
#include <string>
#include <vector>

namespace gasp {

// gasp.gdb for the running gasprun: ../share/gasp/gasp.gdb beside an
// installed bin/, else in gasprun's runfiles (the Bazel tree: the file is
// a data dependency), else under $RUNFILES_DIR or $TEST_SRCDIR. nullopt
// when none is found.
std::optional<std::string> FindGdbScript();

// The command line of the rank under gdb:
//   gdb -q -x SCRIPT --args PROGRAM ARGS...
// In batch mode (tests, logs) gdb runs the program, prints the backtrace
// where it stopped, and exits (killing the program if it is still alive):
//   gdb -q -batch -x SCRIPT -ex run -ex bt --args PROGRAM ARGS...
// `gdb` is the debugger's path, `program` the rank's argv.
std::vector<std::string> GdbCommand(const std::string& gdb, const std::string& script, bool batch,
                                    const std::vector<std::string>& program);

}  // namespace gasp

#endif  // GASP_TOOLS_GDB_RANK_H_

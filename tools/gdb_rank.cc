#include "tools/gdb_rank.h"

#include <limits.h>
#include <unistd.h>

#include <cstdlib>

namespace gasp {
namespace {

constexpr char kInTree[] = "/gasp/install/share/gasp.gdb";

bool Readable(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

}  // namespace

std::optional<std::string> FindGdbScript() {
  std::vector<std::string> candidates;
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    const std::string exe(self);
    const std::string dir = exe.substr(0, exe.rfind('/'));
    candidates.push_back(dir + "/../share/gasp/gasp.gdb");  // PREFIX/bin/gasprun
    // /proc/self/exe resolves runfiles symlinks to the output tree, where
    // the binary's own runfiles sit beside it.
    candidates.push_back(exe + ".runfiles" + kInTree);
  }
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') candidates.push_back(std::string(v) + kInTree);
  }
  for (const std::string& c : candidates) {
    if (Readable(c)) return c;
  }
  return std::nullopt;
}

std::vector<std::string> GdbCommand(const std::string& gdb, const std::string& script, bool batch,
                                    const std::vector<std::string>& program) {
  std::vector<std::string> cmd = {gdb, "-q"};
  if (batch) cmd.push_back("-batch");
  cmd.insert(cmd.end(), {"-x", script});
  // Batch: run; print the stack if the program stopped (a fault gasp does
  // not own: the breakpoint); then exit with the program's own status, or 1
  // when it was stopped (gdb's own status would be that of `bt`, which fails
  // with "No stack." after a clean exit).
  if (batch) {
    cmd.insert(cmd.end(), {"-ex", "run", "-ex", "bt", "-ex",
                           "quit $_isvoid($_exitcode) ? 1 : $_exitcode"});
  }
  cmd.push_back("--args");
  cmd.insert(cmd.end(), program.begin(), program.end());
  return cmd;
}

}  // namespace gasp

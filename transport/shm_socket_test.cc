// Socket directories of the shm backend: a live owner's directory is kept
// and an abandoned one removed, decided by the owner's lock and not by the
// pid in the name (which means nothing across PID namespaces).
#include "transport/shm_socket.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace gasp {
namespace transport {
namespace shm {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

class ShmSocketDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shm-socket-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    setenv("XDG_RUNTIME_DIR", base_.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("XDG_RUNTIME_DIR");
    (void)!system(absl::StrFormat("rm -rf %s", base_).c_str());
  }
  // A directory named as if made by process `pid`, with a socket file.
  std::string FakeDir(long pid) {
    const std::string dir = absl::StrFormat("%s/gasp-shm-test-r0-p%d-abcdef", base_, pid);
    EXPECT_EQ(mkdir(dir.c_str(), 0700), 0);
    const int fd = open((dir + "/sock").c_str(), O_CREAT | O_WRONLY, 0600);
    EXPECT_GE(fd, 0);
    close(fd);
    return dir;
  }
  std::string base_;
};

TEST_F(ShmSocketDirTest, MadeDirectoryIsLockedUntilRemoved) {
  absl::StatusOr<std::string> path = MakeSocketPath("job", 3);
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string dir = path->substr(0, path->rfind('/'));
  EXPECT_EQ(dir.rfind(base_ + "/gasp-shm-job-r3-p", 0), 0u) << dir;
  // Another process (a rank of another job) cleaning up leaves it alone.
  const pid_t child = fork();
  if (child == 0) {
    RemoveStaleSocketDirs(base_);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(Exists(dir)) << "a live rank's directory was removed";
  RemoveSocketPath(*path);
  EXPECT_FALSE(Exists(dir));
}

TEST_F(ShmSocketDirTest, LiveOwnerWithAPidUnknownHereIsKept) {
  // As a rank in another PID namespace: its pid is no process here, but it
  // holds the lock.
  const std::string dir = FakeDir(999999999);
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  RemoveStaleSocketDirs(base_);
  EXPECT_TRUE(Exists(dir + "/sock")) << "removed although its owner holds the lock";
  close(fd);
  RemoveStaleSocketDirs(base_);
  EXPECT_FALSE(Exists(dir)) << "kept although nobody holds its lock any more";
}

TEST_F(ShmSocketDirTest, AbandonedDirectoryWithALivePidIsRemoved) {
  // Its owner was killed and the pid reused by a live process (here: this
  // one); nobody holds the lock.
  const std::string dir = FakeDir(getpid());
  RemoveStaleSocketDirs(base_);
  EXPECT_FALSE(Exists(dir));
}

}  // namespace
}  // namespace shm
}  // namespace transport
}  // namespace gasp

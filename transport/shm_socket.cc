#include "transport/shm_socket.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>

#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "base/status.h"
#include "transport/tcp_socket.h"

namespace gasp {
namespace transport {
namespace shm {
namespace {

constexpr char kSocketDirPrefix[] = "gasp-shm-";
constexpr absl::Duration kFirstRetryDelay = absl::Milliseconds(5);
constexpr absl::Duration kMaxRetryDelay = absl::Milliseconds(100);

absl::StatusOr<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) {
    return absl::InvalidArgumentError(absl::StrFormat("socket path %s is too long", path));
  }
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

// Waits for `events` on `fd` until `deadline`: false on timeout.
bool PollFor(int fd, short events, absl::Time deadline) {
  pollfd p{fd, events, 0};
  int rc;
  do {
    rc = poll(&p, 1, tcp::PollTimeoutMs(deadline));
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

void CloseAll(int* fds, int n) {
  for (int i = 0; i < n; ++i) {
    if (fds[i] >= 0) close(fds[i]);
    fds[i] = -1;
  }
}

}  // namespace

namespace {

// A directory is made under this prefix, locked, then renamed to its
// kSocketDirPrefix name, so that no directory of that name exists unlocked
// while its owner lives.
constexpr char kNewDirPrefix[] = ".gasp-shm-new-";

// Descriptors of this process's socket directories, each holding an
// exclusive flock for as long as the directory is in use.
std::mutex& DirLocksMu() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::map<std::string, int>& DirLocks() {
  static auto* m = new std::map<std::string, int>;
  return *m;
}

// True if nobody holds `dir`'s lock (its owner exited, however it
// exited); the lock is then held by `*fd` until the caller closes it.
bool TakeAbandoned(const std::string& dir, int* fd) {
  *fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (*fd < 0) return false;
  if (flock(*fd, LOCK_EX | LOCK_NB) == 0) return true;
  close(*fd);
  *fd = -1;
  return false;
}

}  // namespace

void RemoveStaleSocketDirs(const std::string& base) {
  DIR* d = opendir(base.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(kSocketDirPrefix, 0) != 0) continue;
    const std::string dir = base + "/" + name;
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) continue;
    // The owner's flock, not its pid, says whether it lives: a pid means
    // nothing across PID namespaces (containers, sandboxes) sharing /tmp.
    int fd = -1;
    if (!TakeAbandoned(dir, &fd)) continue;
    RemoveSocketPath(dir + "/sock");
    close(fd);
  }
  closedir(d);
}

absl::StatusOr<std::string> MakeSocketPath(const std::string& job_tag, int rank) {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  struct stat st {};
  const std::string base =
      xdg != nullptr && xdg[0] == '/' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode) ? xdg : "/tmp";
  // Ranks killed without a chance to clean up (SIGKILL) leave theirs.
  RemoveStaleSocketDirs(base);
  const std::string suffix = absl::StrFormat("%s-r%d-p%d-XXXXXX", job_tag, rank, getpid());
  std::string made = absl::StrFormat("%s/%s%s", base, kNewDirPrefix, suffix);
  const std::string dir_prefix = absl::StrFormat("%s/%s", base, kSocketDirPrefix);
  if (dir_prefix.size() + suffix.size() + 5 >= kBlobPathBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "shm transport: socket directory %s%s is longer than the %d bytes an endpoint blob "
        "holds; set XDG_RUNTIME_DIR to a shorter directory",
        dir_prefix, suffix, kBlobPathBytes - 6));
  }
  if (mkdtemp(made.data()) == nullptr) {
    return Annotate(ErrnoError("mkdtemp", errno),
                    absl::StrFormat("shm transport: making a socket directory under %s (set "
                                    "XDG_RUNTIME_DIR to a writable directory)",
                                    base));
  }
  const std::string dir = dir_prefix + made.substr(made.size() - suffix.size());
  const int fd = open(made.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(made.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    rmdir(made.c_str());
    return Annotate(ErrnoError("lock and rename", err),
                    absl::StrFormat("shm transport: socket directory %s", made));
  }
  std::lock_guard<std::mutex> l(DirLocksMu());
  DirLocks()[dir] = fd;
  return dir + "/sock";
}

void RemoveSocketPath(const std::string& path) {
  if (path.empty()) return;
  const std::string dir = path.substr(0, path.rfind('/'));
  unlink(path.c_str());
  rmdir(dir.c_str());
  std::lock_guard<std::mutex> l(DirLocksMu());
  auto it = DirLocks().find(dir);
  if (it != DirLocks().end()) {
    close(it->second);
    DirLocks().erase(it);
  }
}

absl::StatusOr<int> ListenUnix(const std::string& path) {
  GASP_ASSIGN_OR_RETURN(sockaddr_un a, UnixAddress(path));
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("shm transport: socket", errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 128) != 0) {
    const int err = errno;
    close(fd);
    return Annotate(ErrnoError("bind/listen", err), absl::StrCat("shm transport: ", path));
  }
  return fd;
}

absl::StatusOr<int> DialUnix(const std::string& path, absl::Time deadline) {
  GASP_ASSIGN_OR_RETURN(sockaddr_un a, UnixAddress(path));
  absl::Duration delay = kFirstRetryDelay;
  for (int attempts = 1;; ++attempts) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoError("shm transport: socket", errno);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      return fd;
    }
    const int err = errno;
    close(fd);
    const absl::Duration left = deadline - absl::Now();
    const bool retry = err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINTR;
    if (!retry || left <= absl::ZeroDuration()) {
      return absl::UnavailableError(absl::StrFormat(
          "cannot connect to %s: %s (%d attempt(s) before the deadline, GASP_TIMEOUT; the rank "
          "may have exited, see its log)",
          path, std::strerror(err), attempts));
    }
    absl::SleepFor(std::min(delay, left));
    delay = std::min(delay * 2, kMaxRetryDelay);
  }
}

absl::Status CheckPeerUid(int fd, const char* who) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoError("shm transport: SO_PEERCRED", errno);
  }
  if (cred.uid != geteuid()) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s runs as uid %d (pid %d), this rank as uid %d: the shm transport connects only "
        "processes of one user",
        who, cred.uid, cred.pid, geteuid()));
  }
  return absl::OkStatus();
}

absl::Status SendFds(int fd, uint8_t kind, const int* fds, int n, absl::Time deadline) {
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))] = {};
  iovec iov{&kind, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(static_cast<size_t>(n) * sizeof(int));
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(static_cast<size_t>(n) * sizeof(int));
  std::memcpy(CMSG_DATA(c), fds, static_cast<size_t>(n) * sizeof(int));
  while (true) {
    if (sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) return absl::OkStatus();
    if (errno != EAGAIN && errno != EINTR) return ErrnoError("shm transport: sendmsg", errno);
    if (!PollFor(fd, POLLOUT, deadline)) {
      return absl::DeadlineExceededError("shm transport: the peer does not read its socket");
    }
  }
}

absl::Status RecvFds(int fd, uint8_t kind, int* fds, int n, absl::Time deadline) {
  for (int i = 0; i < n; ++i) fds[i] = -1;
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))] = {};
  uint8_t got = 0;
  iovec iov{&got, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t r;
  while ((r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) < 0) {
    if (errno != EAGAIN && errno != EINTR) return ErrnoError("shm transport: recvmsg", errno);
    if (!PollFor(fd, POLLIN, deadline)) {
      return absl::DeadlineExceededError("shm transport: no ring set-up from the peer in time");
    }
  }
  int received[8];
  int count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const int k = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < k && count < 8; ++i) {
      std::memcpy(&received[count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  if (r != 1 || got != kind || count != n || (msg.msg_flags & MSG_CTRUNC) != 0) {
    CloseAll(received, count);
    return absl::DataLossError(absl::StrFormat(
        "shm transport: expected set-up message '%c' with %d descriptor(s), got %d byte(s) "
        "('%c') with %d",
        kind, n, r, r == 1 ? got : '?', count));
  }
  std::memcpy(fds, received, static_cast<size_t>(n) * sizeof(int));
  return absl::OkStatus();
}

std::array<uint8_t, kBootIdBytes> BootId() {
  std::array<uint8_t, kBootIdBytes> id{};
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string text;
  std::getline(in, text);
  text = absl::StrReplaceAll(text, {{"-", ""}});
  if (text.size() == 2 * kBootIdBytes) {
    for (size_t i = 0; i < kBootIdBytes; ++i) {
      id[i] = static_cast<uint8_t>(std::strtoul(text.substr(2 * i, 2).c_str(), nullptr, 16));
    }
    return id;
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const char* p = host; *p != 0; ++p) h = (h ^ static_cast<uint8_t>(*p)) * 1099511628211ull;
  std::memcpy(id.data(), &h, sizeof(h));
  return id;
}

void RingDoorbell(int fd) {
  const uint64_t one = 1;
  const int saved = errno;
  if (write(fd, &one, sizeof(one)) < 0) {
    // EAGAIN: the counter is saturated, the sleeper is woken anyway.
  }
  errno = saved;
}

}  // namespace shm
}  // namespace transport
}  // namespace gasp

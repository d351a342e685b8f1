#include "nameserver/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "nameserver/validate.h"

namespace gasp {
namespace nameserver {
namespace {

constexpr char kMagic[8] = {'G', 'A', 'S', 'P', 'N', 'S', 'S', 'T'};
constexpr size_t kHeaderBytes = 24;
// A state file is at most a few MB (bounded registrations); refusing huge
// lengths early keeps a damaged header from asking for gigabytes.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 30;

uint32_t Crc32(absl::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (char ch : data) crc = table[(crc ^ static_cast<uint8_t>(ch)) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLe(absl::string_view in, size_t offset, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<uint8_t>(in[offset + i])} << (8 * i);
  return v;
}

absl::Status DataLoss(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("damaged name server state: ", why));
}

absl::Status CheckRecords(const v1::State& state) {
  std::set<std::string> names;
  for (int i = 0; i < state.services_size(); ++i) {
    const v1::ServiceRecord& rec = state.services(i);
    absl::Status valid = ValidateRegistration(rec.registration());
    if (!valid.ok()) return DataLoss(absl::StrCat("record ", i, ": ", valid.message()));
    if (rec.owner().empty()) {
      return DataLoss(absl::StrCat("record ", i, " (", rec.registration().service(), ") has no owner"));
    }
    if (!names.insert(rec.registration().service()).second) {
      return DataLoss(absl::StrCat("service '", rec.registration().service(), "' appears twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat("write ", path), errno);
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string EncodeState(const v1::State& state) {
  std::string payload;
  state.SerializeToString(&payload);
  return FrameState(payload);
}

std::string FrameState(absl::string_view payload) {
  std::string out(kMagic, sizeof(kMagic));
  PutLe(&out, kStateFormatVersion, 4);
  PutLe(&out, Crc32(payload), 4);
  PutLe(&out, payload.size(), 8);
  out.append(payload.data(), payload.size());
  return out;
}

absl::StatusOr<v1::State> DecodeState(absl::string_view bytes) {
  if (bytes.size() < kHeaderBytes) {
    return DataLoss(absl::StrFormat("%d bytes, shorter than the %d-byte header", bytes.size(),
                                    kHeaderBytes));
  }
  if (bytes.substr(0, sizeof(kMagic)) != absl::string_view(kMagic, sizeof(kMagic))) {
    return DataLoss("no GASPNSST magic: not a gasp_nameserver state file");
  }
  const uint64_t version = GetLe(bytes, 8, 4);
  if (version != kStateFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "name server state format version %d; this gasp_nameserver reads version %d", version,
        kStateFormatVersion));
  }
  const uint32_t crc = static_cast<uint32_t>(GetLe(bytes, 12, 4));
  const uint64_t length = GetLe(bytes, 16, 8);
  if (length > kMaxPayloadBytes || length != bytes.size() - kHeaderBytes) {
    return DataLoss(absl::StrFormat("the header says %d payload bytes, the file has %d", length,
                                    bytes.size() - kHeaderBytes));
  }
  absl::string_view payload = bytes.substr(kHeaderBytes);
  if (Crc32(payload) != crc) return DataLoss("checksum mismatch");
  v1::State state;
  if (!state.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return DataLoss("the payload does not parse");
  }
  GASP_RETURN_IF_ERROR(CheckRecords(state));
  return state;
}

absl::StatusOr<v1::State> ReadStateFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return ErrnoError(absl::StrCat("open ", path), errno);
  }
  std::string bytes;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return ErrnoError(absl::StrCat("read ", path), e);
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > kMaxPayloadBytes + kHeaderBytes) {
      close(fd);
      return Annotate(DataLoss("larger than 1 GiB"), path);
    }
  }
  close(fd);
  absl::StatusOr<v1::State> state = DecodeState(bytes);
  if (!state.ok()) return Annotate(state.status(), path);
  return state;
}

absl::Status WriteStateFile(const std::string& path, const v1::State& state) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(absl::StrCat("create ", tmp), errno);
  absl::Status st = WriteAll(fd, EncodeState(state), tmp);
  // fsync before rename: otherwise a crash may leave the new name pointing
  // at a file whose data never reached the disk.
  if (st.ok() && fsync(fd) != 0) st = ErrnoError(absl::StrCat("fsync ", tmp), errno);
  if (close(fd) != 0 && st.ok()) st = ErrnoError(absl::StrCat("close ", tmp), errno);
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoError(absl::StrCat("rename ", tmp, " to ", path), errno);
  }
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  // The rename itself is durable only once the directory is synced.
  const std::string dir = DirectoryOf(path);
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoError(absl::StrCat("open directory ", dir), errno);
  if (fsync(dfd) != 0) st = ErrnoError(absl::StrCat("fsync directory ", dir), errno);
  close(dfd);
  return st;
}

}  // namespace nameserver
}  // namespace gasp

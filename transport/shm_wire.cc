#include "transport/shm_wire.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "transport/tcp_wire.h"

namespace gasp {
namespace transport {
namespace shm {

using tcp::GetLe16;
using tcp::GetLe32;
using tcp::GetLe64;
using tcp::PutLe16;
using tcp::PutLe32;
using tcp::PutLe64;

const char* RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kReadReq: return "READ_REQ";
    case RecordType::kReadResp: return "READ_RESP";
    case RecordType::kWriteReq: return "WRITE_REQ";
    case RecordType::kWriteResp: return "WRITE_RESP";
    case RecordType::kCasReq: return "CAS_REQ";
    case RecordType::kFaaReq: return "FAA_REQ";
    case RecordType::kAtomicResp: return "ATOMIC_RESP";
    case RecordType::kMsg: return "MSG";
  }
  return "UNKNOWN";
}

bool operator==(const RecordHeader& a, const RecordHeader& b) {
  return a.type == b.type && a.status == b.status && a.length == b.length && a.tag == b.tag &&
         a.req_id == b.req_id && a.addr == b.addr && a.rkey == b.rkey && a.span == b.span &&
         a.aux == b.aux;
}

void EncodeRecord(const RecordHeader& h, uint8_t out[kRecordHeaderSize]) {
  std::memset(out, 0, kRecordHeaderSize);
  PutLe16(out + 0, kRecordMagic);
  out[2] = kShmWireVersion;
  out[3] = static_cast<uint8_t>(h.type);
  out[4] = h.status;
  PutLe32(out + 8, h.length);
  PutLe32(out + 12, h.tag);
  PutLe64(out + 16, h.req_id);
  PutLe64(out + 24, h.addr);
  PutLe64(out + 32, h.rkey);
  PutLe64(out + 40, h.span);
  PutLe64(out + 48, h.aux);
}

namespace {

absl::Status Bad(const RecordHeader& h, const char* what, uint64_t value) {
  return absl::DataLossError(
      absl::StrFormat("malformed %s record: %s (%d)", RecordTypeName(h.type), what, value));
}

// Which fields a type uses: anything else must be zero.
struct Uses {
  bool payload, tag, req_id, addr, rkey, span, aux;
};

Uses UsesOf(RecordType t) {
  switch (t) {
    case RecordType::kReadReq: return {false, false, true, true, true, true, true};
    case RecordType::kReadResp: return {true, false, true, false, false, false, true};
    case RecordType::kWriteReq: return {true, false, true, true, true, true, false};
    case RecordType::kWriteResp: return {false, false, true, false, false, false, false};
    case RecordType::kCasReq: return {false, false, true, true, true, true, true};
    case RecordType::kFaaReq: return {false, false, true, true, true, true, false};
    case RecordType::kAtomicResp: return {false, false, true, false, false, true, false};
    case RecordType::kMsg: return {true, true, false, false, false, true, true};
  }
  return {};
}

absl::Status CheckUnused(const RecordHeader& h) {
  const Uses u = UsesOf(h.type);
  if (!u.payload && h.length != 0) return Bad(h, "payload on a type without one", h.length);
  if (!u.tag && h.tag != 0) return Bad(h, "unused tag is not zero", h.tag);
  if (!u.req_id && h.req_id != 0) return Bad(h, "unused req_id is not zero", h.req_id);
  if (!u.addr && h.addr != 0) return Bad(h, "unused addr is not zero", h.addr);
  if (!u.rkey && h.rkey != 0) return Bad(h, "unused rkey is not zero", h.rkey);
  if (!u.span && h.span != 0) return Bad(h, "unused span is not zero", h.span);
  if (!u.aux && h.aux != 0) return Bad(h, "unused aux is not zero", h.aux);
  return absl::OkStatus();
}

absl::Status CheckLimits(const RecordHeader& h) {
  if (h.length > kMaxChunkBytes) return Bad(h, "payload over the chunk limit", h.length);
  switch (h.type) {
    case RecordType::kReadReq:
      if (h.aux > kMaxChunkBytes || h.aux > h.span) return Bad(h, "read chunk size", h.aux);
      [[fallthrough]];
    case RecordType::kWriteReq:
      if (h.span > kMaxOpBytes) return Bad(h, "span over the op limit", h.span);
      if (h.length > h.span) return Bad(h, "write chunk beyond its span", h.length);
      if (h.addr + h.span < h.addr) return Bad(h, "range wraps around", h.addr);
      return absl::OkStatus();
    case RecordType::kReadResp:
      if (h.status != 0 && h.length != 0) return Bad(h, "payload on a failed READ", h.length);
      return absl::OkStatus();
    case RecordType::kCasReq:
    case RecordType::kFaaReq:
      if (h.addr % 8 != 0) return Bad(h, "misaligned atomic address", h.addr);
      return absl::OkStatus();
    case RecordType::kMsg:
      if (h.span > kMaxMessageBytes) return Bad(h, "message over the limit", h.span);
      if (h.aux > h.span || h.length > h.span - h.aux) {
        return Bad(h, "chunk beyond its message", h.aux);
      }
      return absl::OkStatus();
    case RecordType::kWriteResp:
    case RecordType::kAtomicResp:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RecordHeader> DecodeRecord(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kRecordHeaderSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "record header needs %d bytes, got %d", kRecordHeaderSize, bytes.size()));
  }
  const uint8_t* p = bytes.data();
  RecordHeader h;
  h.type = static_cast<RecordType>(p[3]);
  if (GetLe16(p) != kRecordMagic) return Bad(h, "wrong magic", GetLe16(p));
  if (p[2] != kShmWireVersion) return Bad(h, "wrong version", p[2]);
  if (p[3] < 1 || p[3] > static_cast<uint8_t>(RecordType::kMsg)) return Bad(h, "unknown type", p[3]);
  h.status = p[4];
  if (h.status > static_cast<uint8_t>(CompletionCode::kProtocolError)) {
    return Bad(h, "unknown status", h.status);
  }
  if (IsRequest(h.type) && h.status != 0) return Bad(h, "status on a request", h.status);
  if (p[5] != 0 || p[6] != 0 || p[7] != 0) return Bad(h, "reserved bytes are not zero", 0);
  h.length = GetLe32(p + 8);
  h.tag = GetLe32(p + 12);
  h.req_id = GetLe64(p + 16);
  h.addr = GetLe64(p + 24);
  h.rkey = GetLe64(p + 32);
  h.span = GetLe64(p + 40);
  h.aux = GetLe64(p + 48);
  if (absl::Status s = CheckUnused(h); !s.ok()) return s;
  if (absl::Status s = CheckLimits(h); !s.ok()) return s;
  return h;
}

// ---------------------------------------------------------------------------
// Endpoint blob

bool operator==(const ShmEndpoint& a, const ShmEndpoint& b) {
  return a.pid == b.pid && a.rank == b.rank && a.nonce == b.nonce && a.uid == b.uid &&
         a.boot_id == b.boot_id && a.path == b.path;
}

EndpointBlob EncodeShmEndpoint(const ShmEndpoint& e) {
  EndpointBlob blob;
  uint8_t* p = blob.bytes;
  tcp::EncodeBlobPrefix(tcp::BlobBackend::kShm, kShmBlobVersion, &blob);
  PutLe32(p + 8, e.pid);
  PutLe32(p + 12, e.rank);
  PutLe64(p + 16, e.nonce);
  PutLe32(p + 24, e.uid);
  std::memcpy(p + 32, e.boot_id.data(), kBootIdBytes);
  std::memcpy(p + 48, e.path.data(), std::min(e.path.size(), kBlobPathBytes - 1));
  return blob;
}

absl::StatusOr<ShmEndpoint> DecodeShmEndpoint(const EndpointBlob& blob) {
  if (absl::Status s = tcp::CheckBlobPrefix(blob, tcp::BlobBackend::kShm, kShmBlobVersion);
      !s.ok()) {
    return s;
  }
  const uint8_t* p = blob.bytes;
  ShmEndpoint e;
  e.pid = GetLe32(p + 8);
  e.rank = GetLe32(p + 12);
  e.nonce = GetLe64(p + 16);
  e.uid = GetLe32(p + 24);
  if (GetLe32(p + 28) != 0) {
    return absl::InvalidArgumentError("shm endpoint blob: reserved bytes 28..31 are not zero");
  }
  std::memcpy(e.boot_id.data(), p + 32, kBootIdBytes);
  const char* path = reinterpret_cast<const char*>(p + 48);
  const size_t len = strnlen(path, kBlobPathBytes);
  if (len == kBlobPathBytes) {
    return absl::InvalidArgumentError("shm endpoint blob: socket path is not NUL-terminated");
  }
  for (size_t i = len; i < kBlobPathBytes; ++i) {
    if (p[48 + i] != 0) {
      return absl::InvalidArgumentError("shm endpoint blob: bytes after the path are not zero");
    }
  }
  e.path.assign(path, len);
  if (e.path.empty() || e.path[0] != '/') {
    return absl::InvalidArgumentError("shm endpoint blob: the socket path is not absolute");
  }
  if (e.nonce == 0) return absl::InvalidArgumentError("shm endpoint blob: zero session nonce");
  return e;
}

}  // namespace shm
}  // namespace transport
}  // namespace gasp

#include "transport/tcp_wire.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "base/accept_guard.h"

namespace gasp {
namespace transport {
namespace tcp {
namespace {

// Fields a frame type may set; every other field must be zero.
enum FieldBit : uint32_t {
  kFStatus = 1u << 0,
  kFLength = 1u << 1,
  kFTag = 1u << 2,
  kFReqId = 1u << 3,
  kFRemoteAddr = 1u << 4,
  kFRkey = 1u << 5,
  kFOperand = 1u << 6,
  kFCompare = 1u << 7,
};

struct TypeRule {
  uint32_t fields;      // FieldBits the type uses
  uint64_t max_length;  // payload limit
};

// Returns false for an unknown type.
bool RuleFor(FrameType type, TypeRule* rule) {
  switch (type) {
    case FrameType::kHello:
      *rule = {kFReqId | kFRemoteAddr | kFOperand | kFCompare, 0};
      return true;
    case FrameType::kProof:
      *rule = {kFReqId | kFRemoteAddr | kFRkey | kFOperand, 0};
      return true;
    case FrameType::kBye:
      *rule = {0, 0};
      return true;
    case FrameType::kReadReq:
      *rule = {kFReqId | kFRemoteAddr | kFRkey | kFOperand, 0};
      return true;
    case FrameType::kReadResp:
      *rule = {kFStatus | kFLength | kFReqId, kMaxOpBytes};
      return true;
    case FrameType::kWriteReq:
      *rule = {kFLength | kFReqId | kFRemoteAddr | kFRkey, kMaxOpBytes};
      return true;
    case FrameType::kWriteResp:
      *rule = {kFStatus | kFReqId, 0};
      return true;
    case FrameType::kCasReq:
      *rule = {kFReqId | kFRemoteAddr | kFRkey | kFOperand | kFCompare, 0};
      return true;
    case FrameType::kFaaReq:
      *rule = {kFReqId | kFRemoteAddr | kFRkey | kFOperand, 0};
      return true;
    case FrameType::kAtomicResp:
      *rule = {kFStatus | kFReqId | kFOperand, 0};
      return true;
    case FrameType::kMsg:
      *rule = {kFLength | kFTag, kMaxMessageBytes};
      return true;
  }
  return false;
}

absl::Status Corrupt(FrameType type, const std::string& what) {
  return absl::DataLossError(
      absl::StrFormat("malformed %s frame: %s", FrameTypeName(type), what));
}

}  // namespace

void PutLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t GetLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t GetLe32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t GetLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

const char* FrameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kHello: return "HELLO";
    case FrameType::kBye: return "BYE";
    case FrameType::kReadReq: return "READ_REQ";
    case FrameType::kReadResp: return "READ_RESP";
    case FrameType::kWriteReq: return "WRITE_REQ";
    case FrameType::kWriteResp: return "WRITE_RESP";
    case FrameType::kCasReq: return "CAS_REQ";
    case FrameType::kFaaReq: return "FAA_REQ";
    case FrameType::kAtomicResp: return "ATOMIC_RESP";
    case FrameType::kMsg: return "MSG";
    case FrameType::kProof: return "PROOF";
  }
  return "UNKNOWN";
}

bool operator==(const FrameHeader& a, const FrameHeader& b) {
  return a.type == b.type && a.status == b.status && a.length == b.length && a.tag == b.tag &&
         a.req_id == b.req_id && a.remote_addr == b.remote_addr && a.rkey == b.rkey &&
         a.operand == b.operand && a.compare == b.compare;
}

void EncodeHeader(const FrameHeader& h, uint8_t out[kFrameHeaderSize]) {
  PutLe16(out + 0, kFrameMagic);
  out[2] = kWireVersion;
  out[3] = static_cast<uint8_t>(h.type);
  out[4] = h.status;
  out[5] = out[6] = out[7] = 0;
  PutLe32(out + 8, h.length);
  PutLe32(out + 12, h.tag);
  PutLe64(out + 16, h.req_id);
  PutLe64(out + 24, h.remote_addr);
  PutLe64(out + 32, h.rkey);
  PutLe64(out + 40, h.operand);
  PutLe64(out + 48, h.compare);
}

absl::StatusOr<FrameHeader> DecodeHeader(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kFrameHeaderSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "frame header needs %d bytes, got %d", kFrameHeaderSize, bytes.size()));
  }
  const uint8_t* p = bytes.data();
  const uint16_t magic = GetLe16(p);
  if (magic != kFrameMagic) {
    return absl::DataLossError(absl::StrFormat(
        "bad frame magic 0x%04x (expected 0x%04x): not a gasp tcp peer, or the stream is out "
        "of sync",
        magic, kFrameMagic));
  }
  if (p[2] != kWireVersion) {
    return absl::DataLossError(absl::StrFormat(
        "frame wire version %d, this build speaks version %d: are all ranks running the same "
        "gasp build?",
        p[2], kWireVersion));
  }
  FrameHeader h;
  h.type = static_cast<FrameType>(p[3]);
  TypeRule rule;
  if (!RuleFor(h.type, &rule)) {
    return absl::DataLossError(absl::StrFormat("unknown frame type %d", p[3]));
  }
  if (p[5] != 0 || p[6] != 0 || p[7] != 0) {
    return Corrupt(h.type, "reserved header bytes are not zero");
  }
  h.status = p[4];
  h.length = GetLe32(p + 8);
  h.tag = GetLe32(p + 12);
  h.req_id = GetLe64(p + 16);
  h.remote_addr = GetLe64(p + 24);
  h.rkey = GetLe64(p + 32);
  h.operand = GetLe64(p + 40);
  h.compare = GetLe64(p + 48);

  struct Field {
    uint32_t bit;
    const char* name;
    uint64_t value;
  };
  const Field fields[] = {
      {kFStatus, "status", h.status},        {kFLength, "length", h.length},
      {kFTag, "tag", h.tag},                 {kFReqId, "req_id", h.req_id},
      {kFRemoteAddr, "remote_addr", h.remote_addr}, {kFRkey, "rkey", h.rkey},
      {kFOperand, "operand", h.operand},     {kFCompare, "compare", h.compare},
  };
  for (const Field& f : fields) {
    if ((rule.fields & f.bit) == 0 && f.value != 0) {
      return Corrupt(h.type, absl::StrFormat("field %s must be zero, got %d", f.name, f.value));
    }
  }
  if (h.length > rule.max_length) {
    return Corrupt(h.type, absl::StrFormat("payload length %d exceeds the limit of %d bytes",
                                           h.length, rule.max_length));
  }
  if (rule.fields & kFStatus) {
    const auto code = static_cast<CompletionCode>(h.status);
    if (code != CompletionCode::kSuccess && code != CompletionCode::kRemoteAccessError) {
      return Corrupt(h.type, absl::StrFormat("status %d is not a target completion code",
                                             h.status));
    }
    if (code != CompletionCode::kSuccess && (h.length != 0 || h.operand != 0)) {
      return Corrupt(h.type, "a failed response carries no data");
    }
  }
  switch (h.type) {
    case FrameType::kHello:
      if (h.remote_addr == 0 || h.remote_addr > kMaxRanks) {
        return Corrupt(h.type, absl::StrFormat("job size %d out of range [1, %d]",
                                               h.remote_addr, kMaxRanks));
      }
      if (h.operand >= h.remote_addr) {
        return Corrupt(h.type, absl::StrFormat("rank %d out of range for job size %d",
                                               h.operand, h.remote_addr));
      }
      break;
    case FrameType::kReadReq:
      if (h.operand > kMaxOpBytes) {
        return Corrupt(h.type, absl::StrFormat("read length %d exceeds the limit of %d bytes",
                                               h.operand, kMaxOpBytes));
      }
      break;
    case FrameType::kCasReq:
    case FrameType::kFaaReq:
      if (h.remote_addr % 8 != 0) {
        return Corrupt(h.type, absl::StrFormat("atomic address 0x%x is not 8-byte aligned",
                                               h.remote_addr));
      }
      break;
    default:
      break;
  }
  return h;
}

FrameHeader HelloFrame(int rank, int size, uint64_t session, uint64_t nonce) {
  FrameHeader h;
  h.type = FrameType::kHello;
  h.req_id = nonce;
  h.operand = static_cast<uint64_t>(rank);
  h.remote_addr = static_cast<uint64_t>(size);
  h.compare = session;
  return h;
}

FrameHeader ProofFrame(const Mac& mac) {
  FrameHeader h;
  h.type = FrameType::kProof;
  h.req_id = GetLe64(mac.data());
  h.remote_addr = GetLe64(mac.data() + 8);
  h.rkey = GetLe64(mac.data() + 16);
  h.operand = GetLe64(mac.data() + 24);
  return h;
}

Mac ProofOf(const FrameHeader& proof) {
  Mac mac;
  PutLe64(mac.data(), proof.req_id);
  PutLe64(mac.data() + 8, proof.remote_addr);
  PutLe64(mac.data() + 16, proof.rkey);
  PutLe64(mac.data() + 24, proof.operand);
  return mac;
}

Mac HandshakeMac(absl::Span<const uint8_t> secret, bool acceptor,
                 const HandshakeTranscript& t) {
  // Fixed-size fields after a fixed-size label: no two transcripts encode
  // to the same bytes.
  return HmacSha256(secret, {acceptor ? "gasp-tcp-v2 acceptor " : "gasp-tcp-v2 connector",
                             Le64(t.size), Le64(t.connector_rank), Le64(t.acceptor_rank),
                             Le64(t.connector_session), Le64(t.acceptor_session),
                             Le64(t.connector_nonce), Le64(t.acceptor_nonce)});
}

FrameHeader ByeFrame() {
  FrameHeader h;
  h.type = FrameType::kBye;
  return h;
}

bool operator==(const TcpEndpoint& a, const TcpEndpoint& b) {
  return a.ipv4 == b.ipv4 && a.port == b.port && a.pid == b.pid && a.rank == b.rank &&
         a.nonce == b.nonce && a.hostname == b.hostname;
}

EndpointBlob EncodeEndpoint(const TcpEndpoint& e) {
  EndpointBlob blob;
  uint8_t* p = blob.bytes;
  EncodeBlobPrefix(BlobBackend::kTcp, kBlobVersion, &blob);
  p[8] = static_cast<uint8_t>(e.ipv4 >> 24);
  p[9] = static_cast<uint8_t>(e.ipv4 >> 16);
  p[10] = static_cast<uint8_t>(e.ipv4 >> 8);
  p[11] = static_cast<uint8_t>(e.ipv4);
  PutLe16(p + 12, e.port);
  PutLe32(p + 16, e.pid);
  PutLe32(p + 20, e.rank);
  PutLe64(p + 24, e.nonce);
  const size_t n = std::min(e.hostname.size(), kBlobHostnameBytes - 1);
  std::memcpy(p + 32, e.hostname.data(), n);
  return blob;
}

namespace {

const char* BackendName(uint16_t backend) {
  switch (static_cast<BlobBackend>(backend)) {
    case BlobBackend::kTcp: return "tcp";
    case BlobBackend::kVerbs: return "verbs";
    case BlobBackend::kShm: return "shm";
  }
  return "unknown";
}

}  // namespace

void EncodeBlobPrefix(BlobBackend backend, uint16_t version, EndpointBlob* blob) {
  PutLe32(blob->bytes + 0, kBlobMagic);
  PutLe16(blob->bytes + 4, static_cast<uint16_t>(backend));
  PutLe16(blob->bytes + 6, version);
}

absl::Status CheckBlobPrefix(const EndpointBlob& blob, BlobBackend expected, uint16_t version) {
  const uint8_t* p = blob.bytes;
  const uint32_t magic = GetLe32(p);
  if (magic != kBlobMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "not a gasp endpoint blob (magic 0x%08x, expected 0x%08x): the bootstrap exchange is "
        "corrupt or the ranks run different gasp builds",
        magic, kBlobMagic));
  }
  const uint16_t backend = GetLe16(p + 4);
  const char* mine = BackendName(static_cast<uint16_t>(expected));
  if (backend != static_cast<uint16_t>(expected)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "endpoint blob is from the %s backend (id %d), this rank uses %s: set the same "
        "GASP_TRANSPORT on every rank",
        BackendName(backend), backend, mine));
  }
  const uint16_t got = GetLe16(p + 6);
  if (got != version) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s endpoint blob version %d, this build speaks version %d: are all ranks running "
        "the same gasp build?",
        mine, got, version));
  }
  return absl::OkStatus();
}

absl::StatusOr<TcpEndpoint> DecodeEndpoint(const EndpointBlob& blob) {
  const uint8_t* p = blob.bytes;
  if (absl::Status s = CheckBlobPrefix(blob, BlobBackend::kTcp, kBlobVersion); !s.ok()) return s;
  TcpEndpoint e;
  e.ipv4 = (uint32_t{p[8]} << 24) | (uint32_t{p[9]} << 16) | (uint32_t{p[10]} << 8) | p[11];
  e.port = GetLe16(p + 12);
  e.pid = GetLe32(p + 16);
  e.rank = GetLe32(p + 20);
  e.nonce = GetLe64(p + 24);
  if (GetLe16(p + 14) != 0) {
    return absl::InvalidArgumentError("tcp endpoint blob: reserved bytes 14..15 are not zero");
  }
  for (size_t i = 32 + kBlobHostnameBytes; i < kEndpointBlobSize; ++i) {
    if (p[i] != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tcp endpoint blob: reserved byte %d is not zero", i));
    }
  }
  const char* host = reinterpret_cast<const char*>(p + 32);
  const size_t host_len = strnlen(host, kBlobHostnameBytes);
  if (host_len == kBlobHostnameBytes) {
    return absl::InvalidArgumentError("tcp endpoint blob: hostname is not NUL-terminated");
  }
  for (size_t i = host_len; i < kBlobHostnameBytes; ++i) {
    if (p[32 + i] != 0) {
      return absl::InvalidArgumentError("tcp endpoint blob: bytes after the hostname are not zero");
    }
  }
  e.hostname.assign(host, host_len);
  if (e.port == 0 || e.ipv4 == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tcp endpoint blob advertises %s, which cannot be connected to (check GASP_TCP_ADDR)",
        FormatAddress(e.ipv4, e.port)));
  }
  if (e.rank >= kMaxRanks) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tcp endpoint blob names rank %d, beyond the limit %d", e.rank, kMaxRanks));
  }
  return e;
}

std::string FormatAddress(uint32_t ipv4, uint16_t port) { return FormatIpv4(ipv4, port); }

}  // namespace tcp
}  // namespace transport
}  // namespace gasp

#include "boot/coordinator_wire.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/crypto.h"
#include "boot/byte_io.h"

namespace gasp {
namespace boot {
namespace wire {
namespace {

absl::Status Malformed(absl::string_view what, absl::string_view payload) {
  return absl::InvalidArgumentError(
      absl::StrFormat("malformed %s payload (%d bytes)", what, payload.size()));
}

// Common tail check: everything read, nothing left over.
absl::Status Finish(const ByteReader& r, absl::string_view what, absl::string_view payload) {
  if (!r.done()) return Malformed(what, payload);
  return absl::OkStatus();
}

}  // namespace

std::string MsgTypeName(uint16_t type) {
  switch (static_cast<MsgType>(type)) {
    case MsgType::kHello:
      return "HELLO";
    case MsgType::kWelcome:
      return "WELCOME";
    case MsgType::kError:
      return "ERROR";
    case MsgType::kAllgather:
      return "ALLGATHER";
    case MsgType::kAllgatherResult:
      return "ALLGATHER_RESULT";
    case MsgType::kAllgatherFail:
      return "ALLGATHER_FAIL";
    case MsgType::kAbort:
      return "ABORT";
    case MsgType::kRankDied:
      return "RANK_DIED";
    case MsgType::kFinalize:
      return "FINALIZE";
    case MsgType::kFinalizeAck:
      return "FINALIZE_ACK";
  }
  return absl::StrCat("type ", type);
}

const char* CollectiveName(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllgather:
      return "allgather";
    case CollectiveKind::kBarrier:
      return "barrier";
  }
  return "collective";
}

std::string EncodeFrame(uint16_t type, absl::string_view payload, uint16_t version) {
  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  ByteWriter w(&out);
  w.U32(kMagic);
  w.U16(version);
  w.U16(type);
  w.U32(static_cast<uint32_t>(payload.size()));
  out.append(payload.data(), payload.size());
  return out;
}

absl::StatusOr<std::optional<Frame>> DecodeFrame(absl::string_view bytes, size_t max_payload,
                                                 size_t* consumed) {
  *consumed = 0;
  // Check the magic as soon as its bytes are there, so that a peer speaking
  // another protocol (an HTTP probe, a port scanner) is refused at once.
  size_t have = bytes.size() < 4 ? bytes.size() : 4;
  for (size_t i = 0; i < have; ++i) {
    if (static_cast<uint8_t>(bytes[i]) != ((kMagic >> (8 * i)) & 0xff)) {
      return absl::InvalidArgumentError(
          "not a gasp coordinator frame (bad magic): the peer is not a gasp rank or coordinator");
    }
  }
  if (bytes.size() < kHeaderBytes) return std::optional<Frame>();
  ByteReader r(bytes);
  uint32_t magic, length;
  Frame f;
  r.U32(&magic);
  r.U16(&f.version);
  r.U16(&f.type);
  r.U32(&length);
  if (length > max_payload) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s frame announces %d payload bytes, more than the limit of %d",
                        MsgTypeName(f.type), length, max_payload));
  }
  if (bytes.size() - kHeaderBytes < length) return std::optional<Frame>();
  f.payload.assign(bytes.data() + kHeaderBytes, length);
  *consumed = kHeaderBytes + length;
  return std::optional<Frame>(std::move(f));
}

std::string EncodeHello(const Hello& m) {
  std::string out;
  ByteWriter w(&out);
  w.U16(m.protocol_version);
  w.I32(m.rank);
  w.I32(m.size);
  w.I32(m.pid);
  w.I64(m.timeout_ms);
  w.Bytes(m.job_id);
  w.Bytes(m.host);
  w.Bytes(m.proof);
  return out;
}

std::string HelloProof(absl::Span<const uint8_t> secret, const Hello& m) {
  const Mac mac = HmacSha256(
      secret, {"gasp-coordinator-v2", Le64(m.protocol_version), Le64(static_cast<uint32_t>(m.rank)),
               Le64(static_cast<uint32_t>(m.size)), Le64(static_cast<uint32_t>(m.pid)),
               Le64(static_cast<uint64_t>(m.timeout_ms)), Le64(m.job_id.size()), m.job_id,
               Le64(m.host.size()), m.host});
  return std::string(mac.begin(), mac.end());
}

absl::StatusOr<uint16_t> PeekHelloVersion(absl::string_view payload) {
  ByteReader r(payload);
  uint16_t v;
  if (!r.U16(&v)) return Malformed("HELLO", payload);
  return v;
}

absl::StatusOr<Hello> DecodeHello(absl::string_view payload) {
  ByteReader r(payload);
  Hello m;
  r.U16(&m.protocol_version);
  r.I32(&m.rank);
  r.I32(&m.size);
  r.I32(&m.pid);
  r.I64(&m.timeout_ms);
  r.Bytes(kMaxStringBytes, &m.job_id);
  r.Bytes(kMaxStringBytes, &m.host);
  r.Bytes(kMacBytes, &m.proof);
  if (absl::Status s = Finish(r, "HELLO", payload); !s.ok()) return s;
  return m;
}

std::string EncodeWelcome(const Welcome& m) {
  std::string out;
  ByteWriter w(&out);
  w.I32(m.size);
  w.Bytes(m.owner);
  return out;
}

absl::StatusOr<Welcome> DecodeWelcome(absl::string_view payload) {
  ByteReader r(payload);
  Welcome m;
  r.I32(&m.size);
  r.Bytes(kMaxStringBytes, &m.owner);
  if (absl::Status s = Finish(r, "WELCOME", payload); !s.ok()) return s;
  return m;
}

std::string EncodeError(const Error& m) {
  std::string out;
  ByteWriter w(&out);
  w.U32(m.code);
  w.Bytes(m.message);
  return out;
}

absl::StatusOr<Error> DecodeError(absl::string_view payload) {
  ByteReader r(payload);
  Error m;
  r.U32(&m.code);
  r.Bytes(kMaxStringBytes, &m.message);
  if (absl::Status s = Finish(r, "ERROR", payload); !s.ok()) return s;
  return m;
}

std::string EncodeAllgather(const Allgather& m) {
  std::string out;
  ByteWriter w(&out);
  w.U64(m.seq);
  w.U8(static_cast<uint8_t>(m.kind));
  w.I64(m.wait_ms);
  w.Bytes(m.blob);
  return out;
}

absl::StatusOr<Allgather> DecodeAllgather(absl::string_view payload) {
  ByteReader r(payload);
  Allgather m;
  uint8_t kind = 0;
  r.U64(&m.seq);
  r.U8(&kind);
  r.I64(&m.wait_ms);
  r.Bytes(kMaxBlobBytes, &m.blob);
  if (absl::Status s = Finish(r, "ALLGATHER", payload); !s.ok()) return s;
  if (kind > static_cast<uint8_t>(CollectiveKind::kBarrier)) return Malformed("ALLGATHER", payload);
  m.kind = static_cast<CollectiveKind>(kind);
  return m;
}

std::string EncodeAllgatherResult(const AllgatherResult& m) {
  std::string out;
  ByteWriter w(&out);
  w.U64(m.seq);
  w.U32(static_cast<uint32_t>(m.blobs.size()));
  for (const std::string& b : m.blobs) w.Bytes(b);
  return out;
}

absl::StatusOr<AllgatherResult> DecodeAllgatherResult(absl::string_view payload) {
  ByteReader r(payload);
  AllgatherResult m;
  uint32_t count = 0;
  r.U64(&m.seq);
  r.U32(&count);
  // Each entry takes at least its 4-byte length: refuse counts the payload
  // cannot hold before reserving anything.
  if (r.failed() || count > static_cast<uint32_t>(kMaxRanks) || count > r.remaining() / 4) {
    return Malformed("ALLGATHER_RESULT", payload);
  }
  m.blobs.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (!r.Bytes(kMaxBlobBytes, &m.blobs[i])) break;
  }
  if (absl::Status s = Finish(r, "ALLGATHER_RESULT", payload); !s.ok()) return s;
  return m;
}

std::string EncodeAllgatherFail(const AllgatherFail& m) {
  std::string out;
  ByteWriter w(&out);
  w.U64(m.seq);
  w.U32(m.code);
  w.U32(static_cast<uint32_t>(m.missing.size()));
  for (int32_t rank : m.missing) w.I32(rank);
  w.Bytes(m.message);
  return out;
}

absl::StatusOr<AllgatherFail> DecodeAllgatherFail(absl::string_view payload) {
  ByteReader r(payload);
  AllgatherFail m;
  uint32_t count = 0;
  r.U64(&m.seq);
  r.U32(&m.code);
  r.U32(&count);
  if (r.failed() || count > static_cast<uint32_t>(kMaxRanks) || count > r.remaining() / 4) {
    return Malformed("ALLGATHER_FAIL", payload);
  }
  m.missing.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (!r.I32(&m.missing[i])) break;
  }
  r.Bytes(kMaxStringBytes, &m.message);
  if (absl::Status s = Finish(r, "ALLGATHER_FAIL", payload); !s.ok()) return s;
  return m;
}

std::string EncodeAbort(const Abort& m) {
  std::string out;
  ByteWriter w(&out);
  w.I32(m.rank);
  w.I32(m.code);
  w.Bytes(m.host);
  w.I32(m.pid);
  w.Bytes(m.message);
  return out;
}

absl::StatusOr<Abort> DecodeAbort(absl::string_view payload) {
  ByteReader r(payload);
  Abort m;
  r.I32(&m.rank);
  r.I32(&m.code);
  r.Bytes(kMaxStringBytes, &m.host);
  r.I32(&m.pid);
  r.Bytes(kMaxStringBytes, &m.message);
  if (absl::Status s = Finish(r, "ABORT", payload); !s.ok()) return s;
  return m;
}

std::string EncodeRankDied(const RankDied& m) {
  std::string out;
  ByteWriter w(&out);
  w.I32(m.rank);
  w.I32(m.pid);
  w.Bytes(m.host);
  w.Bytes(m.reason);
  return out;
}

absl::StatusOr<RankDied> DecodeRankDied(absl::string_view payload) {
  ByteReader r(payload);
  RankDied m;
  r.I32(&m.rank);
  r.I32(&m.pid);
  r.Bytes(kMaxStringBytes, &m.host);
  r.Bytes(kMaxStringBytes, &m.reason);
  if (absl::Status s = Finish(r, "RANK_DIED", payload); !s.ok()) return s;
  return m;
}

absl::Status DecodeEmpty(absl::string_view payload, uint16_t type) {
  if (!payload.empty()) return Malformed(MsgTypeName(type), payload);
  return absl::OkStatus();
}

}  // namespace wire
}  // namespace boot
}  // namespace gasp

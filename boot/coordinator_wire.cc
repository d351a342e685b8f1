#include "boot/coordinator_wire.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/crypto.h"
#include "base/status.h"
#include "boot/byte_io.h"

namespace gasp {
namespace boot {
namespace wire {
namespace {

absl::Status Malformed(absl::string_view what, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("malformed ", what, " payload: ", why));
}

// Parses `payload` as T. Protobuf refuses truncated fields and lengths
// beyond the input; unknown fields (from a newer build) are kept, not
// trusted.
template <typename T>
absl::StatusOr<T> Parse(absl::string_view payload, absl::string_view what) {
  T m;
  if (!m.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Malformed(what, absl::StrFormat("not a %s message (%d bytes)", what, payload.size()));
  }
  return m;
}

// Host names, job ids and messages are quoted in logs and errors: bounded.
absl::Status CheckText(const std::string& s, absl::string_view what, absl::string_view field) {
  if (s.size() > kMaxStringBytes) {
    return Malformed(what, absl::StrFormat("%s of %d bytes, more than %d", field, s.size(),
                                           kMaxStringBytes));
  }
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

absl::StatusCode ErrorCode(uint32_t code) {
  if (code == 0 || code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)) {
    return absl::StatusCode::kUnknown;
  }
  return static_cast<absl::StatusCode>(code);
}

const char* CollectiveName(CollectiveKind kind) {
  switch (kind) {
    case COLLECTIVE_ALLGATHER:
      return "allgather";
    case COLLECTIVE_BARRIER:
      return "barrier";
    default:
      break;
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

std::string HelloProof(absl::Span<const uint8_t> secret, const Hello& m) {
  const Mac mac = HmacSha256(
      secret, {"gasp-coordinator-v3", Le64(m.protocol_version()),
               Le64(static_cast<uint32_t>(m.rank())), Le64(static_cast<uint32_t>(m.size())),
               Le64(static_cast<uint32_t>(m.pid())), Le64(static_cast<uint64_t>(m.timeout_ms())),
               Le64(m.job_id().size()), m.job_id(), Le64(m.host().size()), m.host()});
  return std::string(mac.begin(), mac.end());
}

absl::StatusOr<Hello> DecodeHello(absl::string_view payload) {
  GASP_ASSIGN_OR_RETURN(Hello m, Parse<Hello>(payload, "HELLO"));
  GASP_RETURN_IF_ERROR(CheckText(m.job_id(), "HELLO", "job id"));
  GASP_RETURN_IF_ERROR(CheckText(m.host(), "HELLO", "host"));
  if (m.proof().size() > kMacBytes) return Malformed("HELLO", "proof longer than an HMAC");
  return m;
}

absl::StatusOr<Welcome> DecodeWelcome(absl::string_view payload) {
  GASP_ASSIGN_OR_RETURN(Welcome m, Parse<Welcome>(payload, "WELCOME"));
  GASP_RETURN_IF_ERROR(CheckText(m.owner(), "WELCOME", "owner"));
  return m;
}

std::string EncodeError(const Error& m) {
  std::string out;
  ByteWriter w(&out);
  w.U32(m.code);
  w.Bytes(m.message.substr(0, kMaxStringBytes));
  return out;
}

absl::StatusOr<Error> DecodeError(absl::string_view payload) {
  ByteReader r(payload);
  Error m;
  r.U32(&m.code);
  r.Bytes(kMaxStringBytes, &m.message);
  if (!r.done()) {
    return Malformed("ERROR", absl::StrFormat("not a u32 code and a message of at most %d bytes "
                                              "(%d bytes)",
                                              kMaxStringBytes, payload.size()));
  }
  return m;
}

absl::StatusOr<Allgather> DecodeAllgather(absl::string_view payload) {
  GASP_ASSIGN_OR_RETURN(Allgather m, Parse<Allgather>(payload, "ALLGATHER"));
  if (!CollectiveKind_IsValid(m.kind())) return Malformed("ALLGATHER", "unknown collective kind");
  if (m.blob().size() > kMaxBlobBytes) return Malformed("ALLGATHER", "blob over the limit");
  return m;
}

absl::StatusOr<AllgatherResult> DecodeAllgatherResult(absl::string_view payload) {
  GASP_ASSIGN_OR_RETURN(AllgatherResult m, Parse<AllgatherResult>(payload, "ALLGATHER_RESULT"));
  if (m.blobs_size() > kMaxRanks) return Malformed("ALLGATHER_RESULT", "more blobs than ranks");
  for (const std::string& b : m.blobs()) {
    if (b.size() > kMaxBlobBytes) return Malformed("ALLGATHER_RESULT", "blob over the limit");
  }
  return m;
}

absl::StatusOr<AllgatherFail> DecodeAllgatherFail(absl::string_view payload) {
  GASP_ASSIGN_OR_RETURN(AllgatherFail m, Parse<AllgatherFail>(payload, "ALLGATHER_FAIL"));
  if (m.missing_size() > kMaxRanks) return Malformed("ALLGATHER_FAIL", "more ranks than a job");
  GASP_RETURN_IF_ERROR(CheckText(m.message(), "ALLGATHER_FAIL", "message"));
  return m;
}

absl::StatusOr<Abort> DecodeAbort(absl::string_view payload) {
  GASP_ASSIGN_OR_RETURN(Abort m, Parse<Abort>(payload, "ABORT"));
  GASP_RETURN_IF_ERROR(CheckText(m.host(), "ABORT", "host"));
  GASP_RETURN_IF_ERROR(CheckText(m.message(), "ABORT", "message"));
  return m;
}

absl::StatusOr<RankDied> DecodeRankDied(absl::string_view payload) {
  GASP_ASSIGN_OR_RETURN(RankDied m, Parse<RankDied>(payload, "RANK_DIED"));
  GASP_RETURN_IF_ERROR(CheckText(m.host(), "RANK_DIED", "host"));
  GASP_RETURN_IF_ERROR(CheckText(m.reason(), "RANK_DIED", "reason"));
  return m;
}

absl::Status DecodeEmpty(absl::string_view payload, uint16_t type) {
  if (!payload.empty()) {
    return Malformed(MsgTypeName(type), absl::StrFormat("%d bytes, expected none", payload.size()));
  }
  return absl::OkStatus();
}

}  // namespace wire
}  // namespace boot
}  // namespace gasp

#include "boot/endpoint_exchange.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "boot/byte_io.h"
#include "boot/net.h"

namespace gasp {
namespace boot {
namespace {

// The host name of a (possibly foreign) record, for messages: printable
// bytes of its host field, or "" when it cannot be trusted.
std::string ForeignHost(absl::string_view bytes) {
  constexpr size_t kHostOffset = 16;
  if (bytes.size() < kHostOffset + kRankRecordHostBytes) return "";
  std::string host;
  for (size_t i = 0; i < kRankRecordHostBytes; ++i) {
    char c = bytes[kHostOffset + i];
    if (c == '\0') break;
    if (c < 0x20 || c > 0x7e) return "";
    host.push_back(c);
  }
  return host;
}

}  // namespace

RankRecord MakeRankRecord(int rank, absl::string_view transport_blob) {
  RankRecord r;
  r.rank = rank;
  r.pid = static_cast<int32_t>(getpid());
  std::string host = ShortHostName();
  std::memcpy(r.host, host.data(), std::min(host.size(), kRankRecordHostBytes - 1));
  std::memcpy(r.transport_blob, transport_blob.data(),
              std::min(transport_blob.size(), kRankRecordBlobBytes));
  return r;
}

std::string EncodeRankRecord(const RankRecord& r) {
  std::string out;
  out.reserve(kRankRecordBytes);
  ByteWriter w(&out);
  w.U32(r.magic);
  w.U16(r.version);
  w.U16(r.record_bytes);
  w.I32(r.rank);
  w.I32(r.pid);
  size_t host_len = strnlen(r.host, kRankRecordHostBytes - 1);
  w.Fixed(absl::string_view(r.host, host_len), kRankRecordHostBytes);
  w.Fixed(absl::string_view(reinterpret_cast<const char*>(r.transport_blob), kRankRecordBlobBytes),
          kRankRecordBlobBytes);
  for (uint64_t e : r.extra) w.U64(e);
  return out;
}

absl::StatusOr<RankRecord> DecodeRankRecord(absl::string_view bytes) {
  ByteReader r(bytes);
  RankRecord rec;
  if (!r.U32(&rec.magic) || !r.U16(&rec.version) || !r.U16(&rec.record_bytes)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "a rank record of %d bytes is too short to be one (expected %d): rebuild every rank "
        "from the same gasp",
        bytes.size(), kRankRecordBytes));
  }
  if (rec.magic != kRankRecordMagic) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "not a gasp rank record (magic %#x, expected %#x): rebuild every rank from the same gasp",
        rec.magic, kRankRecordMagic));
  }
  if (rec.version != kRankRecordVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "rank record version %d, this rank uses version %d: rebuild every rank from the same "
        "gasp",
        rec.version, kRankRecordVersion));
  }
  if (rec.record_bytes != kRankRecordBytes || bytes.size() != kRankRecordBytes) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "rank record version %d of %d bytes (header says %d), this rank's are %d bytes: rebuild "
        "every rank from the same gasp",
        rec.version, bytes.size(), rec.record_bytes, kRankRecordBytes));
  }
  r.I32(&rec.rank);
  r.I32(&rec.pid);
  r.Raw(kRankRecordHostBytes, rec.host);
  r.Raw(kRankRecordBlobBytes, rec.transport_blob);
  for (uint64_t& e : rec.extra) r.U64(&e);
  if (!r.done()) return absl::InternalError("rank record decoder out of step");  // unreachable
  if (std::memchr(rec.host, '\0', kRankRecordHostBytes) == nullptr) {
    return absl::InvalidArgumentError("corrupt rank record: host name not NUL-terminated");
  }
  if (rec.rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("corrupt rank record: negative rank %d", rec.rank));
  }
  return rec;
}

absl::StatusOr<std::vector<RankRecord>> ExchangeRecords(Bootstrap& bootstrap,
                                                        const RankRecord& mine,
                                                        absl::Time deadline) {
  if (mine.rank != bootstrap.rank()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ExchangeRecords: the record says rank %d but this is rank %d", mine.rank,
                        bootstrap.rank()));
  }
  GASP_ASSIGN_OR_RETURN(std::vector<std::string> blobs,
                        bootstrap.Allgather(EncodeRankRecord(mine), deadline));
  if (static_cast<int>(blobs.size()) != bootstrap.size()) {
    return absl::InternalError(absl::StrFormat("ExchangeRecords: %d records for %d ranks",
                                               blobs.size(), bootstrap.size()));
  }
  std::vector<RankRecord> out;
  out.reserve(blobs.size());
  for (int r = 0; r < static_cast<int>(blobs.size()); ++r) {
    absl::StatusOr<RankRecord> rec = DecodeRankRecord(blobs[r]);
    if (!rec.ok()) {
      std::string host = ForeignHost(blobs[r]);
      return absl::Status(rec.status().code(),
                          absl::StrFormat("rank %d%s sent a record that rank %d cannot use: %s", r,
                                          host.empty() ? "" : absl::StrCat(" (", host, ")"),
                                          bootstrap.rank(), rec.status().message()));
    }
    if (rec->rank != r) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the record at position %d (host %s, pid %d) claims rank %d: the ranks disagree about "
          "who is who (rebuild every rank from the same gasp, and check the launcher's rank "
          "variables)",
          r, rec->host, rec->pid, rec->rank));
    }
    out.push_back(*rec);
  }
  return out;
}

}  // namespace boot
}  // namespace gasp

#include "boot/endpoint_exchange.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "boot/net.h"

namespace gasp {
namespace boot {
namespace {

constexpr char kRebuild[] = "rebuild every rank from the same gasp";

bool Printable(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// Parses `bytes` as a record of any version, unchecked.
bool ParseRecord(absl::string_view bytes, RankRecord* r) {
  return bytes.size() <= kMaxRankRecordBytes &&
         r->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

// The host name of a (possibly foreign) record, for messages: its host
// field when the bytes parse and the name is printable, else "".
std::string ForeignHost(absl::string_view bytes) {
  RankRecord r;
  if (!ParseRecord(bytes, &r) || r.host().size() > kRankRecordHostBytes || !Printable(r.host())) {
    return "";
  }
  return r.host();
}

absl::Status CheckContent(const RankRecord& rec) {
  if (rec.host().size() > kRankRecordHostBytes || !Printable(rec.host())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "corrupt rank record: host name of %d bytes (at most %d printable)", rec.host().size(),
        kRankRecordHostBytes));
  }
  if (rec.transport_blob().size() > kRankRecordBlobBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("corrupt rank record: transport endpoint of %d bytes (at most %d)",
                        rec.transport_blob().size(), kRankRecordBlobBytes));
  }
  if (rec.rank() < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("corrupt rank record: negative rank %d", rec.rank()));
  }
  return absl::OkStatus();
}

}  // namespace

RankRecord MakeRankRecord(int rank, absl::string_view transport_blob) {
  RankRecord r;
  r.set_magic(kRankRecordMagic);
  r.set_version(kRankRecordVersion);
  r.set_rank(rank);
  r.set_pid(static_cast<int32_t>(getpid()));
  // What DecodeRankRecord accepts: at most 63 printable bytes.
  std::string host = ShortHostName().substr(0, kRankRecordHostBytes);
  for (char& c : host) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  r.set_host(host);
  r.set_transport_blob(std::string(transport_blob.substr(0, kRankRecordBlobBytes)));
  return r;
}

absl::StatusOr<RankRecord> DecodeRankRecord(absl::string_view bytes) {
  RankRecord rec;
  if (!ParseRecord(bytes, &rec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%d bytes that are not a gasp rank record of this version: %s", bytes.size(), kRebuild));
  }
  if (rec.magic() != kRankRecordMagic) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "not a gasp rank record (magic %#x, expected %#x): %s", rec.magic(), kRankRecordMagic,
        kRebuild));
  }
  if (rec.version() != kRankRecordVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("rank record version %d, this rank uses version %d: %s", rec.version(),
                        kRankRecordVersion, kRebuild));
  }
  GASP_RETURN_IF_ERROR(CheckContent(rec));
  return rec;
}

absl::StatusOr<std::vector<RankRecord>> ExchangeRecords(Bootstrap& bootstrap,
                                                        const RankRecord& mine,
                                                        absl::Time deadline) {
  if (mine.rank() != bootstrap.rank()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ExchangeRecords: the record says rank %d but this is rank %d", mine.rank(),
                        bootstrap.rank()));
  }
  GASP_ASSIGN_OR_RETURN(std::vector<std::string> blobs,
                        bootstrap.Allgather(mine.SerializeAsString(), deadline));
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
    if (rec->rank() != r) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the record at position %d (host %s, pid %d) claims rank %d: the ranks disagree about "
          "who is who (rebuild every rank from the same gasp, and check the launcher's rank "
          "variables)",
          r, rec->host(), rec->pid(), rec->rank()));
    }
    out.push_back(*std::move(rec));
  }
  return out;
}

}  // namespace boot
}  // namespace gasp

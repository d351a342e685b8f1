#include "consistency/collective.h"

#include <cstring>

#include "absl/strings/str_format.h"

namespace gasp {
namespace consistency {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t HashText(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

void CollectiveStamp::Note(const std::string& description) {
  ++seq;
  last = description.substr(0, kMaxCollectiveDesc);
  hash = Mix(hash ^ HashText(last) ^ (seq << 1));
}

void AppendStamp(const CollectiveStamp& stamp, std::vector<uint8_t>* out) {
  uint8_t b[17];
  std::memcpy(b, &stamp.seq, 8);
  std::memcpy(b + 8, &stamp.hash, 8);
  const size_t n = std::min(stamp.last.size(), kMaxCollectiveDesc);
  b[16] = static_cast<uint8_t>(n);
  out->insert(out->end(), b, b + 17);
  out->insert(out->end(), stamp.last.begin(), stamp.last.begin() + n);
}

absl::StatusOr<size_t> DecodeStamp(absl::Span<const uint8_t> bytes, CollectiveStamp* out) {
  if (bytes.size() < 17) return absl::InvalidArgumentError("collective stamp: truncated");
  std::memcpy(&out->seq, bytes.data(), 8);
  std::memcpy(&out->hash, bytes.data() + 8, 8);
  const size_t n = bytes[16];
  if (n > kMaxCollectiveDesc || bytes.size() - 17 < n) {
    return absl::InvalidArgumentError("collective stamp: bad description length");
  }
  out->last.assign(reinterpret_cast<const char*>(bytes.data() + 17), n);
  for (char c : out->last) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError("collective stamp: unprintable description");
    }
  }
  return 17 + n;
}

absl::Status CompareStamps(const CollectiveStamp& mine, const CollectiveStamp& theirs, int rank,
                           const std::string& peer) {
  if (mine.seq == theirs.seq && mine.hash == theirs.hash) return absl::OkStatus();
  std::string where =
      mine.seq == theirs.seq
          ? absl::StrFormat("collective #%u", mine.seq)
          : absl::StrFormat("collective #%u here, #%u there", mine.seq, theirs.seq);
  if (mine.seq == theirs.seq && mine.last == theirs.last) {
    // The latest calls agree: an earlier one (one that does not synchronize
    // by itself, such as CoGrant or a CoNewLock from an existing segment)
    // had other arguments.
    where += "; an earlier collective call differed";
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "collective mismatch: %s called %s where this rank (rank %d) called %s (%s); every rank "
      "must make the same collective calls (CoAlloc, CoNew*, CoGrant, Barrier, Allreduce, Finalize) with the "
      "same arguments in the same order",
      peer, theirs.last.empty() ? "nothing yet" : theirs.last, rank,
      mine.last.empty() ? "nothing yet" : mine.last, where));
}

}  // namespace consistency
}  // namespace gasp

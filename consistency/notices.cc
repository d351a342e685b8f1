#include "consistency/notices.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"

namespace gasp {
namespace consistency {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t CheckOf(uint64_t tag, uint64_t run) { return Mix(tag ^ Mix(run)) | 1; }

void Put32(std::vector<uint8_t>* out, uint32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  out->insert(out->end(), b, b + 4);
}
void Put64(std::vector<uint8_t>* out, uint64_t v) {
  uint8_t b[8];
  std::memcpy(b, &v, 8);
  out->insert(out->end(), b, b + 8);
}

// Bounds-checked little-endian reader.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> b) : b_(b) {}
  bool U32(uint32_t* v) { return Take(v, 4); }
  bool U64(uint64_t* v) { return Take(v, 8); }
  size_t left() const { return b_.size() - at_; }
  void Skip(size_t n) { at_ += n; }

 private:
  template <typename T>
  bool Take(T* v, size_t n) {
    if (left() < n) return false;
    std::memcpy(v, b_.data() + at_, n);
    at_ += n;
    return true;
  }
  absl::Span<const uint8_t> b_;
  size_t at_ = 0;
};

constexpr size_t kRunBytes = 16;

// `n_runs` runs of rank `origin`, each non-empty and inside the range.
absl::Status ReadRuns(Reader* in, uint32_t n_runs, uint32_t origin, uint64_t num_pages,
                      const char* what, std::vector<PageRun>* runs) {
  if (n_runs > in->left() / kRunBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": truncated runs"));
  }
  runs->resize(n_runs);
  for (PageRun& r : *runs) {
    in->U64(&r.first);
    in->U64(&r.count);
    if (r.count == 0 || r.first >= num_pages || r.count > num_pages - r.first) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: pages [%u, +%u) of rank %u outside the range of %u pages", what,
                          r.first, r.count, origin, num_pages));
    }
  }
  return absl::OkStatus();
}

void PutRuns(absl::Span<const PageRun> runs, std::vector<uint8_t>* out) {
  for (const PageRun& r : runs) {
    Put64(out, r.first);
    Put64(out, r.count);
  }
}

}  // namespace

void AppendPage(uint64_t page, std::vector<PageRun>* runs) {
  if (!runs->empty() && runs->back().first + runs->back().count == page) {
    ++runs->back().count;
    return;
  }
  runs->push_back({page, 1});
}

std::vector<uint8_t> EncodeBarrierMessage(const BarrierMessage& m) {
  size_t bytes = 16;
  for (const Contribution& c : m.contributions) {
    bytes += 12 + c.runs.size() * kRunBytes + c.values.size() * 8;
  }
  std::vector<uint8_t> out;
  out.reserve(bytes);
  Put64(&out, m.epoch);
  Put32(&out, m.distance);
  Put32(&out, static_cast<uint32_t>(m.contributions.size()));
  AppendStamp(m.stamp, &out);
  for (const Contribution& c : m.contributions) {
    Put32(&out, static_cast<uint32_t>(c.origin));
    Put32(&out, static_cast<uint32_t>(c.runs.size()));
    Put32(&out, static_cast<uint32_t>(c.values.size()));
    PutRuns(c.runs, &out);
    for (double v : c.values) {
      uint64_t bits;
      std::memcpy(&bits, &v, 8);
      Put64(&out, bits);
    }
  }
  return out;
}

absl::StatusOr<BarrierMessage> DecodeBarrierMessage(absl::Span<const uint8_t> bytes, int nranks,
                                                    uint64_t num_pages) {
  Reader in(bytes);
  BarrierMessage m;
  uint32_t n_contrib = 0;
  if (!in.U64(&m.epoch) || !in.U32(&m.distance) || !in.U32(&n_contrib)) {
    return absl::InvalidArgumentError("barrier message: truncated header");
  }
  absl::StatusOr<size_t> stamp =
      DecodeStamp(bytes.subspan(bytes.size() - in.left()), &m.stamp);
  if (!stamp.ok()) return absl::InvalidArgumentError(absl::StrCat("barrier message: ", stamp.status().message()));
  in.Skip(*stamp);
  if (n_contrib > static_cast<uint32_t>(nranks)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("barrier message: %u contributions for %d ranks", n_contrib, nranks));
  }
  std::vector<bool> seen(nranks, false);
  m.contributions.resize(n_contrib);
  for (Contribution& c : m.contributions) {
    uint32_t origin = 0, n_runs = 0, n_values = 0;
    if (!in.U32(&origin) || !in.U32(&n_runs) || !in.U32(&n_values)) {
      return absl::InvalidArgumentError("barrier message: truncated contribution");
    }
    if (origin >= static_cast<uint32_t>(nranks) || seen[origin]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "barrier message: contribution of rank %u (out of range or repeated)", origin));
    }
    seen[origin] = true;
    c.origin = static_cast<int>(origin);
    GASP_RETURN_IF_ERROR(ReadRuns(&in, n_runs, origin, num_pages, "barrier message", &c.runs));
    if (n_values > kMaxReduceValues || n_values > in.left() / 8) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "barrier message: %u reduction values of rank %u (at most %u, or truncated)", n_values,
          origin, kMaxReduceValues));
    }
    c.values.resize(n_values);
    for (double& v : c.values) {
      uint64_t bits = 0;
      in.U64(&bits);
      std::memcpy(&v, &bits, 8);
    }
  }
  if (in.left() != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("barrier message: %u trailing bytes", in.left()));
  }
  return m;
}

void MergeRuns(std::vector<PageRun>* runs) {
  std::sort(runs->begin(), runs->end(),
            [](const PageRun& a, const PageRun& b) { return a.first < b.first; });
  size_t out = 0;
  for (const PageRun& r : *runs) {
    if (out > 0 && (*runs)[out - 1].first + (*runs)[out - 1].count >= r.first) {
      PageRun& last = (*runs)[out - 1];
      last.count = std::max(last.count, r.first + r.count - last.first);
    } else {
      (*runs)[out++] = r;
    }
  }
  runs->resize(out);
}

void SubtractRuns(absl::Span<const PageRun> runs, absl::Span<const PageRun> minus,
                  std::vector<PageRun>* out) {
  size_t m = 0;
  for (const PageRun& r : runs) {
    uint64_t at = r.first;
    const uint64_t end = r.first + r.count;
    while (at < end) {
      while (m < minus.size() && minus[m].first + minus[m].count <= at) ++m;
      if (m == minus.size() || minus[m].first >= end) {
        out->push_back({at, end - at});
        break;
      }
      if (minus[m].first > at) out->push_back({at, minus[m].first - at});
      at = std::min(end, minus[m].first + minus[m].count);
    }
  }
}

size_t CountRuns(absl::Span<const Contribution> contributions) {
  size_t n = 0;
  for (const Contribution& c : contributions) n += c.runs.size();
  return n;
}

std::vector<uint8_t> EncodeCarriedNotices(absl::Span<const Contribution> contributions) {
  std::vector<uint8_t> out;
  if (contributions.empty()) return out;
  out.reserve(4 + contributions.size() * 8 + CountRuns(contributions) * kRunBytes);
  Put32(&out, static_cast<uint32_t>(contributions.size()));
  for (const Contribution& c : contributions) {
    Put32(&out, static_cast<uint32_t>(c.origin));
    Put32(&out, static_cast<uint32_t>(c.runs.size()));
    PutRuns(c.runs, &out);
  }
  return out;
}

absl::StatusOr<std::vector<Contribution>> DecodeCarriedNotices(absl::Span<const uint8_t> bytes,
                                                                int nranks, uint64_t num_pages) {
  std::vector<Contribution> out;
  if (bytes.empty()) return out;
  Reader in(bytes);
  uint32_t n_contrib = 0;
  if (!in.U32(&n_contrib) || n_contrib == 0 || n_contrib > static_cast<uint32_t>(nranks)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "carried notices: %u contributions for %d ranks (or truncated)", n_contrib, nranks));
  }
  std::vector<bool> seen(nranks, false);
  size_t total = 0;
  out.resize(n_contrib);
  for (Contribution& c : out) {
    uint32_t origin = 0, n_runs = 0;
    if (!in.U32(&origin) || !in.U32(&n_runs)) {
      return absl::InvalidArgumentError("carried notices: truncated contribution");
    }
    if (origin >= static_cast<uint32_t>(nranks) || seen[origin] || n_runs == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "carried notices: contribution of rank %u (out of range, repeated or empty)", origin));
    }
    seen[origin] = true;
    total += n_runs;
    if (total > kMaxCarriedRuns) {
      return absl::InvalidArgumentError(
          absl::StrFormat("carried notices: more than %u runs", kMaxCarriedRuns));
    }
    c.origin = static_cast<int>(origin);
    GASP_RETURN_IF_ERROR(ReadRuns(&in, n_runs, origin, num_pages, "carried notices", &c.runs));
    for (size_t i = 1; i < c.runs.size(); ++i) {
      if (c.runs[i].first <= c.runs[i - 1].first + c.runs[i - 1].count) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "carried notices: runs of rank %u not ascending and apart at run %u", origin, i));
      }
    }
  }
  if (in.left() != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("carried notices: %u trailing bytes", in.left()));
  }
  return out;
}

void AppendLogEntries(int origin, absl::Span<const PageRun> runs, std::vector<LogEntry>* out) {
  for (const PageRun& r : runs) {
    for (uint64_t done = 0; done < r.count;) {
      const uint64_t n = std::min(r.count - done, kMaxLogRunPages);
      LogEntry e;
      e.tag = static_cast<uint32_t>(origin);
      e.run = ((r.first + done) << 20) | n;
      out->push_back(e);
      done += n;
    }
  }
}

void SealLogEntry(uint64_t lap, LogEntry* e) {
  e->tag = (lap << 32) | (e->tag & 0xffffffffu);
  e->check = CheckOf(e->tag, e->run);
}

EntryState DecodeLogEntry(const LogEntry& e, uint64_t lap, int nranks, uint64_t num_pages,
                          int* origin, PageRun* run) {
  if ((e.tag >> 32) != (lap & 0xffffffffu) || e.check != CheckOf(e.tag, e.run)) {
    return EntryState::kNotYet;
  }
  const uint64_t o = e.tag & 0xffffffffu;
  const uint64_t first = e.run >> 20, count = e.run & kMaxLogRunPages;
  if (o >= static_cast<uint64_t>(nranks) || count == 0 || first >= num_pages ||
      count > num_pages - first) {
    return EntryState::kCorrupt;
  }
  *origin = static_cast<int>(o);
  *run = {first, count};
  return EntryState::kValid;
}

}  // namespace consistency
}  // namespace gasp

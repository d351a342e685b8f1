// Fuzz target for the write-notice decoders (consistency/notices.h): barrier
// messages, notices carried by shipped calls and notice-log entries, all
// bytes other ranks sent.
// Checks, besides "no crash, no sanitizer report": an accepted barrier
// message re-encodes to the same bytes and stays inside the range; a valid
// log entry names an existing rank and pages inside the range.
//   libFuzzer: bazel build --config=fuzz //consistency:notices_fuzzer
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "consistency/notices.h"

using gasp::consistency::BarrierMessage;
using gasp::consistency::DecodeBarrierMessage;
using gasp::consistency::DecodeLogEntry;
using gasp::consistency::EncodeBarrierMessage;
using gasp::consistency::EntryState;
using gasp::consistency::LogEntry;
using gasp::consistency::PageRun;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int kRanks = 8;
  constexpr uint64_t kPages = 1 << 20;
  auto m = DecodeBarrierMessage(absl::MakeConstSpan(data, size), kRanks, kPages);
  if (m.ok()) {
    const std::vector<uint8_t> again = EncodeBarrierMessage(*m);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) {
      std::fprintf(stderr, "notices_fuzzer: accepted message does not re-encode the same\n");
      std::abort();
    }
    for (const auto& c : m->contributions) {
      for (const PageRun& r : c.runs) {
        if (r.count == 0 || r.first + r.count > kPages) std::abort();
      }
    }
  }
  auto carried = gasp::consistency::DecodeCarriedNotices(absl::MakeConstSpan(data, size), kRanks,
                                                         kPages);
  if (carried.ok()) {
    const std::vector<uint8_t> again = gasp::consistency::EncodeCarriedNotices(*carried);
    if (again.size() != size || (size > 0 && std::memcmp(again.data(), data, size) != 0)) {
      std::fprintf(stderr, "notices_fuzzer: accepted carried notices do not re-encode the same\n");
      std::abort();
    }
    size_t runs = 0;
    for (const auto& c : *carried) {
      runs += c.runs.size();
      for (size_t i = 0; i < c.runs.size(); ++i) {
        const PageRun& r = c.runs[i];
        if (r.count == 0 || r.first + r.count > kPages) std::abort();
        if (i > 0 && r.first <= c.runs[i - 1].first + c.runs[i - 1].count) std::abort();
      }
    }
    if (runs > gasp::consistency::kMaxCarriedRuns) std::abort();
  }
  for (size_t at = 0; at + sizeof(LogEntry) <= size; at += sizeof(LogEntry)) {
    LogEntry e;
    std::memcpy(&e, data + at, sizeof(e));
    int origin = -1;
    PageRun r;
    if (DecodeLogEntry(e, e.tag >> 32, kRanks, kPages, &origin, &r) == EntryState::kValid &&
        (origin < 0 || origin >= kRanks || r.count == 0 || r.first + r.count > kPages)) {
      std::abort();
    }
  }
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  BarrierMessage m;
  m.epoch = 3;
  m.distance = 1;
  add(ctx, EncodeBarrierMessage(m).data(), EncodeBarrierMessage(m).size());
  m.stamp.Note("CoAlloc(4096 bytes, block)");
  m.contributions.push_back({2, {{0, 4}, {100, 1}}});
  m.contributions.push_back({5, {{7, 9}}});
  const std::vector<uint8_t> two = EncodeBarrierMessage(m);
  add(ctx, two.data(), two.size());
  const std::vector<uint8_t> carried =
      gasp::consistency::EncodeCarriedNotices({{2, {{0, 4}, {100, 1}}, {}}, {5, {{7, 9}}, {}}});
  add(ctx, carried.data(), carried.size());
  std::vector<LogEntry> entries;
  const PageRun runs[] = {{1, 2}, {50, 3}};
  gasp::consistency::AppendLogEntries(1, runs, &entries);
  for (LogEntry& e : entries) gasp::consistency::SealLogEntry(4, &e);
  add(ctx, reinterpret_cast<const uint8_t*>(entries.data()), entries.size() * sizeof(LogEntry));
}

#include "consistency/diff_service.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/thread.h"

namespace gasp {
namespace consistency {

DiffService::DiffService(gas::GlobalRange* range, const gas::SegmentTable* segments,
                         transport::Transport* transport, int rank)
    : range_(range), segments_(segments), transport_(transport), rank_(rank) {}

DiffService::~DiffService() { Stop(); }

void DiffService::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void DiffService::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

absl::Status DiffService::Apply(int from, absl::Span<const uint8_t> message) {
  absl::StatusOr<DiffMessage> m = DecodeDiff(message, range_->size());
  if (!m.ok()) return m.status();
  // Check every record before writing any, so a refused message writes
  // nothing.
  const gas::Segment* seg = nullptr;
  for (const DiffRecord& r : m->records) {
    const uint64_t page = r.offset >> gas::kPageShift;
    if (seg == nullptr || page < (seg->offset >> gas::kPageShift) ||
        page >= seg->end_offset() >> gas::kPageShift) {
      seg = segments_->FindPage(page);
    }
    if (seg == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "diff from rank %d: offset %#x is not in an allocation", from, r.offset));
    }
    if (seg->HomeOfPage(page) != rank_ || seg->domain != 0 || seg->rkeys == nullptr ||
        seg->rkeys[rank_] != m->rkey) {
      return absl::PermissionDeniedError(absl::StrFormat(
          "diff from rank %d: offset %#x is not a default-domain page homed here, or the remote "
          "key does not grant it",
          from, r.offset));
    }
  }
  uint8_t* base = reinterpret_cast<uint8_t*>(range_->sys(0));
  for (const DiffRecord& r : m->records) ApplyRecord(r, base);
  StatAdd(Counter::kDiffMessagesApplied);
  return absl::OkStatus();
}

void DiffService::Loop() {
  SetThreadName("gasp-diff");
  while (!stop_.load()) {
    absl::StatusOr<transport::Message> m =
        transport_->Recv(kDiffTag, transport::kAnyPeer, absl::Now() + absl::Milliseconds(200));
    if (!m.ok()) {
      if (absl::IsDeadlineExceeded(m.status())) continue;
      if (absl::IsFailedPrecondition(m.status())) return;  // the transport is shut down
      GASP_LOG(Warn) << "diff service: " << m.status();
      continue;
    }
    uint64_t sequence = 0;
    if (m->payload.size() >= 16) std::memcpy(&sequence, m->payload.data() + 8, 8);
    const absl::Status s = Apply(m->peer, m->payload);
    if (!s.ok()) GASP_LOG(Warn) << "refused a diff: " << s;
    const std::vector<uint8_t> ack =
        EncodeDiffAck(sequence, s.ok() ? 0 : static_cast<uint32_t>(s.code()),
                      std::string(s.message()));
    const absl::Status sent = transport_->Send(m->peer, kDiffAckTag, ack);
    if (!sent.ok() && !stop_.load()) GASP_LOG(Warn) << "diff service: reply: " << sent;
  }
}

}  // namespace consistency
}  // namespace gasp

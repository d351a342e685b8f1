#include "consistency/diff_service.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/thread.h"

namespace gasp {
namespace consistency {

DiffService::DiffService(gas::GlobalRange* range, transport::Transport* transport, int rank)
    : range_(range), transport_(transport), rank_(rank) {}

DiffService::~DiffService() { Stop(); }

void DiffService::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void DiffService::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void DiffService::AcceptWrites(uint64_t offset, uint64_t length, uint64_t rkey) {
  std::lock_guard<std::mutex> lock(regions_mu_);
  regions_.push_back({offset, length, rkey});
}

absl::Status DiffService::Apply(int from, absl::Span<const uint8_t> message) {
  absl::StatusOr<DiffMessage> m = DecodeDiff(message, range_->size());
  if (!m.ok()) return m.status();
  // Check every record before writing any, so a refused message writes
  // nothing.
  {
    std::lock_guard<std::mutex> lock(regions_mu_);
    const Region* last = nullptr;
    for (const DiffRecord& r : m->records) {
      auto inside = [&](const Region* g) {
        return g != nullptr && g->rkey == m->rkey && r.offset >= g->offset &&
               r.offset + r.length <= g->offset + g->length;
      };
      if (inside(last)) continue;
      last = nullptr;
      for (const Region& g : regions_) {
        if (inside(&g)) {
          last = &g;
          break;
        }
      }
      if (last == nullptr) {
        return absl::PermissionDeniedError(absl::StrFormat(
            "diff from rank %d: %u bytes at offset %#x are not in a region this rank registered "
            "for remote writes under the key the diff names",
            from, r.length, r.offset));
      }
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
    if (!s.ok()) {
      GASP_LOG(Warn) << "refused a diff: " << s;
    }
    const std::vector<uint8_t> ack =
        EncodeDiffAck(sequence, s.ok() ? 0 : static_cast<uint32_t>(s.code()),
                      std::string(s.message()));
    const absl::Status sent = transport_->Send(m->peer, kDiffAckTag, ack);
    if (!sent.ok() && !stop_.load()) {
      GASP_LOG(Warn) << "diff service: reply: " << sent;
    }
  }
}

}  // namespace consistency
}  // namespace gasp

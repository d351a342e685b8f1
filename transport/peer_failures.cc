#include "transport/peer_failures.h"

#include "base/log.h"

namespace gasp {
namespace transport {

PeerFailures::PeerFailures(int size, std::string backend)
    : backend_(std::move(backend)), state_(new std::atomic<int>[static_cast<size_t>(size)]) {
  for (int i = 0; i < size; ++i) state_[i].store(kAlive);
}

CompletionCode PeerFailures::FailCode(int peer) const {
  const int s = state_[peer].load(std::memory_order_seq_cst);
  switch (s & 0xff) {
    case kAlive: return CompletionCode::kSuccess;
    case kDeparted: return CompletionCode::kPeerUnreachable;
    default: return static_cast<CompletionCode>(s >> 8);
  }
}

bool PeerFailures::MarkFailed(int peer, CompletionCode code, const absl::Status& why) {
  if (code == CompletionCode::kSuccess) code = CompletionCode::kPeerUnreachable;
  int expected = kAlive;
  if (!state_[peer].compare_exchange_strong(expected, kFailed | static_cast<int>(code) << 8)) {
    return false;
  }
  if (code == CompletionCode::kProtocolError) {
    GASP_LOG(Error) << backend_ << " transport: " << why.message() << "; closed its connections";
  } else {
    GASP_LOG(Warn) << backend_ << " transport: " << why.message();
  }
  // A copy that shares nothing with `why`: absl::Status reference-counts
  // its message, and the last Unref inside Debian's uninstrumented libabsl
  // would be invisible to TSan on the thread that delivers it.
  std::lock_guard<std::mutex> l(mu_);
  queued_.emplace_back(peer, absl::Status(why.code(), std::string(why.message())));
  return true;
}

bool PeerFailures::MarkDeparted(int peer) {
  int expected = kAlive;
  return state_[peer].compare_exchange_strong(expected, kDeparted);
}

void PeerFailures::SetHandler(PeerFailureHandler handler) {
  std::lock_guard<std::mutex> l(mu_);
  handler_ = std::move(handler);
}

void PeerFailures::Deliver() {
  std::vector<std::pair<int, absl::Status>> todo;
  PeerFailureHandler handler;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (queued_.empty()) return;
    todo.swap(queued_);
    handler = handler_;
  }
  if (!handler) return;
  for (const auto& [peer, status] : todo) handler(peer, status);
}

void PeerFailures::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  queued_.clear();
}

}  // namespace transport
}  // namespace gasp

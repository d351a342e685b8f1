#include "rpcgen/call_credential.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gasp {
namespace rpc {

namespace {

// Variable-length fields are length-prefixed, so no two calls encode to
// the same MAC input.
std::string Field(const std::string& s) { return absl::StrCat(Le64(s.size()), s); }

}  // namespace

Mac CallMac(absl::Span<const uint8_t> secret, const CallRequest& r, int callee) {
  const std::string service = Field(r.service()), method = Field(r.method());
  const std::string principal = Field(r.principal());
  const std::string request = Le64(r.request().size()), pages = Le64(r.pages().size());
  const std::string notices = Le64(r.notices().size()), job = Field(r.job_id());
  return HmacSha256(secret, {"gasp-call-v2", service, method,
                             Le64(static_cast<uint64_t>(static_cast<int64_t>(r.caller_rank()))),
                             Le64(static_cast<uint64_t>(callee)), principal,
                             Le64(r.credential().counter()), request, r.request(), pages,
                             r.pages(), notices, r.notices(), job});
}

void SignCall(absl::Span<const uint8_t> secret, int callee, uint64_t counter, CallRequest* r) {
  r->mutable_credential()->set_counter(counter);
  const Mac mac = CallMac(secret, *r, callee);
  r->mutable_credential()->set_mac(std::string(mac.begin(), mac.end()));
}

ReplayGuard::ReplayGuard(int ranks) {
  for (int i = 0; i < ranks; ++i) {
    windows_.push_back(std::make_unique<Window>());
    windows_.back()->seen.assign(kReplayWindow / 64, 0);
  }
}

bool ReplayGuard::Accept(int caller, uint64_t counter) {
  if (caller < 0 || caller >= static_cast<int>(windows_.size()) || counter == 0) return false;
  Window& w = *windows_[static_cast<size_t>(caller)];
  std::lock_guard<std::mutex> l(w.mu);
  const auto bit = [&](uint64_t c) -> uint64_t& { return w.seen[(c % kReplayWindow) / 64]; };
  const auto mask = [](uint64_t c) { return uint64_t{1} << (c % 64); };
  if (counter > w.newest) {
    // Slide: forget the counters that fall out of the window.
    const uint64_t step = counter - w.newest;
    if (step >= kReplayWindow) {
      std::fill(w.seen.begin(), w.seen.end(), 0);
    } else {
      for (uint64_t c = w.newest + 1; c <= counter; ++c) bit(c) &= ~mask(c);
    }
    w.newest = counter;
    bit(counter) |= mask(counter);
    return true;
  }
  if (w.newest - counter >= kReplayWindow) return false;
  if (bit(counter) & mask(counter)) return false;
  bit(counter) |= mask(counter);
  return true;
}

absl::Status CheckCallCredential(absl::Span<const uint8_t> secret, int callee,
                                 const CallRequest& r, ReplayGuard* guard,
                                 absl::string_view hint) {
  if (!r.has_credential()) {
    return absl::UnauthenticatedError(absl::StrCat("the call carries no job credential: ", hint));
  }
  if (r.credential().mac().size() != kMacBytes) {
    return absl::UnauthenticatedError(absl::StrFormat(
        "the call's credential has a %d-byte MAC, not %d: %s", r.credential().mac().size(),
        kMacBytes, hint));
  }
  const Mac want = CallMac(secret, r, callee);
  if (!MacEqual(reinterpret_cast<const uint8_t*>(r.credential().mac().data()), want.data())) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the call's credential does not match this job's secret (a process of another job, or "
        "a call made for another rank or altered on the way): ",
        hint));
  }
  if (!guard->Accept(r.caller_rank(), r.credential().counter())) {
    return absl::UnauthenticatedError(absl::StrFormat(
        "call %d from rank %d was already accepted or is too old (a replayed call)",
        r.credential().counter(), r.caller_rank()));
  }
  return absl::OkStatus();
}

CallCounters::CallCounters(int ranks)
    : next_(new std::atomic<uint64_t>[static_cast<size_t>(ranks)]), ranks_(ranks) {
  for (int i = 0; i < ranks; ++i) next_[i].store(1, std::memory_order_relaxed);
}

uint64_t CallCounters::Next(int callee) {
  if (callee < 0 || callee >= ranks_) return 0;  // refused by the callee
  return next_[callee].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace rpc
}  // namespace gasp

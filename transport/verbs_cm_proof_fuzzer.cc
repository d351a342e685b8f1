// Fuzz target: the verbs CM handshake's private data, as any host on the
// fabric can send it in a CONNECT_REQUEST. Decoding must never crash, and
// nothing but an exact MAC for this job's secret may pass the check.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "transport/tcp_wire.h"
#include "transport/verbs_cm_proof.h"

namespace {

const std::string kSecret(32, 'f');

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "verbs_cm_proof fuzzer: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gasp::transport;
  const absl::Span<const uint8_t> key(reinterpret_cast<const uint8_t*>(kSecret.data()),
                                      kSecret.size());
  const bool well_formed = size >= kCmRequestBytes && tcp::GetLe32(data) == tcp::kBlobMagic &&
                           tcp::GetLe32(data + 8) <= 1 && tcp::GetLe32(data + 12) == kCmProofVersion;
  (void)DescribeCmReject(absl::MakeConstSpan(data, size));
  absl::StatusOr<CmRequest> r = DecodeCmRequest(absl::MakeConstSpan(data, size));
  Check(r.ok() == well_formed, "DecodeCmRequest's verdict differs from the format");
  if (!r.ok()) return 0;
  CmTranscript t;
  const absl::Status s = CheckCmRequest(key, *r, 8, 0, 0x77, &t);
  if (s.ok()) {
    // Only possible when the input carries the genuine MAC for its fields.
    const auto genuine = EncodeCmRequest(key, t);
    Check(std::equal(genuine.begin(), genuine.end(), data), "a forged request passed");
  }
  (void)CmReplyMatches(key, t, absl::MakeConstSpan(data, size));
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  using namespace gasp::transport;
  const absl::Span<const uint8_t> key(reinterpret_cast<const uint8_t*>(kSecret.data()),
                                      kSecret.size());
  // A genuine request from rank 3 to rank 0 of 8 (session 0x77), and one
  // for another session.
  const auto good = EncodeCmRequest(key, CmTranscript{8, 3, 0, 1, 0x77, 42});
  add(ctx, good.data(), good.size());
  const auto stale = EncodeCmRequest(key, CmTranscript{8, 3, 0, 0, 0x78, 43});
  add(ctx, stale.data(), stale.size());
}

// Fuzz target for the coordinator's frame and payload decoders
// (boot/coordinator_wire.h): bytes from the network, decoded by the
// coordinator (from ranks) and by ranks (from the coordinator).
//
// Checks, besides "no crash, no sanitizer report":
//  * a stream of frames is consumed in whole frames within the input;
//  * every payload decoder is canonical: when it accepts bytes, encoding
//    the result gives back exactly those bytes.
//
// libFuzzer: bazel build --config=fuzz //boot:coordinator_wire_fuzzer
// Test suite: //boot:coordinator_wire_fuzz_test (base/testing/fuzz_driver_main.cc).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "boot/coordinator_wire.h"

namespace {

using namespace gasp::boot::wire;  // NOLINT

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "coordinator_wire_fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

template <typename T, typename Dec, typename Enc>
void RoundTrip(absl::string_view in, Dec decode, Enc encode, const char* name) {
  absl::StatusOr<T> m = decode(in);
  if (!m.ok()) return;
  Check(encode(*m) == in, name);
}

void AllPayloadDecoders(absl::string_view p) {
  RoundTrip<Hello>(p, DecodeHello, EncodeHello, "HELLO round trip");
  RoundTrip<Welcome>(p, DecodeWelcome, EncodeWelcome, "WELCOME round trip");
  RoundTrip<Error>(p, DecodeError, EncodeError, "ERROR round trip");
  RoundTrip<Allgather>(p, DecodeAllgather, EncodeAllgather, "ALLGATHER round trip");
  RoundTrip<AllgatherResult>(p, DecodeAllgatherResult, EncodeAllgatherResult,
                             "ALLGATHER_RESULT round trip");
  RoundTrip<AllgatherFail>(p, DecodeAllgatherFail, EncodeAllgatherFail,
                           "ALLGATHER_FAIL round trip");
  RoundTrip<Abort>(p, DecodeAbort, EncodeAbort, "ABORT round trip");
  RoundTrip<RankDied>(p, DecodeRankDied, EncodeRankDied, "RANK_DIED round trip");
  absl::StatusOr<uint16_t> v = PeekHelloVersion(p);
  Check(v.ok() == (p.size() >= 2), "PeekHelloVersion accepts exactly inputs of 2+ bytes");
  (void)DecodeEmpty(p, 9);
  (void)MsgTypeName(p.empty() ? 0 : static_cast<uint8_t>(p[0]));
}

// Decodes a stream the way the coordinator and the client do.
void Stream(absl::string_view in, size_t max_payload) {
  size_t off = 0;
  for (;;) {
    size_t consumed = 12345;
    absl::StatusOr<std::optional<Frame>> f = DecodeFrame(in.substr(off), max_payload, &consumed);
    if (!f.ok()) {
      Check(consumed == 0, "consumed is 0 on error");
      return;
    }
    if (!f->has_value()) {
      Check(consumed == 0, "consumed is 0 when incomplete");
      return;
    }
    Check(consumed >= kHeaderBytes && consumed <= in.size() - off, "frame within input");
    Check((*f)->payload.size() == consumed - kHeaderBytes, "payload size");
    Check((*f)->payload.size() <= max_payload, "payload limit");
    Check(EncodeFrame((*f)->type, (*f)->payload, (*f)->version) == in.substr(off, consumed),
          "frame round trip");
    AllPayloadDecoders((*f)->payload);
    off += consumed;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  Stream(in, kMaxClientPayload);
  Stream(in, 64);  // a small limit exercises the refusal path
  AllPayloadDecoders(in);
  return 0;
}

// Well-formed frames of every type, for the standalone driver.
extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  auto put = [&](MsgType t, const std::string& payload) {
    std::string f = EncodeFrame(static_cast<uint16_t>(t), payload);
    add(ctx, reinterpret_cast<const uint8_t*>(f.data()), f.size());
    add(ctx, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  };
  Hello h;
  h.rank = 3;
  h.size = 4;
  h.pid = 1234;
  h.timeout_ms = 60000;
  h.job_id = "gasprun-vm-1234";
  h.host = "vm";
  put(MsgType::kHello, EncodeHello(h));
  put(MsgType::kWelcome, EncodeWelcome({4, "gasprun (vm:1)"}));
  put(MsgType::kError, EncodeError({9, "rank 1 is already connected"}));
  Allgather a;
  a.seq = 2;
  a.kind = CollectiveKind::kBarrier;
  a.wait_ms = 2000;
  a.blob = std::string(40, 'x');
  put(MsgType::kAllgather, EncodeAllgather(a));
  AllgatherResult r;
  r.seq = 2;
  r.blobs = {"a", "", "ccc", std::string(20, 'd')};
  put(MsgType::kAllgatherResult, EncodeAllgatherResult(r));
  AllgatherFail af;
  af.seq = 7;
  af.code = 4;
  af.missing = {1, 3};
  af.message = "rank 1 of 2 never arrived";
  put(MsgType::kAllgatherFail, EncodeAllgatherFail(af));
  Abort ab;
  ab.rank = 1;
  ab.code = 3;
  ab.host = "vm";
  ab.pid = 99;
  ab.message = "bad input";
  put(MsgType::kAbort, EncodeAbort(ab));
  RankDied d;
  d.rank = 2;
  d.pid = 77;
  d.host = "vm";
  d.reason = "rank 2 (vm:77) was killed by signal 9 (Killed)";
  put(MsgType::kRankDied, EncodeRankDied(d));
  put(MsgType::kFinalize, "");
  // Two frames back to back.
  std::string two = EncodeFrame(static_cast<uint16_t>(MsgType::kHello), EncodeHello(h)) +
                    EncodeFrame(static_cast<uint16_t>(MsgType::kAllgather), EncodeAllgather(a));
  add(ctx, reinterpret_cast<const uint8_t*>(two.data()), two.size());
}

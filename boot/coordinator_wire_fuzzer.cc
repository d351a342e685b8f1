// Fuzz target for the coordinator's frame and payload decoders
// (boot/coordinator_wire.h): bytes from the network, decoded by the
// coordinator (from ranks) and by ranks (from the coordinator).
//
// Checks, besides "no crash, no sanitizer report":
//  * a stream of frames is consumed in whole frames within the input;
//  * the hand-coded ERROR decoder is canonical (what it accepts re-encodes
//    to exactly the input);
//  * every protobuf payload decoder is stable: what it accepts re-encodes to bytes
//    it accepts again, and those re-encode to themselves (protobuf is not
//    canonical on input: field order and repeats vary, so the first
//    encoding may differ from the input).
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

template <typename T>
void RoundTrip(absl::string_view in, absl::StatusOr<T> (*decode)(absl::string_view),
               const char* name) {
  absl::StatusOr<T> m = decode(in);
  if (!m.ok()) return;
  const std::string once = m->SerializeAsString();
  absl::StatusOr<T> again = decode(once);
  Check(again.ok(), name);
  Check(again->SerializeAsString() == once, name);
}

void AllPayloadDecoders(absl::string_view p) {
  RoundTrip<Hello>(p, DecodeHello, "HELLO round trip");
  RoundTrip<Welcome>(p, DecodeWelcome, "WELCOME round trip");
  if (absl::StatusOr<Error> e = DecodeError(p); e.ok()) {
    Check(EncodeError(*e) == p, "ERROR (hand-coded) is canonical");
  }
  RoundTrip<Allgather>(p, DecodeAllgather, "ALLGATHER round trip");
  RoundTrip<AllgatherResult>(p, DecodeAllgatherResult, "ALLGATHER_RESULT round trip");
  RoundTrip<AllgatherFail>(p, DecodeAllgatherFail, "ALLGATHER_FAIL round trip");
  RoundTrip<Abort>(p, DecodeAbort, "ABORT round trip");
  RoundTrip<RankDied>(p, DecodeRankDied, "RANK_DIED round trip");
  (void)DecodeEmpty(p, 9);
  (void)MsgTypeName(p.empty() ? 0 : static_cast<uint8_t>(p[0]));
  (void)ErrorCode(p.size());
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
  h.set_protocol_version(kProtocolVersion);
  h.set_rank(3);
  h.set_size(4);
  h.set_pid(1234);
  h.set_timeout_ms(60000);
  h.set_job_id("gasprun-vm-1234");
  h.set_host("vm");
  h.set_proof(std::string(32, 'p'));
  put(MsgType::kHello, h.SerializeAsString());
  Welcome w;
  w.set_size(4);
  w.set_owner("gasprun (vm:1)");
  put(MsgType::kWelcome, w.SerializeAsString());
  put(MsgType::kError, EncodeError({9, "rank 1 is already connected"}));
  Allgather a;
  a.set_seq(2);
  a.set_kind(COLLECTIVE_BARRIER);
  a.set_wait_ms(2000);
  a.set_blob(std::string(40, 'x'));
  put(MsgType::kAllgather, a.SerializeAsString());
  AllgatherResult r;
  r.set_seq(2);
  for (std::string b : {std::string("a"), std::string(), std::string("ccc")}) r.add_blobs(b);
  put(MsgType::kAllgatherResult, r.SerializeAsString());
  AllgatherFail af;
  af.set_seq(7);
  af.set_code(4);
  af.add_missing(1);
  af.add_missing(3);
  af.set_message("rank 1 of 2 never arrived");
  put(MsgType::kAllgatherFail, af.SerializeAsString());
  Abort ab;
  ab.set_rank(1);
  ab.set_code(3);
  ab.set_host("vm");
  ab.set_pid(99);
  ab.set_message("bad input");
  put(MsgType::kAbort, ab.SerializeAsString());
  RankDied d;
  d.set_rank(2);
  d.set_pid(77);
  d.set_host("vm");
  d.set_reason("rank 2 (vm:77) was killed by signal 9 (Killed)");
  put(MsgType::kRankDied, d.SerializeAsString());
  put(MsgType::kFinalize, "");
  // Two frames back to back.
  std::string two =
      EncodeFrame(static_cast<uint16_t>(MsgType::kHello), h.SerializeAsString()) +
      EncodeFrame(static_cast<uint16_t>(MsgType::kAllgather), a.SerializeAsString());
  add(ctx, reinterpret_cast<const uint8_t*>(two.data()), two.size());
}

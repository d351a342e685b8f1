// Fuzz target for everything the tcp backend decodes from the network or
// from the bootstrap exchange: frame headers, a stream of frames walked the
// way the receive loop walks it, and endpoint blobs.
//
// Besides "never crash / never read out of bounds", it checks that every
// accepted input is canonical: re-encoding the decoded value gives back the
// same bytes (so there is exactly one encoding of each header and blob, and
// no field is silently ignored).
//
// Built two ways (gasp_fuzz_target in BUILD): with libFuzzer (bazel build
// --config=fuzz //transport:tcp_wire_fuzzer), or linked with
// base/testing/fuzz_driver_main.cc (//transport:tcp_wire_fuzz_test), which
// runs it on seeds and ~200k mutated inputs as an ordinary test.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "transport/tcp_wire.h"

namespace {

using gasp::transport::EndpointBlob;
using gasp::transport::kEndpointBlobSize;
using namespace gasp::transport::tcp;  // NOLINT: a fuzz target, not library code

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "tcp_wire_fuzzer: invariant violated: %s\n", what);
  std::abort();
}

void CheckHeader(const uint8_t* data, size_t size) {
  absl::StatusOr<FrameHeader> h = DecodeHeader(absl::MakeConstSpan(data, size));
  if (!h.ok()) {
    if (h.status().message().empty()) Fail("rejection without a message");
    if (size >= kFrameHeaderSize && h.status().code() != absl::StatusCode::kDataLoss) {
      Fail("a complete but invalid header must be DataLoss");
    }
    return;
  }
  uint8_t again[kFrameHeaderSize];
  EncodeHeader(*h, again);
  if (std::memcmp(again, data, kFrameHeaderSize) != 0) Fail("accepted header is not canonical");
  // Limits the receive path relies on.
  switch (h->type) {
    case FrameType::kReadResp:
    case FrameType::kWriteReq:
      if (h->length > kMaxOpBytes) Fail("READ/WRITE payload over the limit");
      break;
    case FrameType::kMsg:
      if (h->length > gasp::transport::kMaxMessageBytes) Fail("MSG payload over the limit");
      break;
    case FrameType::kCasReq:
    case FrameType::kFaaReq:
      if (h->remote_addr % 8 != 0) Fail("misaligned atomic accepted");
      [[fallthrough]];
    default:
      if (h->length != 0) Fail("payload on a frame type without one");
  }
}

// Walks `data` as a stream: header, skip its payload, next header.
void WalkStream(const uint8_t* data, size_t size) {
  size_t pos = 0;
  while (size - pos >= kFrameHeaderSize) {
    absl::StatusOr<FrameHeader> h = DecodeHeader(absl::MakeConstSpan(data + pos, size - pos));
    if (!h.ok()) return;  // the transport closes the connection here
    pos += kFrameHeaderSize;
    if (h->length > size - pos) return;  // payload continues beyond the input
    pos += h->length;
  }
}

void CheckBlob(const uint8_t* data, size_t size) {
  if (size < kEndpointBlobSize) return;
  EndpointBlob blob;
  std::memcpy(blob.bytes, data, kEndpointBlobSize);
  absl::StatusOr<TcpEndpoint> e = DecodeEndpoint(blob);
  if (!e.ok()) {
    if (e.status().code() != absl::StatusCode::kInvalidArgument) Fail("blob error code");
    return;
  }
  if (e->hostname.size() >= kBlobHostnameBytes) Fail("hostname too long");
  EndpointBlob again = EncodeEndpoint(*e);
  if (std::memcmp(again.bytes, blob.bytes, kEndpointBlobSize) != 0) {
    Fail("accepted endpoint blob is not canonical");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckHeader(data, size);
  WalkStream(data, size);
  CheckBlob(data, size);
  return 0;
}

// Seeds for base/testing/fuzz_driver_main.cc: one valid frame of every type,
// a stream of several frames, and a valid endpoint blob.
extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  std::vector<std::vector<uint8_t>> seeds;
  const auto add_header = [&](const FrameHeader& h, std::vector<uint8_t>* out) {
    uint8_t b[kFrameHeaderSize];
    EncodeHeader(h, b);
    out->insert(out->end(), b, b + kFrameHeaderSize);
  };
  std::vector<FrameHeader> frames;
  frames.push_back(HelloFrame(1, 4, 0x1234, 0x5678));
  frames.push_back(ProofFrame(gasp::Mac{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}));
  frames.push_back(ByeFrame());
  for (FrameType t : {FrameType::kReadReq, FrameType::kReadResp, FrameType::kWriteReq,
                      FrameType::kWriteResp, FrameType::kCasReq, FrameType::kFaaReq,
                      FrameType::kAtomicResp, FrameType::kMsg}) {
    FrameHeader h;
    h.type = t;
    h.req_id = 0x100000007ull;
    if (t == FrameType::kReadReq || t == FrameType::kWriteReq || t == FrameType::kCasReq ||
        t == FrameType::kFaaReq) {
      h.remote_addr = 0x7f0000001000ull;
      h.rkey = 0x300000001ull;
    }
    if (t == FrameType::kReadReq) h.operand = 16;
    if (t == FrameType::kReadResp || t == FrameType::kWriteReq) h.length = 16;
    if (t == FrameType::kCasReq) h.compare = 1;
    if (t == FrameType::kCasReq || t == FrameType::kFaaReq || t == FrameType::kAtomicResp) {
      h.operand = 2;
    }
    if (t == FrameType::kMsg) {
      h.tag = 5;
      h.length = 3;
    }
    if (t == FrameType::kMsg || t == FrameType::kAtomicResp || t == FrameType::kWriteResp ||
        t == FrameType::kReadResp) {
      h.req_id = t == FrameType::kMsg ? 0 : h.req_id;
    }
    frames.push_back(h);
  }
  std::vector<uint8_t> stream;
  for (const FrameHeader& h : frames) {
    std::vector<uint8_t> one;
    add_header(h, &one);
    one.resize(one.size() + h.length, 0xab);
    seeds.push_back(one);
    stream.insert(stream.end(), one.begin(), one.end());
  }
  seeds.push_back(stream);
  TcpEndpoint e;
  e.ipv4 = 0x7f000001;
  e.port = 4000;
  e.pid = 99;
  e.rank = 2;
  e.nonce = 0xabcdef;
  e.hostname = "host";
  EndpointBlob blob = EncodeEndpoint(e);
  seeds.emplace_back(blob.bytes, blob.bytes + kEndpointBlobSize);
  seeds.emplace_back();  // empty input
  for (const std::vector<uint8_t>& s : seeds) add(ctx, s.data(), s.size());
}

// Fuzz target for everything the shm backend reads from another process:
// ring record headers, a ring's control words and contents walked the way
// the progress thread walks them (RingConsumer), and endpoint blobs. The
// handshake on the unix socket is tcp's (tcp_wire_fuzzer.cc covers it).
//
// Besides "never crash / never read out of bounds", accepted headers and
// blobs must be canonical (re-encoding gives the same bytes), and a walk
// must never hand out a record longer than what was published.
//
// Built two ways (gasp_fuzz_target in BUILD): with libFuzzer (bazel build
// --config=fuzz //transport:shm_wire_fuzzer), or on the standalone driver
// (//transport:shm_wire_fuzz_test) as an ordinary test.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "transport/shm_ring.h"
#include "transport/shm_wire.h"
#include "transport/tcp_wire.h"

namespace {

using gasp::transport::EndpointBlob;
using gasp::transport::kEndpointBlobSize;
using namespace gasp::transport::shm;  // NOLINT: a fuzz target, not library code

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "shm_wire_fuzzer: invariant violated: %s\n", what);
  std::abort();
}

void CheckRecord(const uint8_t* data, size_t size) {
  absl::StatusOr<RecordHeader> h = DecodeRecord(absl::MakeConstSpan(data, size));
  if (!h.ok()) {
    if (h.status().message().empty()) Fail("rejection without a message");
    if (size >= kRecordHeaderSize && h.status().code() != absl::StatusCode::kDataLoss) {
      Fail("a complete but invalid record must be DataLoss");
    }
    return;
  }
  uint8_t again[kRecordHeaderSize];
  EncodeRecord(*h, again);
  if (std::memcmp(again, data, kRecordHeaderSize) != 0) Fail("accepted record is not canonical");
  if (h->length > kMaxChunkBytes) Fail("payload over the chunk limit");
  if (h->type == RecordType::kReadReq && h->aux > kMaxChunkBytes) Fail("READ chunk too big");
  if (h->type == RecordType::kMsg && h->aux + h->length > h->span) Fail("chunk past its message");
}

// A ring in ordinary memory: the first 16 input bytes are the head and the
// tail the "peer" published, the rest the ring's contents from the head on.
void WalkRing(const uint8_t* data, size_t size) {
  static RingCtl* ctl = new RingCtl();
  static uint8_t* ring = new uint8_t[kRingBytes];
  if (size < 16) return;
  uint64_t head, tail;
  std::memcpy(&head, data, 8);
  std::memcpy(&tail, data + 8, 8);
  head %= kRingBytes * 4;  // start anywhere, wrapping included
  if (tail - head > kRingBytes / 2 && tail - head < ~uint64_t{0} - 64) {
    tail = head + (tail - head) % (size + 64);  // mostly near the contents' end
  }
  const size_t n = std::min<size_t>(size - 16, kRingBytes);
  for (size_t i = 0; i < n; ++i) ring[(head + i) % kRingBytes] = data[16 + i];
  ctl->head.store(head);
  ctl->tail.store(tail);
  RingConsumer consumer(ctl, ring, nullptr);
  static std::vector<uint8_t> sink(kMaxChunkBytes);
  for (int records = 0; records < 4096; ++records) {
    RecordHeader h;
    absl::Status why;
    const RingConsumer::Next next = consumer.Peek(&h, &why);
    if (next == RingConsumer::Next::kEmpty) return;
    if (next == RingConsumer::Next::kCorrupt) {
      if (why.ok()) Fail("corruption without a reason");
      return;  // the transport drops the peer here
    }
    if (RecordBytes(h.length) > tail - ctl->head.load()) Fail("record beyond the published tail");
    consumer.CopyPayload(sink.data(), h.length);
    consumer.Pop();
  }
}

void CheckBlob(const uint8_t* data, size_t size) {
  if (size < kEndpointBlobSize) return;
  EndpointBlob blob;
  std::memcpy(blob.bytes, data, kEndpointBlobSize);
  absl::StatusOr<ShmEndpoint> e = DecodeShmEndpoint(blob);
  if (!e.ok()) {
    if (e.status().code() != absl::StatusCode::kInvalidArgument) Fail("blob error code");
    return;
  }
  if (e->path.size() >= kBlobPathBytes || e->path[0] != '/') Fail("bad path accepted");
  EndpointBlob again = EncodeShmEndpoint(*e);
  if (std::memcmp(again.bytes, blob.bytes, kEndpointBlobSize) != 0) {
    Fail("accepted endpoint blob is not canonical");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckRecord(data, size);
  WalkRing(data, size);
  CheckBlob(data, size);
  return 0;
}

// Seeds: one valid record of every type, a ring holding several records
// (with its head and tail in front), and a valid endpoint blob.
extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  std::vector<std::vector<uint8_t>> seeds;
  std::vector<uint8_t> ring(16, 0);
  for (RecordType t : {RecordType::kReadReq, RecordType::kReadResp, RecordType::kWriteReq,
                       RecordType::kWriteResp, RecordType::kCasReq, RecordType::kFaaReq,
                       RecordType::kAtomicResp, RecordType::kMsg}) {
    RecordHeader h;
    h.type = t;
    h.req_id = t == RecordType::kMsg ? 0 : 0x100000007ull;
    switch (t) {
      case RecordType::kReadReq: h.addr = 0x7f0000001000ull; h.rkey = 9; h.span = 32; h.aux = 16; break;
      case RecordType::kReadResp: h.length = 16; h.aux = 0x7f0000001000ull; break;
      case RecordType::kWriteReq: h.addr = 0x7f0000001000ull; h.rkey = 9; h.span = 16; h.length = 16; break;
      case RecordType::kCasReq: h.addr = 0x7f0000001000ull; h.rkey = 9; h.span = 2; h.aux = 1; break;
      case RecordType::kFaaReq: h.addr = 0x7f0000001000ull; h.rkey = 9; h.span = 1; break;
      case RecordType::kAtomicResp: h.span = 5; break;
      case RecordType::kMsg: h.tag = 5; h.span = 3; h.length = 3; break;
      default: break;
    }
    std::vector<uint8_t> one(kRecordHeaderSize);
    EncodeRecord(h, one.data());
    one.resize(RecordBytes(h.length), 0xab);
    seeds.push_back(one);
    ring.insert(ring.end(), one.begin(), one.end());
  }
  const uint64_t head = kRingBytes - 100;  // the records wrap around the end
  const uint64_t tail = head + (ring.size() - 16);
  std::memcpy(ring.data(), &head, 8);
  std::memcpy(ring.data() + 8, &tail, 8);
  seeds.push_back(ring);
  ShmEndpoint e;
  e.pid = 99;
  e.rank = 2;
  e.nonce = 0xabcdef;
  e.uid = 1000;
  e.path = "/run/user/1000/gasp-shm-01234567-r2-abcdef/sock";
  EndpointBlob blob = EncodeShmEndpoint(e);
  seeds.emplace_back(blob.bytes, blob.bytes + kEndpointBlobSize);
  seeds.emplace_back();
  for (const std::vector<uint8_t>& s : seeds) add(ctx, s.data(), s.size());
}

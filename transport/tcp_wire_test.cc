#include "transport/tcp_wire.h"

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace transport {
namespace tcp {
namespace {

using ::testing::HasSubstr;

struct Encoded {
  uint8_t bytes[kFrameHeaderSize];
};

Encoded Encode(const FrameHeader& h) {
  Encoded e;
  EncodeHeader(h, e.bytes);
  return e;
}

absl::StatusOr<FrameHeader> Decode(const Encoded& e) {
  return DecodeHeader(absl::MakeConstSpan(e.bytes, kFrameHeaderSize));
}

FrameHeader Make(FrameType type) {
  FrameHeader h;
  h.type = type;
  return h;
}

TEST(TcpWireTest, LittleEndianHelpers) {
  uint8_t b[8];
  PutLe64(b, 0x0102030405060708ull);
  EXPECT_EQ(b[0], 0x08);
  EXPECT_EQ(b[7], 0x01);
  EXPECT_EQ(GetLe64(b), 0x0102030405060708ull);
  PutLe32(b, 0xa1b2c3d4u);
  EXPECT_EQ(b[0], 0xd4);
  EXPECT_EQ(GetLe32(b), 0xa1b2c3d4u);
  PutLe16(b, 0xbeef);
  EXPECT_EQ(b[0], 0xef);
  EXPECT_EQ(GetLe16(b), 0xbeef);
}

TEST(TcpWireTest, HeaderLayoutIsFixed) {
  FrameHeader h = Make(FrameType::kCasReq);
  h.req_id = 0x1122334455667788ull;
  h.remote_addr = 0x1000;
  h.rkey = 0xabcdef;
  h.operand = 7;
  h.compare = 9;
  Encoded e = Encode(h);
  EXPECT_EQ(GetLe16(e.bytes + 0), kFrameMagic);
  EXPECT_EQ(e.bytes[2], kWireVersion);
  EXPECT_EQ(e.bytes[3], static_cast<uint8_t>(FrameType::kCasReq));
  EXPECT_EQ(GetLe64(e.bytes + 16), h.req_id);
  EXPECT_EQ(GetLe64(e.bytes + 24), h.remote_addr);
  EXPECT_EQ(GetLe64(e.bytes + 32), h.rkey);
  EXPECT_EQ(GetLe64(e.bytes + 40), h.operand);
  EXPECT_EQ(GetLe64(e.bytes + 48), h.compare);
}

// One valid header of every type.
std::vector<FrameHeader> ValidHeaders() {
  std::vector<FrameHeader> v;
  v.push_back(HelloFrame(3, 8, 0xfeedface12345678ull, 0x1122334455667788ull));
  Mac mac;
  for (size_t i = 0; i < mac.size(); ++i) mac[i] = static_cast<uint8_t>(i * 7 + 1);
  v.push_back(ProofFrame(mac));
  v.push_back(ByeFrame());
  FrameHeader h = Make(FrameType::kReadReq);
  h.req_id = 1;
  h.remote_addr = 0x7fff00001001;
  h.rkey = 0x100000002;
  h.operand = kMaxOpBytes;
  v.push_back(h);
  h = Make(FrameType::kReadResp);
  h.req_id = 1;
  h.length = 4096;
  v.push_back(h);
  h = Make(FrameType::kReadResp);
  h.req_id = 2;
  h.status = static_cast<uint8_t>(CompletionCode::kRemoteAccessError);
  v.push_back(h);
  h = Make(FrameType::kWriteReq);
  h.req_id = 3;
  h.length = static_cast<uint32_t>(kMaxOpBytes);
  h.remote_addr = 0x1003;
  h.rkey = 5;
  v.push_back(h);
  h = Make(FrameType::kWriteResp);
  h.req_id = 3;
  v.push_back(h);
  h = Make(FrameType::kCasReq);
  h.req_id = 4;
  h.remote_addr = 0x1008;
  h.rkey = 5;
  h.operand = ~0ull;
  h.compare = 42;
  v.push_back(h);
  h = Make(FrameType::kFaaReq);
  h.req_id = 5;
  h.remote_addr = 0x1010;
  h.rkey = 5;
  h.operand = 1;
  v.push_back(h);
  h = Make(FrameType::kAtomicResp);
  h.req_id = 5;
  h.operand = 123;
  v.push_back(h);
  h = Make(FrameType::kMsg);
  h.tag = 77;
  h.length = static_cast<uint32_t>(kMaxMessageBytes);
  v.push_back(h);
  return v;
}

TEST(TcpWireTest, EveryTypeRoundTrips) {
  for (const FrameHeader& h : ValidHeaders()) {
    absl::StatusOr<FrameHeader> d = Decode(Encode(h));
    ASSERT_TRUE(d.ok()) << FrameTypeName(h.type) << ": " << d.status();
    EXPECT_TRUE(*d == h) << FrameTypeName(h.type);
  }
}

TEST(TcpWireTest, ShortInputIsInvalidArgument) {
  Encoded e = Encode(ByeFrame());
  auto d = DecodeHeader(absl::MakeConstSpan(e.bytes, kFrameHeaderSize - 1));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("56 bytes"));
}

// Decodes after `mutate`, expects DataLoss mentioning `needle`.
void ExpectRejected(FrameHeader h, const std::function<void(uint8_t*)>& mutate,
                    const std::string& needle) {
  Encoded e = Encode(h);
  if (mutate) mutate(e.bytes);
  absl::StatusOr<FrameHeader> d = Decode(e);
  ASSERT_FALSE(d.ok()) << "accepted; expected an error about " << needle;
  EXPECT_EQ(d.status().code(), absl::StatusCode::kDataLoss) << d.status();
  EXPECT_THAT(std::string(d.status().message()), HasSubstr(needle));
}

TEST(TcpWireTest, RejectsBadMagicVersionAndType) {
  ExpectRejected(ByeFrame(), [](uint8_t* b) { b[0] ^= 0xff; }, "magic");
  ExpectRejected(ByeFrame(), [](uint8_t* b) { b[2] = kWireVersion + 1; }, "version");
  ExpectRejected(ByeFrame(), [](uint8_t* b) { b[3] = 0; }, "unknown frame type 0");
  ExpectRejected(ByeFrame(), [](uint8_t* b) { b[3] = 200; }, "unknown frame type 200");
  ExpectRejected(ByeFrame(), [](uint8_t* b) { b[6] = 1; }, "reserved");
}

TEST(TcpWireTest, RejectsOversizedPayloads) {
  FrameHeader h = Make(FrameType::kWriteReq);
  ExpectRejected(h, [](uint8_t* b) { PutLe32(b + 8, static_cast<uint32_t>(kMaxOpBytes) + 1); },
                 "exceeds the limit");
  h = Make(FrameType::kReadResp);
  ExpectRejected(h, [](uint8_t* b) { PutLe32(b + 8, 0xffffffffu); }, "exceeds the limit");
  h = Make(FrameType::kMsg);
  ExpectRejected(h, [](uint8_t* b) { PutLe32(b + 8, static_cast<uint32_t>(kMaxMessageBytes) + 1); },
                 "exceeds the limit");
  h = Make(FrameType::kReadReq);
  h.operand = kMaxOpBytes + 1;
  ExpectRejected(h, nullptr, "read length");
}

TEST(TcpWireTest, RejectsPayloadWhereNoneIsAllowed) {
  for (FrameType t : {FrameType::kHello, FrameType::kBye, FrameType::kReadReq,
                      FrameType::kWriteResp, FrameType::kCasReq, FrameType::kFaaReq,
                      FrameType::kAtomicResp, FrameType::kProof}) {
    FrameHeader h = t == FrameType::kHello ? HelloFrame(0, 1, 1, 2) : Make(t);
    ExpectRejected(h, [](uint8_t* b) { PutLe32(b + 8, 1); }, "length must be zero");
  }
}

TEST(TcpWireTest, RejectsUnusedFieldsSet) {
  ExpectRejected(ByeFrame(), [](uint8_t* b) { PutLe64(b + 16, 1); }, "req_id must be zero");
  ExpectRejected(Make(FrameType::kWriteReq), [](uint8_t* b) { PutLe32(b + 12, 9); },
                 "tag must be zero");
  ExpectRejected(Make(FrameType::kFaaReq), [](uint8_t* b) { PutLe64(b + 48, 1); },
                 "compare must be zero");
  ExpectRejected(Make(FrameType::kReadReq), [](uint8_t* b) { b[4] = 1; }, "status must be zero");
}

TEST(TcpWireTest, RejectsMisalignedAtomics) {
  FrameHeader h = Make(FrameType::kCasReq);
  h.remote_addr = 0x1004;
  ExpectRejected(h, nullptr, "not 8-byte aligned");
  h = Make(FrameType::kFaaReq);
  h.remote_addr = 0x1001;
  ExpectRejected(h, nullptr, "not 8-byte aligned");
}

TEST(TcpWireTest, RejectsBadStatusAndFailedResponsesWithData) {
  FrameHeader h = Make(FrameType::kWriteResp);
  h.status = 99;
  ExpectRejected(h, nullptr, "not a target completion code");
  h.status = static_cast<uint8_t>(CompletionCode::kTimeout);
  ExpectRejected(h, nullptr, "not a target completion code");
  h = Make(FrameType::kReadResp);
  h.status = static_cast<uint8_t>(CompletionCode::kRemoteAccessError);
  h.length = 8;
  ExpectRejected(h, nullptr, "carries no data");
}

TEST(TcpWireTest, RejectsImpossibleHello) {
  ExpectRejected(HelloFrame(4, 4, 1, 2), nullptr, "rank 4 out of range");
  FrameHeader h = HelloFrame(0, 1, 1, 2);
  h.remote_addr = 0;
  ExpectRejected(h, nullptr, "job size 0");
  h.remote_addr = kMaxRanks + 1;
  ExpectRejected(h, nullptr, "job size");
}

TEST(TcpWireTest, ProofCarriesTheMacByteForByte) {
  Mac mac;
  for (size_t i = 0; i < mac.size(); ++i) mac[i] = static_cast<uint8_t>(0xa0 + i);
  FrameHeader h = ProofFrame(mac);
  uint8_t b[kFrameHeaderSize];
  EncodeHeader(h, b);
  EXPECT_EQ(std::memcmp(b + 16, mac.data(), mac.size()), 0);
  absl::StatusOr<FrameHeader> back = DecodeHeader(absl::MakeConstSpan(b));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ProofOf(*back), mac);
  ExpectRejected(h, [](uint8_t* p) { PutLe64(p + 48, 1); }, "compare must be zero");
  ExpectRejected(h, [](uint8_t* p) { PutLe32(p + 12, 1); }, "tag must be zero");
}

// Every field of the transcript, the role and the key change the MAC: a
// PROOF is good for one side of one connection of one job only.
TEST(TcpWireTest, HandshakeMacBindsEverything) {
  const std::string key(32, 'k');
  const auto span = [](const std::string& k) {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(k.data()), k.size());
  };
  HandshakeTranscript t{4, 1, 2, 11, 22, 33, 44};
  const Mac base = HandshakeMac(span(key), false, t);
  EXPECT_EQ(HandshakeMac(span(key), false, t), base);
  EXPECT_NE(HandshakeMac(span(key), true, t), base) << "roles must differ";
  EXPECT_NE(HandshakeMac(span(std::string(32, 'K')), false, t), base) << "another job's key";
  uint64_t HandshakeTranscript::*fields[] = {
      &HandshakeTranscript::size,           &HandshakeTranscript::connector_rank,
      &HandshakeTranscript::acceptor_rank,  &HandshakeTranscript::connector_session,
      &HandshakeTranscript::acceptor_session, &HandshakeTranscript::connector_nonce,
      &HandshakeTranscript::acceptor_nonce};
  for (auto f : fields) {
    HandshakeTranscript u = t;
    u.*f += 1;
    EXPECT_NE(HandshakeMac(span(key), false, u), base);
  }
}

TcpEndpoint SampleEndpoint() {
  TcpEndpoint e;
  e.ipv4 = 0x0a000005;
  e.port = 40123;
  e.pid = 4242;
  e.rank = 7;
  e.nonce = 0x0123456789abcdefull;
  e.hostname = "node17";
  return e;
}

TEST(TcpWireTest, EndpointRoundTrips) {
  const TcpEndpoint e = SampleEndpoint();
  EndpointBlob blob = EncodeEndpoint(e);
  // The common prefix every backend shares.
  EXPECT_EQ(GetLe32(blob.bytes), kBlobMagic);
  EXPECT_EQ(GetLe16(blob.bytes + 4), static_cast<uint16_t>(BlobBackend::kTcp));
  EXPECT_EQ(GetLe16(blob.bytes + 6), kBlobVersion);
  absl::StatusOr<TcpEndpoint> d = DecodeEndpoint(blob);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(*d == e);
  EXPECT_EQ(FormatAddress(d->ipv4, d->port), "10.0.0.5:40123");
}

TEST(TcpWireTest, EndpointHostnameIsTruncated) {
  TcpEndpoint e = SampleEndpoint();
  e.hostname = std::string(200, 'h');
  absl::StatusOr<TcpEndpoint> d = DecodeEndpoint(EncodeEndpoint(e));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->hostname, std::string(kBlobHostnameBytes - 1, 'h'));
}

void ExpectBlobRejected(const std::function<void(uint8_t*)>& mutate, const std::string& needle) {
  EndpointBlob blob = EncodeEndpoint(SampleEndpoint());
  mutate(blob.bytes);
  absl::StatusOr<TcpEndpoint> d = DecodeEndpoint(blob);
  ASSERT_FALSE(d.ok()) << "accepted; expected an error about " << needle;
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr(needle));
}

TEST(TcpWireTest, EndpointRejections) {
  ExpectBlobRejected([](uint8_t* b) { b[0] ^= 1; }, "not a gasp endpoint blob");
  ExpectBlobRejected([](uint8_t* b) { PutLe16(b + 4, static_cast<uint16_t>(BlobBackend::kVerbs)); },
                     "verbs backend");
  ExpectBlobRejected([](uint8_t* b) { PutLe16(b + 4, 99); }, "GASP_TRANSPORT");
  ExpectBlobRejected([](uint8_t* b) { PutLe16(b + 6, kBlobVersion + 1); }, "version 2");
  ExpectBlobRejected([](uint8_t* b) { PutLe16(b + 12, 0); }, "cannot be connected to");
  ExpectBlobRejected([](uint8_t* b) { std::memset(b + 8, 0, 4); }, "cannot be connected to");
  ExpectBlobRejected([](uint8_t* b) { b[14] = 1; }, "reserved");
  ExpectBlobRejected([](uint8_t* b) { b[120] = 1; }, "reserved byte 120");
  ExpectBlobRejected([](uint8_t* b) { std::memset(b + 32, 'x', kBlobHostnameBytes); },
                     "not NUL-terminated");
  ExpectBlobRejected([](uint8_t* b) { b[32 + 50] = 'x'; }, "after the hostname");
  ExpectBlobRejected([](uint8_t* b) { PutLe32(b + 20, static_cast<uint32_t>(kMaxRanks)); },
                     "beyond the limit");
}

}  // namespace
}  // namespace tcp
}  // namespace transport
}  // namespace gasp

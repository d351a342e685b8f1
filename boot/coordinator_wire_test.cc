#include "boot/coordinator_wire.h"

#include <string>
#include <vector>

#include "base/crypto.h"

#include "boot/byte_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace boot {
namespace wire {
namespace {

using ::testing::HasSubstr;

TEST(CoordinatorWireTest, HeaderIsLittleEndian) {
  std::string f = EncodeFrame(static_cast<uint16_t>(MsgType::kFinalize), "ab", 1);
  ASSERT_EQ(f.size(), kHeaderBytes + 2);
  EXPECT_EQ(f.substr(0, 4), "GSPC");
  EXPECT_EQ(f[4], 1);
  EXPECT_EQ(f[5], 0);
  EXPECT_EQ(f[6], 9);  // FINALIZE
  EXPECT_EQ(f[7], 0);
  EXPECT_EQ(f[8], 2);  // payload length
  EXPECT_EQ(f.substr(12), "ab");
}

TEST(CoordinatorWireTest, DecodeFrameNeedsWholeFrames) {
  std::string f = EncodeFrame(static_cast<uint16_t>(MsgType::kError), "hello");
  for (size_t n = 0; n < f.size(); ++n) {
    size_t consumed = 99;
    auto r = DecodeFrame(absl::string_view(f).substr(0, n), 1024, &consumed);
    ASSERT_TRUE(r.ok()) << n;
    EXPECT_FALSE(r->has_value()) << n;
    EXPECT_EQ(consumed, 0u);
  }
  std::string two = f + EncodeFrame(static_cast<uint16_t>(MsgType::kFinalize), "");
  size_t consumed = 0;
  auto r = DecodeFrame(two, 1024, &consumed);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(consumed, f.size());
  EXPECT_EQ((*r)->type, static_cast<uint16_t>(MsgType::kError));
  EXPECT_EQ((*r)->payload, "hello");
}

TEST(CoordinatorWireTest, BadMagicIsRefusedFromTheFirstByte) {
  size_t consumed;
  auto r = DecodeFrame("GET / HTTP/1.1\r\n", 1024, &consumed);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("bad magic"));
  EXPECT_FALSE(DecodeFrame("X", 1024, &consumed).ok());
}

TEST(CoordinatorWireTest, OversizedPayloadIsRefusedBeforeItArrives) {
  std::string header;
  ByteWriter w(&header);
  w.U32(kMagic);
  w.U16(kProtocolVersion);
  w.U16(static_cast<uint16_t>(MsgType::kAllgather));
  w.U32(0xffffffffu);
  size_t consumed;
  auto r = DecodeFrame(header, kMaxClientPayload, &consumed);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("more than the limit"));
}

TEST(CoordinatorWireTest, OtherVersionsAndTypesAreReturnedAsTheyAre) {
  std::string f = EncodeFrame(77, "x", 9);
  size_t consumed;
  auto r = DecodeFrame(f, 1024, &consumed);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->version, 9);
  EXPECT_EQ((*r)->type, 77);
  EXPECT_EQ(MsgTypeName(77), "type 77");
}

Hello SampleHello() {
  Hello h;
  h.set_protocol_version(kProtocolVersion);
  h.set_rank(3);
  h.set_size(8);
  h.set_pid(4242);
  h.set_timeout_ms(2000);
  h.set_job_id("job");
  h.set_host("node7");
  return h;
}

TEST(CoordinatorWireTest, HelloRoundTrip) {
  auto d = DecodeHello(SampleHello().SerializeAsString());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->protocol_version(), kProtocolVersion);
  EXPECT_EQ(d->rank(), 3);
  EXPECT_EQ(d->size(), 8);
  EXPECT_EQ(d->pid(), 4242);
  EXPECT_EQ(d->timeout_ms(), 2000);
  EXPECT_EQ(d->job_id(), "job");
  EXPECT_EQ(d->host(), "node7");
}

TEST(CoordinatorWireTest, PayloadDecodersRefuseTruncationAndGarbage) {
  std::string p = SampleHello().SerializeAsString();
  // Cut inside the last field (the host's bytes): never a valid message.
  EXPECT_FALSE(DecodeHello(p.substr(0, p.size() - 2)).ok());
  EXPECT_FALSE(DecodeHello(p + "\xff").ok());  // a tag without its value
  auto bad = DecodeHello("GET / HTTP/1.1\r\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("malformed HELLO"));
  EXPECT_FALSE(DecodeEmpty("x", 9).ok());
  EXPECT_TRUE(DecodeEmpty("", 9).ok());
}

TEST(CoordinatorWireTest, FieldsOfANewerBuildAreSkipped) {
  // Field 99, varint 1: what a later protocol might add.
  auto d = DecodeHello(SampleHello().SerializeAsString() + std::string("\x98\x06\x01", 3));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->rank(), 3);
}

// ERROR keeps the layout of every protocol version, so that a rank of any
// version can read why it is refused.
TEST(CoordinatorWireTest, ErrorLayoutIsFrozen) {
  const std::string bytes = EncodeError({9, "no"});
  EXPECT_EQ(bytes, std::string("\x09\0\0\0\x02\0\0\0no", 10));
  auto d = DecodeError(bytes);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->code, 9u);
  EXPECT_EQ(d->message, "no");
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(DecodeError(bytes.substr(0, n)).ok()) << n;
  EXPECT_FALSE(DecodeError(bytes + "x").ok());
}

TEST(CoordinatorWireTest, StringLengthsAreBounded) {
  std::string p;
  ByteWriter w(&p);
  w.U32(1);
  w.Bytes(std::string(kMaxStringBytes + 1, 'a'));
  auto d = DecodeError(p);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("malformed ERROR"));
  // Encoding cuts an overlong message instead of producing an unreadable one.
  EXPECT_TRUE(DecodeError(EncodeError({1, std::string(kMaxStringBytes + 1, 'a')})).ok());
  Hello h = SampleHello();
  h.set_proof(std::string(kMacBytes + 1, 'p'));
  EXPECT_FALSE(DecodeHello(h.SerializeAsString()).ok());
  h.set_host(std::string(kMaxStringBytes + 1, 'h'));
  h.set_proof("");
  EXPECT_FALSE(DecodeHello(h.SerializeAsString()).ok());
}

TEST(CoordinatorWireTest, AllgatherResultRoundTripAndHugeLengths) {
  AllgatherResult r;
  r.set_seq(5);
  for (std::string b : {std::string("a"), std::string(), std::string(300, 'z')}) r.add_blobs(b);
  auto d = DecodeAllgatherResult(r.SerializeAsString());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->seq(), 5u);
  ASSERT_EQ(d->blobs_size(), 3);
  EXPECT_EQ(d->blobs(2), std::string(300, 'z'));

  // A blob that announces 2 GiB in a few bytes must not make the decoder
  // allocate it.
  EXPECT_FALSE(DecodeAllgatherResult(std::string("\x12\xff\xff\xff\xff\x07", 6)).ok());
}

TEST(CoordinatorWireTest, AllgatherKindIsValidated) {
  Allgather a;
  a.set_seq(1);
  a.set_kind(COLLECTIVE_BARRIER);
  a.set_wait_ms(5);
  a.set_blob("b");
  auto d = DecodeAllgather(a.SerializeAsString());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind(), COLLECTIVE_BARRIER);
  // Field 2 (kind) = 7: protobuf keeps unknown enum values; the decoder
  // must not.
  EXPECT_FALSE(DecodeAllgather(std::string("\x08\x01\x10\x07", 4)).ok());
  EXPECT_STREQ(CollectiveName(COLLECTIVE_ALLGATHER), "allgather");
  EXPECT_STREQ(CollectiveName(COLLECTIVE_BARRIER), "barrier");
  EXPECT_STREQ(CollectiveName(static_cast<CollectiveKind>(7)), "collective");
}

TEST(CoordinatorWireTest, ErrorCodesAreNeverOk) {
  EXPECT_EQ(ErrorCode(0), absl::StatusCode::kUnknown);
  EXPECT_EQ(ErrorCode(9), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorCode(16), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ErrorCode(1000), absl::StatusCode::kUnknown);
}

TEST(CoordinatorWireTest, HelloProofCoversEveryFieldButItself) {
  const std::vector<uint8_t> secret(32, 7);
  const Hello h = SampleHello();
  const std::string mac = HelloProof(secret, h);
  EXPECT_EQ(mac.size(), kMacBytes);
  Hello with_proof = h;
  with_proof.set_proof(mac);
  EXPECT_EQ(HelloProof(secret, with_proof), mac);
  for (int field = 0; field < 7; ++field) {
    Hello o = h;
    switch (field) {
      case 0: o.set_protocol_version(2); break;
      case 1: o.set_rank(4); break;
      case 2: o.set_size(9); break;
      case 3: o.set_pid(1); break;
      case 4: o.set_timeout_ms(1); break;
      case 5: o.set_job_id("jo"); break;
      case 6: o.set_host("node"); break;
    }
    EXPECT_NE(HelloProof(secret, o), mac) << "field " << field;
  }
  EXPECT_NE(HelloProof(std::vector<uint8_t>(32, 8), h), mac);
}

TEST(CoordinatorWireTest, FailAbortRankDiedRoundTrip) {
  AllgatherFail f;
  f.set_seq(9);
  f.set_code(4);
  f.add_missing(1);
  f.add_missing(2);
  f.set_message("m");
  auto df = DecodeAllgatherFail(f.SerializeAsString());
  ASSERT_TRUE(df.ok());
  ASSERT_EQ(df->missing_size(), 2);
  EXPECT_EQ(df->missing(1), 2);
  EXPECT_EQ(df->message(), "m");

  Abort a;
  a.set_rank(2);
  a.set_code(7);
  a.set_host("h");
  a.set_pid(5);
  a.set_message("bye");
  auto da = DecodeAbort(a.SerializeAsString());
  ASSERT_TRUE(da.ok());
  EXPECT_EQ(da->code(), 7);
  EXPECT_EQ(da->message(), "bye");

  RankDied d;
  d.set_rank(1);
  d.set_pid(3);
  d.set_host("vm");
  d.set_reason("rank 1 (vm:3) was killed by signal 9 (Killed)");
  auto dd = DecodeRankDied(d.SerializeAsString());
  ASSERT_TRUE(dd.ok());
  EXPECT_EQ(dd->reason(), d.reason());
}

}  // namespace
}  // namespace wire
}  // namespace boot
}  // namespace gasp

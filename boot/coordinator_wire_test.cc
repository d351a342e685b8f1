#include "boot/coordinator_wire.h"

#include <string>

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

TEST(CoordinatorWireTest, HelloRoundTrip) {
  Hello h;
  h.protocol_version = 1;
  h.rank = 3;
  h.size = 8;
  h.pid = 4242;
  h.timeout_ms = 2000;
  h.job_id = "job";
  h.host = "node7";
  auto d = DecodeHello(EncodeHello(h));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->rank, 3);
  EXPECT_EQ(d->size, 8);
  EXPECT_EQ(d->pid, 4242);
  EXPECT_EQ(d->timeout_ms, 2000);
  EXPECT_EQ(d->job_id, "job");
  EXPECT_EQ(d->host, "node7");
  EXPECT_EQ(*PeekHelloVersion(EncodeHello(h)), 1);
}

TEST(CoordinatorWireTest, PayloadDecodersRefuseTruncationAndTrailingBytes) {
  Hello h;
  h.host = "vm";
  std::string p = EncodeHello(h);
  for (size_t n = 0; n < p.size(); ++n) {
    EXPECT_FALSE(DecodeHello(p.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(DecodeHello(p + "x").ok());
  EXPECT_FALSE(DecodeEmpty("x", 9).ok());
  EXPECT_TRUE(DecodeEmpty("", 9).ok());
}

TEST(CoordinatorWireTest, StringLengthsAreBounded) {
  std::string p;
  ByteWriter w(&p);
  w.U32(1);                    // code
  w.U32(kMaxStringBytes + 1);  // message length beyond the limit
  p.append(kMaxStringBytes + 1, 'a');
  EXPECT_FALSE(DecodeError(p).ok());
}

TEST(CoordinatorWireTest, AllgatherResultRoundTripAndHugeCounts) {
  AllgatherResult r;
  r.seq = 5;
  r.blobs = {"a", "", std::string(300, 'z')};
  auto d = DecodeAllgatherResult(EncodeAllgatherResult(r));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->seq, 5u);
  EXPECT_EQ(d->blobs, r.blobs);

  // A count the payload cannot hold must not make the decoder allocate.
  std::string p;
  ByteWriter w(&p);
  w.U64(1);
  w.U32(0x7fffffff);
  EXPECT_FALSE(DecodeAllgatherResult(p).ok());
}

TEST(CoordinatorWireTest, AllgatherKindIsValidated) {
  Allgather a;
  a.seq = 1;
  a.kind = CollectiveKind::kBarrier;
  a.wait_ms = 5;
  a.blob = "b";
  std::string bytes = EncodeAllgather(a);
  auto d = DecodeAllgather(bytes);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, CollectiveKind::kBarrier);
  bytes[8] = 7;  // the kind byte, after the 8-byte sequence number
  EXPECT_FALSE(DecodeAllgather(bytes).ok());
  EXPECT_STREQ(CollectiveName(CollectiveKind::kAllgather), "allgather");
  EXPECT_STREQ(CollectiveName(CollectiveKind::kBarrier), "barrier");
}

TEST(CoordinatorWireTest, FailAbortRankDiedRoundTrip) {
  AllgatherFail f;
  f.seq = 9;
  f.code = 4;
  f.missing = {1, 2};
  f.message = "m";
  auto df = DecodeAllgatherFail(EncodeAllgatherFail(f));
  ASSERT_TRUE(df.ok());
  EXPECT_EQ(df->missing, f.missing);
  EXPECT_EQ(df->message, "m");

  Abort a;
  a.rank = 2;
  a.code = 7;
  a.host = "h";
  a.pid = 5;
  a.message = "bye";
  auto da = DecodeAbort(EncodeAbort(a));
  ASSERT_TRUE(da.ok());
  EXPECT_EQ(da->code, 7);
  EXPECT_EQ(da->message, "bye");

  RankDied d;
  d.rank = 1;
  d.pid = 3;
  d.host = "vm";
  d.reason = "rank 1 (vm:3) was killed by signal 9 (Killed)";
  auto dd = DecodeRankDied(EncodeRankDied(d));
  ASSERT_TRUE(dd.ok());
  EXPECT_EQ(dd->reason, d.reason);
}

}  // namespace
}  // namespace wire
}  // namespace boot
}  // namespace gasp

#include "boot/endpoint_exchange.h"

#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "boot/bootstrap_internal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace boot {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Returns canned allgather results; records what this rank contributed.
class FakeBootstrap : public Bootstrap {
 public:
  FakeBootstrap(int rank, std::vector<std::string> others)
      : rank_(rank), blobs_(std::move(others)) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(blobs_.size()); }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string method() const override { return "fake"; }
  absl::StatusOr<std::vector<std::string>> Allgather(absl::string_view mine, absl::Time) override {
    std::vector<std::string> out = blobs_;
    out[rank_] = std::string(mine);
    return out;
  }
  absl::Status Barrier(absl::Time) override { return absl::OkStatus(); }
  [[noreturn]] void Abort(int, absl::string_view) override { std::abort(); }
  std::string LocalAddressHint() const override { return ""; }
  void SetJobFailureHandler(JobFailureHandler) override {}
  absl::Status Finalize(absl::Time) override { return absl::OkStatus(); }

 private:
  int rank_;
  std::vector<std::string> blobs_;
};

RankRecord Record(int rank, const char* host) {
  RankRecord r = MakeRankRecord(rank, std::string(128, static_cast<char>('a' + rank)));
  std::memset(r.host, 0, sizeof(r.host));
  std::strncpy(r.host, host, sizeof(r.host) - 1);
  r.pid = 100 + rank;
  return r;
}

TEST(EndpointExchangeTest, EncodingIsExplicitLittleEndian) {
  RankRecord r = MakeRankRecord(0x01020304, "Z");
  std::memset(r.host, 0, sizeof(r.host));
  std::strcpy(r.host, "vm");
  r.pid = 0x0a0b0c0d;
  r.extra[3] = 0x1122334455667788ull;
  std::string b = EncodeRankRecord(r);
  ASSERT_EQ(b.size(), kRankRecordBytes);
  EXPECT_EQ(kRankRecordBytes, 240u);
  EXPECT_EQ(b.substr(0, 4), "GSPR");
  EXPECT_EQ(b[4], 1);  // version
  EXPECT_EQ(b[5], 0);
  EXPECT_EQ(static_cast<uint8_t>(b[6]), 240);  // record_bytes
  EXPECT_EQ(b[7], 0);
  EXPECT_EQ(b.substr(8, 4), std::string("\x04\x03\x02\x01", 4));
  EXPECT_EQ(b.substr(12, 4), std::string("\x0d\x0c\x0b\x0a", 4));
  EXPECT_EQ(b.substr(16, 3), std::string("vm\0", 3));
  EXPECT_EQ(b[16 + 64], 'Z');  // the transport blob follows the 64-byte host
  EXPECT_EQ(b.substr(232, 8), std::string("\x88\x77\x66\x55\x44\x33\x22\x11", 8));
}

TEST(EndpointExchangeTest, RoundTrip) {
  RankRecord r = MakeRankRecord(7, "endpoint");
  r.extra[0] = 42;
  auto d = DecodeRankRecord(EncodeRankRecord(r));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->rank, 7);
  EXPECT_EQ(d->pid, getpid());
  EXPECT_STREQ(d->host, r.host);
  EXPECT_EQ(std::memcmp(d->transport_blob, "endpoint", 8), 0);
  EXPECT_EQ(d->transport_blob[8], 0);
  EXPECT_EQ(d->extra[0], 42u);
}

TEST(EndpointExchangeTest, LongHostAndBlobAreTruncated) {
  RankRecord r = MakeRankRecord(0, std::string(500, 'x'));
  std::string host(100, 'h');
  std::strncpy(r.host, host.c_str(), sizeof(r.host));  // not terminated in memory
  auto d = DecodeRankRecord(EncodeRankRecord(r));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(std::strlen(d->host), 63u);
}

TEST(EndpointExchangeTest, DecoderRefusesOtherBuildsAndCorruption) {
  std::string good = EncodeRankRecord(MakeRankRecord(1, ""));
  EXPECT_EQ(DecodeRankRecord(good.substr(0, 5)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  EXPECT_THAT(std::string(DecodeRankRecord(bad_magic).status().message()),
              AllOf(HasSubstr("magic"), HasSubstr("rebuild every rank from the same gasp")));
  std::string v2 = good;
  v2[4] = 2;
  EXPECT_THAT(std::string(DecodeRankRecord(v2).status().message()),
              AllOf(HasSubstr("version 2"), HasSubstr("version 1")));
  EXPECT_FALSE(DecodeRankRecord(good + "x").ok());
  EXPECT_FALSE(DecodeRankRecord(good.substr(0, 239)).ok());
  std::string bigger = good;
  bigger[6] = static_cast<char>(241);
  EXPECT_FALSE(DecodeRankRecord(bigger).ok());
  std::string unterminated = good;
  std::memset(&unterminated[16], 'h', 64);
  EXPECT_EQ(DecodeRankRecord(unterminated).status().code(), absl::StatusCode::kInvalidArgument);
  std::string negative = good;
  negative[11] = '\x80';
  EXPECT_EQ(DecodeRankRecord(negative).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EndpointExchangeTest, ExchangeReturnsRecordsByRank) {
  std::vector<std::string> blobs = {"", EncodeRankRecord(Record(1, "n1")),
                                    EncodeRankRecord(Record(2, "n2"))};
  FakeBootstrap b(0, blobs);
  auto all = ExchangeRecords(b, Record(0, "n0"), absl::InfiniteFuture());
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ((*all)[r].rank, r);
    EXPECT_EQ((*all)[r].pid, 100 + r);
    EXPECT_EQ((*all)[r].transport_blob[0], 'a' + r);
  }
  EXPECT_STREQ((*all)[2].host, "n2");
}

TEST(EndpointExchangeTest, ExchangeNamesTheRankOfAnotherVersion) {
  RankRecord v2 = Record(2, "node9");
  v2.version = 2;
  v2.record_bytes = 256;
  std::string b2 = EncodeRankRecord(v2) + std::string(16, '\0');  // a larger v2 record
  FakeBootstrap b(0, {"", EncodeRankRecord(Record(1, "n1")), b2});
  auto all = ExchangeRecords(b, Record(0, "n0"), absl::InfiniteFuture());
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(all.status().message()),
              AllOf(HasSubstr("rank 2 (node9)"), HasSubstr("version 2"),
                    HasSubstr("this rank uses version 1"),
                    HasSubstr("rebuild every rank from the same gasp")));
}

TEST(EndpointExchangeTest, ExchangeRefusesARecordClaimingAnotherRank) {
  FakeBootstrap b(0, {"", EncodeRankRecord(Record(3, "n1"))});
  auto all = ExchangeRecords(b, Record(0, "n0"), absl::InfiniteFuture());
  ASSERT_FALSE(all.ok());
  EXPECT_THAT(std::string(all.status().message()),
              AllOf(HasSubstr("position 1"), HasSubstr("claims rank 3"), HasSubstr("n1")));
}

TEST(EndpointExchangeTest, ExchangeChecksItsOwnRank) {
  FakeBootstrap b(1, {"", ""});
  auto all = ExchangeRecords(b, Record(0, "n0"), absl::InfiniteFuture());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EndpointExchangeTest, ExchangeOverTheSingleBootstrap) {
  std::unique_ptr<Bootstrap> b = CreateSingleBootstrap();
  auto all = ExchangeRecords(*b, MakeRankRecord(0, "me"), absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 1u);
}

}  // namespace
}  // namespace boot
}  // namespace gasp

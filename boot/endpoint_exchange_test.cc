#include "boot/endpoint_exchange.h"

#include <unistd.h>

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
  r.set_host(host);
  r.set_pid(100 + rank);
  return r;
}

std::string Encode(const RankRecord& r) { return r.SerializeAsString(); }

TEST(EndpointExchangeTest, RoundTrip) {
  RankRecord r = MakeRankRecord(7, "endpoint");
  r.set_sys_base(42);
  r.set_heap_key(0x1122334455667788ull);
  r.set_range_base(1ull << 40);
  r.set_range_bytes(1ull << 36);
  auto d = DecodeRankRecord(Encode(r));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->rank(), 7);
  EXPECT_EQ(d->pid(), getpid());
  EXPECT_EQ(d->host(), r.host());
  EXPECT_EQ(d->transport_blob(), "endpoint");
  EXPECT_EQ(d->sys_base(), 42u);
  EXPECT_EQ(d->heap_key(), 0x1122334455667788ull);
  EXPECT_EQ(d->range_base(), 1ull << 40);
  EXPECT_EQ(d->range_bytes(), 1ull << 36);
  EXPECT_LE(Encode(Record(3, std::string(63, 'h').c_str())).size(), kMaxRankRecordBytes);
}

TEST(EndpointExchangeTest, LongBlobIsTruncated) {
  RankRecord r = MakeRankRecord(0, std::string(500, 'x'));
  EXPECT_EQ(r.transport_blob().size(), kRankRecordBlobBytes);
  EXPECT_LE(r.host().size(), kRankRecordHostBytes);
  EXPECT_TRUE(DecodeRankRecord(Encode(r)).ok());
}

TEST(EndpointExchangeTest, DecoderRefusesOtherBuildsAndCorruption) {
  const std::string good = Encode(MakeRankRecord(1, ""));
  auto cut = DecodeRankRecord(good.substr(0, 3));  // inside the magic
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(cut.status().message()), HasSubstr("rebuild every rank"));
  // A record of the fixed 240-byte layout of version 1.
  std::string v1 = "GSPR" + std::string("\x01\x00\xf0\x00", 4) + std::string(232, '\0');
  EXPECT_EQ(DecodeRankRecord(v1).status().code(), absl::StatusCode::kFailedPrecondition);

  RankRecord r = MakeRankRecord(1, "");
  r.set_magic(0x12345678);
  EXPECT_THAT(std::string(DecodeRankRecord(Encode(r)).status().message()),
              AllOf(HasSubstr("magic"), HasSubstr("rebuild every rank from the same gasp")));
  r = MakeRankRecord(1, "");
  r.set_version(3);
  EXPECT_THAT(std::string(DecodeRankRecord(Encode(r)).status().message()),
              AllOf(HasSubstr("version 3"), HasSubstr("version 2")));
  EXPECT_FALSE(DecodeRankRecord(good + "\xff").ok());
  EXPECT_FALSE(DecodeRankRecord(good + std::string(kMaxRankRecordBytes, '\0')).ok());

  r = MakeRankRecord(1, "");
  r.set_host(std::string(64, 'h'));
  EXPECT_EQ(DecodeRankRecord(Encode(r)).status().code(), absl::StatusCode::kInvalidArgument);
  r.set_host("bad\nhost");
  EXPECT_EQ(DecodeRankRecord(Encode(r)).status().code(), absl::StatusCode::kInvalidArgument);
  r = MakeRankRecord(1, "");
  r.set_transport_blob(std::string(129, 'b'));
  EXPECT_EQ(DecodeRankRecord(Encode(r)).status().code(), absl::StatusCode::kInvalidArgument);
  r = MakeRankRecord(1, "");
  r.set_rank(-1);
  EXPECT_EQ(DecodeRankRecord(Encode(r)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EndpointExchangeTest, ExchangeReturnsRecordsByRank) {
  std::vector<std::string> blobs = {"", Encode(Record(1, "n1")),
                                    Encode(Record(2, "n2"))};
  FakeBootstrap b(0, blobs);
  auto all = ExchangeRecords(b, Record(0, "n0"), absl::InfiniteFuture());
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ((*all)[r].rank(), r);
    EXPECT_EQ((*all)[r].pid(), 100 + r);
    EXPECT_EQ((*all)[r].transport_blob()[0], 'a' + r);
  }
  EXPECT_EQ((*all)[2].host(), "n2");
}

TEST(EndpointExchangeTest, ExchangeNamesTheRankOfAnotherVersion) {
  RankRecord v3 = Record(2, "node9");
  v3.set_version(3);
  FakeBootstrap b(0, {"", Encode(Record(1, "n1")), Encode(v3)});
  auto all = ExchangeRecords(b, Record(0, "n0"), absl::InfiniteFuture());
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(all.status().message()),
              AllOf(HasSubstr("rank 2 (node9)"), HasSubstr("version 3"),
                    HasSubstr("this rank uses version 2"),
                    HasSubstr("rebuild every rank from the same gasp")));
}

TEST(EndpointExchangeTest, ExchangeRefusesARecordClaimingAnotherRank) {
  FakeBootstrap b(0, {"", Encode(Record(3, "n1"))});
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

#include "transport/verbs_cm_proof.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace transport {
namespace {

using ::testing::HasSubstr;

const std::string kSecret(32, 'j');
absl::Span<const uint8_t> Key(const std::string& k) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(k.data()), k.size());
}

CmTranscript Sample() { return CmTranscript{4, 1, 2, 1, 0xabcdef, 0x1234}; }

TEST(CmProofTest, RequestRoundTripsAndChecksOut) {
  const auto req = EncodeCmRequest(Key(kSecret), Sample());
  absl::StatusOr<CmRequest> d = DecodeCmRequest(req);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->rank, 1u);
  EXPECT_EQ(d->kind, 1u);
  EXPECT_EQ(d->nonce, 0x1234u);
  CmTranscript t;
  ASSERT_TRUE(CheckCmRequest(Key(kSecret), *d, 4, 2, 0xabcdef, &t).ok());
  const Mac reply = CmMac(Key(kSecret), true, t);
  EXPECT_TRUE(CmReplyMatches(Key(kSecret), Sample(), reply));
  EXPECT_FALSE(CmReplyMatches(Key(std::string(32, 'x')), Sample(), reply));
  EXPECT_FALSE(CmReplyMatches(Key(kSecret), Sample(), absl::MakeConstSpan(reply.data(), 31)));
}

// verbs ranks reach themselves through loopback queue pairs.
TEST(CmProofTest, SelfConnectionIsAccepted) {
  const CmTranscript self{4, 2, 2, 0, 0xabcdef, 99};
  absl::StatusOr<CmRequest> d = DecodeCmRequest(EncodeCmRequest(Key(kSecret), self));
  ASSERT_TRUE(d.ok());
  CmTranscript t;
  EXPECT_TRUE(CheckCmRequest(Key(kSecret), *d, 4, 2, 0xabcdef, &t).ok());
}

TEST(CmProofTest, WrongSecretSessionOrAcceptorIsRefused) {
  const auto req = EncodeCmRequest(Key(kSecret), Sample());
  absl::StatusOr<CmRequest> d = DecodeCmRequest(req);
  ASSERT_TRUE(d.ok());
  CmTranscript t;
  absl::Status other = CheckCmRequest(Key(std::string(32, 'o')), *d, 4, 2, 0xabcdef, &t);
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("does not match this job's secret"));
  EXPECT_FALSE(CheckCmRequest(Key(kSecret), *d, 4, 2, 0xabcdee, &t).ok()) << "another session";
  EXPECT_FALSE(CheckCmRequest(Key(kSecret), *d, 4, 3, 0xabcdef, &t).ok()) << "made for rank 2";
  EXPECT_FALSE(CheckCmRequest(Key(kSecret), *d, 5, 2, 0xabcdef, &t).ok()) << "another size";
  // The acceptor's MAC never passes as a connector's (no reflection).
  CmRequest reflected = *d;
  reflected.mac = CmMac(Key(kSecret), true, Sample());
  EXPECT_FALSE(CheckCmRequest(Key(kSecret), reflected, 4, 2, 0xabcdef, &t).ok());
}

TEST(CmProofTest, MalformedPrivateDataIsNamed) {
  auto req = EncodeCmRequest(Key(kSecret), Sample());
  EXPECT_THAT(DecodeCmRequest(absl::MakeConstSpan(req.data(), 16)).status().message(),
              HasSubstr("16 bytes of private data"));
  auto bad = req;
  bad[0] ^= 1;
  EXPECT_THAT(DecodeCmRequest(bad).status().message(), HasSubstr("magic"));
  bad = req;
  bad[12] = 9;
  EXPECT_THAT(DecodeCmRequest(bad).status().message(), HasSubstr("version 9"));
  bad = req;
  bad[8] = 2;
  EXPECT_THAT(DecodeCmRequest(bad).status().message(), HasSubstr("unknown kind"));
  CmRequest r = *DecodeCmRequest(req);
  CmTranscript t;
  r.rank = 4;
  EXPECT_EQ(CheckCmRequest(Key(kSecret), r, 4, 2, 0xabcdef, &t).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CmProofTest, RejectReasonsAreNamed) {
  EXPECT_THAT(DescribeCmReject(EncodeCmReject(CmRejectReason::kNotThisJob)),
              HasSubstr("not take this process for a rank of its job"));
  EXPECT_THAT(DescribeCmReject(EncodeCmReject(CmRejectReason::kReplayed)), HasSubstr("replayed"));
  EXPECT_EQ(DescribeCmReject({}), "");
  EXPECT_TRUE(CmRejectIsFinal(EncodeCmReject(CmRejectReason::kNotThisJob)));
  EXPECT_FALSE(CmRejectIsFinal(EncodeCmReject(CmRejectReason::kResources)));
  auto other = EncodeCmReject(CmRejectReason::kResources);
  other[0] ^= 1;
  EXPECT_EQ(DescribeCmReject(other), "") << "not from gasp";
}

}  // namespace
}  // namespace transport
}  // namespace gasp

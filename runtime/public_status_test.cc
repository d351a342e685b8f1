#include "runtime/public_status.h"

#include <memory>
#include <sstream>
#include <string>

#include "gasp/version.h"
#include "gtest/gtest.h"

namespace gasp {
namespace {

TEST(PublicStatus, EveryCodeRoundTripsWithItsMessage) {
  for (int c = 0; c <= 16; ++c) {
    absl::Status a(static_cast<absl::StatusCode>(c), "why");
    Status p = ToPublic(a);
    EXPECT_EQ(static_cast<int>(p.code()), c);
    EXPECT_EQ(ToAbsl(p), a);
    // Names agree with Abseil's ("NOT_FOUND"), so logs read the same.
    if (c != 0) {
      EXPECT_EQ(p.ToString(), std::string(StatusCodeName(p.code())) + ": why");
      EXPECT_EQ(absl::StatusCodeToString(a.code()), StatusCodeName(p.code()));
    }
  }
  EXPECT_TRUE(ToPublic(absl::OkStatus()).ok());
  EXPECT_EQ(ToPublic(absl::OkStatus()).ToString(), "OK");
  EXPECT_STREQ(StatusCodeName(static_cast<StatusCode>(99)), "UNKNOWN_CODE");
}

TEST(PublicStatus, OkDropsTheMessageAndStreams) {
  Status ok(StatusCode::kOk, "ignored");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.message(), "");
  std::ostringstream os;
  os << Status(StatusCode::kPermissionDenied, "no grant");
  EXPECT_EQ(os.str(), "PERMISSION_DENIED: no grant");
  EXPECT_NE(Status(StatusCode::kInternal, "a"), Status(StatusCode::kInternal, "b"));
}

TEST(PublicResult, HoldsAValueOrAnError) {
  Result<std::string> v = ToPublic(absl::StatusOr<std::string>("x"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "x");
  EXPECT_EQ(v->size(), 1u);
  EXPECT_TRUE(v.status().ok());
  Result<std::string> e = ToPublic(absl::StatusOr<std::string>(absl::NotFoundError("gone")));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.value_or("fallback"), "fallback");
  EXPECT_EQ(ToAbsl(std::move(e)).status(), absl::NotFoundError("gone"));
  // Move-only values work.
  Result<std::unique_ptr<int>> m(std::make_unique<int>(7));
  std::unique_ptr<int> taken = std::move(m).value();
  EXPECT_EQ(*taken, 7);
}

TEST(PublicResult, AnOkStatusIsNotAValue) {
  Result<int> r{OkStatus()};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

TEST(PublicResultDeathTest, ValueOfAnErrorEndsTheProcessNamingIt) {
  Result<int> r{Status(StatusCode::kUnavailable, "rank 3 lost")};
  EXPECT_DEATH((void)r.value(), "Result::value\\(\\) on an error: UNAVAILABLE: rank 3 lost");
}

TEST(PublicVersion, MatchesTheHeader) {
  EXPECT_EQ(std::string(Version()), std::to_string(GASP_VERSION_MAJOR) + "." +
                                        std::to_string(GASP_VERSION_MINOR) + "." +
                                        std::to_string(GASP_VERSION_PATCH));
  EXPECT_EQ(GASP_VERSION, GASP_VERSION_MAJOR * 10000 + GASP_VERSION_MINOR * 100 + GASP_VERSION_PATCH);
}

}  // namespace
}  // namespace gasp

#include "base/status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace gasp {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status Chain(int x, int* out) {
  GASP_ASSIGN_OR_RETURN(int h, Half(x));
  GASP_ASSIGN_OR_RETURN(*out, Half(h));
  GASP_RETURN_IF_ERROR(absl::OkStatus());
  return absl::OkStatus();
}

TEST(StatusTest, MacrosPropagate) {
  int out = 0;
  EXPECT_TRUE(Chain(8, &out).ok());
  EXPECT_EQ(out, 2);
  absl::Status s = Chain(6, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd");
}

TEST(StatusTest, AnnotateAndErrno) {
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
  absl::Status s = Annotate(absl::NotFoundError("gone"), "rank 3");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "rank 3: gone");
  EXPECT_EQ(ErrnoError("mmap", ENOMEM).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoError("connect", ECONNREFUSED).code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(ErrnoError("open", EACCES).message().find("mmap") , 0u);
}

}  // namespace
}  // namespace gasp

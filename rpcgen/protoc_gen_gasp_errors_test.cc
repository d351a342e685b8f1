// protoc-gen-gasp run the way a build runs it (/usr/bin/protoc with the
// plugin): the files it refuses, with which message, and that it writes
// nothing then.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gasp {
namespace rpcgen {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct ProtocResult {
  int exit_code;
  std::string output;  // stdout and stderr
};

class ProtocGenGaspTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    const char* tmpdir = std::getenv("TEST_TMPDIR");
    ASSERT_NE(srcdir, nullptr) << "run under bazel test";
    ASSERT_NE(workspace, nullptr);
    ASSERT_NE(tmpdir, nullptr);
    runfiles_ = absl::StrCat(srcdir, "/", workspace);
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = absl::StrCat(tmpdir, "/", test->name());
    std::filesystem::create_directories(dir_ + "/in");
    std::filesystem::create_directories(dir_ + "/out");
  }

  // Writes `text` as in/<name> and runs protoc with the plugin on it,
  // passing it `parameter` if not empty. The options resolve as
  // "gasp/options.proto" from the runfiles, descriptor.proto from /usr/include.
  ProtocResult Run(const std::string& name, const std::string& text,
                   const std::string& parameter = "") {
    std::ofstream(dir_ + "/in/" + name) << text;
    std::string command = absl::StrCat(
        "/usr/bin/protoc --plugin=protoc-gen-gasp=", runfiles_, "/rpcgen/protoc-gen-gasp",
        " --gasp_out=", parameter.empty() ? "" : parameter + ":", dir_, "/out -I", dir_,
        "/in -I", runfiles_, "/rpcgen -I/usr/include ", name, " 2>&1");
    ProtocResult result{-1, ""};
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return result;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
    int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
  }

  bool OutputExists(const std::string& name) {
    return std::filesystem::exists(dir_ + "/out/" + name);
  }

  std::string ReadOutput(const std::string& name) {
    std::ifstream in(dir_ + "/out/" + name);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::string runfiles_;
  std::string dir_;
};

constexpr char kHeader[] = R"(syntax = "proto3";
package t.u;
import "gasp/options.proto";
message M { gasp.GlobalRef ref = 1; }
)";

TEST_F(ProtocGenGaspTest, AcceptsUnaryMethodsAndCarriesComments) {
  ProtocResult r = Run("good.proto", absl::StrCat(kHeader, R"(
service S {
  // Looks M up.
  rpc Get(M) returns (M) { option (gasp.invocation) = FUNCTION_SHIPPING; }
}
)"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string header = ReadOutput("good.gasp.h");
  EXPECT_THAT(header, HasSubstr("#include \"gasp/service.h\""));
  // Generated code needs the standard library, protobuf and gasp only.
  EXPECT_THAT(header, Not(HasSubstr("absl")));
  const std::string source = ReadOutput("good.gasp.cc");
  EXPECT_THAT(source, HasSubstr("#include \"good.gasp.h\""));
  EXPECT_THAT(source, Not(HasSubstr("absl")));
  EXPECT_THAT(header, HasSubstr("#include \"good.pb.h\""));
  EXPECT_THAT(header, HasSubstr("namespace t::u {"));
  EXPECT_THAT(header, HasSubstr("static constexpr char kServiceName[] = \"t.u.S\";"));
  EXPECT_THAT(header, HasSubstr("// Looks M up.\n"
                                "    // FUNCTION_SHIPPING: runs at the service's home rank.\n"
                                "    virtual ::gasp::Status Get(const ::t::u::M& request, "
                                "::t::u::M* reply) = 0;"));
  EXPECT_THAT(ReadOutput("good.gasp.cc"),
              HasSubstr("{\"Get\", ::gasp::rpc::Kind::kFunctionShipping, "
                        "&::t::u::M::default_instance(),"));
}

TEST_F(ProtocGenGaspTest, FileWithoutServicesStillGetsBothFiles) {
  ProtocResult r = Run("plain.proto", kHeader);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(OutputExists("plain.gasp.h"));
  EXPECT_TRUE(OutputExists("plain.gasp.cc"));
  EXPECT_THAT(ReadOutput("plain.gasp.h"), Not(HasSubstr("namespace")));
}

TEST_F(ProtocGenGaspTest, RefusesServerStreaming) {
  ProtocResult r = Run("bad.proto", absl::StrCat(kHeader, R"(
service S {
  rpc Get(M) returns (M);
  rpc Watch(M) returns (stream M);
}
)"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("gasp services support unary methods only: t.u.S.Watch"));
  EXPECT_FALSE(OutputExists("bad.gasp.h"));
  EXPECT_FALSE(OutputExists("bad.gasp.cc"));
}

TEST_F(ProtocGenGaspTest, RefusesClientAndBidiStreaming) {
  ProtocResult client = Run("client.proto", absl::StrCat(kHeader, R"(
service S { rpc Upload(stream M) returns (M); }
)"));
  EXPECT_NE(client.exit_code, 0);
  EXPECT_THAT(client.output, HasSubstr("gasp services support unary methods only: t.u.S.Upload"));

  ProtocResult bidi = Run("bidi.proto", absl::StrCat(kHeader, R"(
service S { rpc Chat(stream M) returns (stream M); }
)"));
  EXPECT_NE(bidi.exit_code, 0);
  EXPECT_THAT(bidi.output, HasSubstr("gasp services support unary methods only: t.u.S.Chat"));
}

TEST_F(ProtocGenGaspTest, RefusesNamesThatClashWithGeneratedCode) {
  ProtocResult bind = Run("bind.proto", absl::StrCat(kHeader, R"(
service S { rpc Bind(M) returns (M); }
)"));
  EXPECT_NE(bind.exit_code, 0);
  EXPECT_THAT(bind.output, HasSubstr("gasp method name clashes with generated C++: t.u.S.Bind"));

  ProtocResult keyword = Run("keyword.proto", absl::StrCat(kHeader, R"(
service S { rpc delete(M) returns (M); }
)"));
  EXPECT_NE(keyword.exit_code, 0);
  EXPECT_THAT(keyword.output,
              HasSubstr("gasp method name clashes with generated C++: t.u.S.delete"));

  ProtocResult service = Run("service.proto", absl::StrCat(kHeader, R"(
service Stub { rpc Get(M) returns (M); }
)"));
  EXPECT_NE(service.exit_code, 0);
  EXPECT_THAT(service.output, HasSubstr("gasp service name clashes with generated C++: t.u.Stub"));
}

TEST_F(ProtocGenGaspTest, RefusesParameters) {
  ProtocResult r = Run("p.proto", kHeader, "verbose");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("protoc-gen-gasp takes no parameters, got 'verbose'"));
  EXPECT_FALSE(OutputExists("p.gasp.h"));
}

}  // namespace
}  // namespace rpcgen
}  // namespace gasp

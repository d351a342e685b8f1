// The code protoc-gen-gasp generates for rpcgen/testdata/{echo,bare}.proto:
// the method table the run time dispatches through, the Service base, and
// the Stub's forwarding to Binding::Call.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "gasp/service.h"
#include "rpcgen/testdata/bare.gasp.h"
#include "rpcgen/testdata/echo.gasp.h"

namespace gasp {
namespace testdata {
namespace {

using ::gasp::rpc::Binding;
using ::gasp::rpc::CallStats;
using ::gasp::rpc::Kind;
using ::gasp::rpc::MethodInfo;
using ::gasp::rpc::Path;
using ::google::protobuf::Message;
using ::testing::ElementsAre;

// Records which method ran with what, and answers from the request so that
// the reply shows the request arrived intact.
class TestEcho : public Echo::Service {
 public:
  gasp::Status Echo(const EchoRequest& request, EchoReply* reply) override {
    calls.push_back(absl::StrCat("Echo ", request.text(), " @", request.buffer().address()));
    reply->set_text(request.text() + "!");
    return gasp::OkStatus();
  }
  gasp::Status Sum(const SumRequest& request, SumReply* reply) override {
    calls.push_back(absl::StrCat("Sum ", request.parts_size()));
    uint64_t total = 0;
    for (const GlobalRef& part : request.parts()) total += part.length();
    reply->set_total_bytes(total);
    return gasp::OkStatus();
  }
  gasp::Status Resolve(const testdata_other::v1::Key& request, Lookup::Result* reply) override {
    calls.push_back(absl::StrCat("Resolve ", request.name()));
    if (request.name().empty()) return gasp::Status(gasp::StatusCode::kNotFound, "empty name");
    reply->mutable_key()->set_raw(request.name());
    reply->mutable_value()->set_address(0x1000);
    return gasp::OkStatus();
  }

  std::vector<std::string> calls;
};

TEST(GeneratedServiceTest, NamesTheServiceByItsFullProtoName) {
  EXPECT_STREQ(Echo::kServiceName, "gasp.testdata.Echo");
  TestEcho impl;
  EXPECT_STREQ(impl.service_name(), "gasp.testdata.Echo");
  // No package: the class is global and the name unqualified.
  EXPECT_STREQ(::Bare::kServiceName, "Bare");
  EXPECT_STREQ(::Idle::kServiceName, "Idle");
}

TEST(GeneratedServiceTest, MethodTableFollowsDeclarationOrder) {
  TestEcho impl;
  gasp::rpc::MethodTable methods = impl.methods();
  ASSERT_EQ(methods.size(), 3u);
  EXPECT_EQ(Echo::kEcho, 0);
  EXPECT_EQ(Echo::kSum, 1);
  EXPECT_EQ(Echo::kResolve, 2);

  EXPECT_STREQ(methods[Echo::kEcho].name, "Echo");
  EXPECT_STREQ(methods[Echo::kSum].name, "Sum");
  EXPECT_STREQ(methods[Echo::kResolve].name, "Resolve");

  EXPECT_EQ(methods[Echo::kEcho].kind, Kind::kDataShipping);
  EXPECT_EQ(methods[Echo::kSum].kind, Kind::kFunctionShipping);
  EXPECT_EQ(methods[Echo::kResolve].kind, Kind::kAuto);  // no option

  EXPECT_EQ(methods[Echo::kEcho].request_prototype, &EchoRequest::default_instance());
  EXPECT_EQ(methods[Echo::kEcho].reply_prototype, &EchoReply::default_instance());
  EXPECT_EQ(methods[Echo::kSum].request_prototype->GetDescriptor()->full_name(),
            "gasp.testdata.SumRequest");
  EXPECT_EQ(methods[Echo::kSum].reply_prototype->GetDescriptor()->full_name(),
            "gasp.testdata.SumReply");
  // From another file and package, and a nested type: not gasp.testdata.Key.
  EXPECT_EQ(methods[Echo::kResolve].request_prototype->GetDescriptor()->full_name(),
            "testdata_other.v1.Key");
  EXPECT_EQ(methods[Echo::kResolve].reply_prototype->GetDescriptor()->full_name(),
            "gasp.testdata.Lookup.Result");
}

TEST(GeneratedServiceTest, MethodTableIsSharedByAllImplementations) {
  TestEcho a;
  TestEcho b;
  EXPECT_EQ(a.methods().begin(), b.methods().begin());
}

TEST(GeneratedServiceTest, InvokeCallsTheRightMethodWithTheRequest) {
  TestEcho impl;
  gasp::rpc::MethodTable methods = impl.methods();

  EchoRequest echo;
  echo.set_text("hi");
  echo.mutable_buffer()->set_address(4096);
  EchoReply echo_reply;
  ASSERT_TRUE(methods[Echo::kEcho].invoke(&impl, echo, &echo_reply).ok());
  EXPECT_EQ(echo_reply.text(), "hi!");

  SumRequest sum;
  sum.add_parts()->set_length(10);
  sum.add_parts()->set_length(32);
  SumReply sum_reply;
  ASSERT_TRUE(methods[Echo::kSum].invoke(&impl, sum, &sum_reply).ok());
  EXPECT_EQ(sum_reply.total_bytes(), 42u);

  testdata_other::v1::Key key;
  key.set_name("k");
  Lookup::Result result;
  ASSERT_TRUE(methods[Echo::kResolve].invoke(&impl, key, &result).ok());
  EXPECT_EQ(result.key().raw(), "k");
  EXPECT_EQ(result.value().address(), 0x1000u);

  EXPECT_THAT(impl.calls, ElementsAre("Echo hi @4096", "Sum 2", "Resolve k"));
}

// The way the run time uses the table: messages made from the prototypes,
// the implementation reached through ServiceBase.
TEST(GeneratedServiceTest, InvokeWorksTypeErased) {
  TestEcho impl;
  rpc::ServiceBase* base = &impl;
  const MethodInfo& sum = base->methods()[Echo::kSum];
  std::unique_ptr<Message> request(sum.request_prototype->New());
  std::unique_ptr<Message> reply(sum.reply_prototype->New());
  ASSERT_TRUE(request->ParseFromString([] {
    SumRequest r;
    r.add_parts()->set_length(7);
    return r.SerializeAsString();
  }()));
  ASSERT_TRUE(sum.invoke(base, *request, reply.get()).ok());
  SumReply typed;
  ASSERT_TRUE(typed.ParseFromString(reply->SerializeAsString()));
  EXPECT_EQ(typed.total_bytes(), 7u);
}

TEST(GeneratedServiceTest, InvokePassesTheMethodsErrorThrough) {
  TestEcho impl;
  testdata_other::v1::Key key;  // empty name
  Lookup::Result result;
  gasp::Status s = impl.methods()[Echo::kResolve].invoke(&impl, key, &result);
  EXPECT_EQ(s.code(), gasp::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "empty name");
}

// A Binding that records each call and answers with a scripted reply and
// status instead of shipping anything.
class RecordingBinding : public Binding {
 public:
  struct Record {
    int index;
    std::string request_type;
    std::string request_bytes;
    std::string reply_type;
  };

  gasp::Status Call(int index, const Message& request, Message* reply) override {
    calls.push_back({index, request.GetDescriptor()->full_name(), request.SerializeAsString(),
                     reply->GetDescriptor()->full_name()});
    if (!status.ok()) return status;
    if (!reply->ParseFromString(reply_bytes)) return gasp::Status(gasp::StatusCode::kInternal, "bad scripted reply");
    return gasp::OkStatus();
  }
  Path Choose(int index, const Message& request) override { return Path::kTrustedDirect; }
  void ForcePath(Path path) override {}
  void ClearForcedPath() override {}
  CallStats stats() const override { return {}; }
  const std::string& service() const override { return service_; }

  std::vector<Record> calls;
  std::string reply_bytes;                // parsed into the reply
  gasp::Status status = gasp::OkStatus();  // returned instead, if not OK

 private:
  std::string service_ = Echo::kServiceName;
};

TEST(GeneratedStubTest, EachMethodCallsBindingWithItsIndexRequestAndReplyType) {
  auto binding = std::make_shared<RecordingBinding>();
  Echo::Stub stub(binding);
  EXPECT_EQ(&stub.binding(), binding.get());

  EchoRequest echo;
  echo.set_text("hello");
  echo.mutable_buffer()->set_length(64);
  EchoReply scripted_echo;
  scripted_echo.set_text("from binding");
  binding->reply_bytes = scripted_echo.SerializeAsString();
  gasp::Result<EchoReply> echo_reply = stub.Echo(echo);
  ASSERT_TRUE(echo_reply.ok()) << echo_reply.status();
  EXPECT_EQ(echo_reply->text(), "from binding");

  SumRequest sum;
  sum.add_parts()->set_address(8192);
  SumReply scripted_sum;
  scripted_sum.set_total_bytes(99);
  binding->reply_bytes = scripted_sum.SerializeAsString();
  gasp::Result<SumReply> sum_reply = stub.Sum(sum);
  ASSERT_TRUE(sum_reply.ok()) << sum_reply.status();
  EXPECT_EQ(sum_reply->total_bytes(), 99u);

  testdata_other::v1::Key key;
  key.set_name("x");
  Lookup::Result scripted_result;
  scripted_result.mutable_key()->set_raw("raw");
  binding->reply_bytes = scripted_result.SerializeAsString();
  gasp::Result<Lookup::Result> result = stub.Resolve(key);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->key().raw(), "raw");

  ASSERT_EQ(binding->calls.size(), 3u);
  EXPECT_EQ(binding->calls[0].index, Echo::kEcho);
  EXPECT_EQ(binding->calls[0].request_type, "gasp.testdata.EchoRequest");
  EXPECT_EQ(binding->calls[0].request_bytes, echo.SerializeAsString());
  EXPECT_EQ(binding->calls[0].reply_type, "gasp.testdata.EchoReply");
  EXPECT_EQ(binding->calls[1].index, Echo::kSum);
  EXPECT_EQ(binding->calls[1].request_type, "gasp.testdata.SumRequest");
  EXPECT_EQ(binding->calls[1].request_bytes, sum.SerializeAsString());
  EXPECT_EQ(binding->calls[1].reply_type, "gasp.testdata.SumReply");
  EXPECT_EQ(binding->calls[2].index, Echo::kResolve);
  EXPECT_EQ(binding->calls[2].request_type, "testdata_other.v1.Key");
  EXPECT_EQ(binding->calls[2].request_bytes, key.SerializeAsString());
  EXPECT_EQ(binding->calls[2].reply_type, "gasp.testdata.Lookup.Result");
}

TEST(GeneratedStubTest, BindingErrorsPassThrough) {
  auto binding = std::make_shared<RecordingBinding>();
  binding->status = gasp::Status(gasp::StatusCode::kPermissionDenied, "domain 3 not readable");
  Echo::Stub stub(binding);
  gasp::Result<SumReply> reply = stub.Sum(SumRequest());
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status(), binding->status);
  EXPECT_EQ(binding->calls.size(), 1u);
}

TEST(GeneratedStubTest, CopiesShareTheBinding) {
  auto binding = std::make_shared<RecordingBinding>();
  Echo::Stub stub(binding);
  Echo::Stub copy = stub;
  EXPECT_EQ(&copy.binding(), binding.get());
  ASSERT_TRUE(copy.Echo(EchoRequest()).ok());
  EXPECT_EQ(binding->calls.size(), 1u);
}

// bare.proto: no package, a method named like its message, no methods.
class TestBare : public ::Bare::Service {
 public:
  gasp::Status Ping(const ::Ping& request, ::Ping* reply) override {
    reply->set_seq(request.seq() + 1);
    return gasp::OkStatus();
  }
};

class TestIdle : public ::Idle::Service {};

TEST(GeneratedServiceTest, GlobalNamespaceAndEmptyServices) {
  TestBare bare;
  ASSERT_EQ(bare.methods().size(), 1u);
  EXPECT_STREQ(bare.methods()[::Bare::kPing].name, "Ping");
  EXPECT_EQ(bare.methods()[::Bare::kPing].kind, Kind::kAuto);
  ::Ping ping;
  ping.set_seq(1);
  ::Ping pong;
  ASSERT_TRUE(bare.methods()[::Bare::kPing].invoke(&bare, ping, &pong).ok());
  EXPECT_EQ(pong.seq(), 2);

  auto binding = std::make_shared<RecordingBinding>();
  binding->reply_bytes = pong.SerializeAsString();
  gasp::Result<::Ping> reply = ::Bare::Stub(binding).Ping(ping);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->seq(), 2);
  EXPECT_EQ(binding->calls[0].index, ::Bare::kPing);

  TestIdle idle;
  EXPECT_TRUE(idle.methods().empty());
}

}  // namespace
}  // namespace testdata
}  // namespace gasp

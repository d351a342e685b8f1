// End-to-end tests of gasp_nameserver: the real binary as a subprocess,
// real mutual TLS with certificates made by openssl for this run
// (testing/make_test_certs.sh), the real client library.
//
// What a refused certificate looks like to a client (asserted below): the
// TLS handshake completes (the server asks for a certificate without
// verifying it there), and every call is then refused with UNAUTHENTICATED
// and the reason (no certificate, another CA's, expired, not yet valid)
// before it reaches any service.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nameserver/client.h"
#include "nameserver/nameserver.grpc.pb.h"
#include "nameserver/testing/registrations.h"
#include "nameserver/testing/server_process.h"

namespace gasp {
namespace nameserver {
namespace {

using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ServerProcess;

// Subjects as the name server reports them (RFC 2253: CN first).
constexpr char kSolver[] = "CN=solver,O=gasp";
constexpr char kAlice[] = "CN=alice,O=gasp";
constexpr char kBob[] = "CN=bob,O=gasp";
constexpr char kCarol[] = "CN=carol,O=gasp";  // signed by an intermediate CA
constexpr char kService[] = "solver.v1/Jacobi";
constexpr const char* kMachine = testing::kTestMachine;
constexpr const char* kSha = testing::kTestSha256;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// Registered by kSolver in the tests; kAlice is its trusted principal.
v1::RegisterRequest SolverRegistration(const std::string& name = kService) {
  return testing::TestRegistration(name, kAlice);
}

v1::BindRequest BindTo(const std::string& service, const std::string& machine = kMachine) {
  v1::BindRequest b;
  b.set_service(service);
  b.set_machine_type(machine);
  return b;
}

class NameServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new std::string(testing::NewTempDir("certs"));
    std::string cmd = absl::StrCat("bash ", testing::Runfile("nameserver/testing/make_test_certs.sh"),
                                   " ", *certs_);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  static std::string Cert(const std::string& file) { return absl::StrCat(*certs_, "/", file); }

  // Server flags for mutual TLS with the test CA.
  static std::vector<std::string> TlsArgs() {
    return {"--listen", "127.0.0.1:0", "--ca", Cert("ca.crt"), "--cert", Cert("server.crt"),
            "--key", Cert("server.key")};
  }

  std::unique_ptr<ServerProcess> StartTls(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = TlsArgs();
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<std::unique_ptr<ServerProcess>> s = ServerProcess::Start(args);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // A client with the certificate and key `who`.crt/.key.
  std::unique_ptr<NameServerClient> Client(const ServerProcess& s, const std::string& who,
                                           absl::Duration deadline = absl::Seconds(10)) {
    ClientOptions o;
    o.address = s.address();
    o.ca_file = Cert("ca.crt");
    o.cert_file = Cert(who + ".crt");
    o.key_file = Cert(who + ".key");
    o.deadline = deadline;
    absl::StatusOr<std::unique_ptr<NameServerClient>> c = NameServerClient::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // A raw channel: `who` empty means no client certificate at all.
  std::shared_ptr<grpc::Channel> Channel(const ServerProcess& s, const std::string& who) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFile(Cert("ca.crt"));
    if (!who.empty()) {
      ssl.pem_cert_chain = ReadFile(Cert(who + ".crt"));
      ssl.pem_private_key = ReadFile(Cert(who + ".key"));
    }
    return grpc::CreateChannel(s.address(), grpc::SslCredentials(ssl));
  }

  static std::string* certs_;
};

std::string* NameServerTest::certs_ = nullptr;

std::vector<v1::MethodBinding::Stub> Stubs(const v1::BindReply& b) {
  std::vector<v1::MethodBinding::Stub> out;
  for (const v1::MethodBinding& m : b.methods()) out.push_back(m.stub());
  return out;
}

TEST_F(NameServerTest, RegisterBindListUnregister) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  auto solver = Client(*server, "solver");
  auto alice = Client(*server, "alice");

  absl::StatusOr<v1::RegisterReply> reg = solver->Register(SolverRegistration());
  ASSERT_TRUE(reg.ok()) << reg.status();
  // The principal is the verified certificate's subject, RFC 2253 form.
  EXPECT_EQ(reg->owner(), kSolver);
  EXPECT_FALSE(reg->replaced());

  absl::StatusOr<std::vector<v1::ServiceSummary>> list = alice->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].service(), kService);
  EXPECT_EQ((*list)[0].owner(), kSolver);
  EXPECT_EQ((*list)[0].methods_size(), 3);
  EXPECT_EQ((*list)[0].endpoint(), "127.0.0.1:7001");
  EXPECT_THAT((*list)[0].machine_types(), ElementsAre(kMachine));

  absl::StatusOr<v1::BindReply> bind = alice->Bind(BindTo(kService));
  ASSERT_TRUE(bind.ok()) << bind.status();
  EXPECT_EQ(bind->principal(), kAlice);
  EXPECT_EQ(bind->endpoint(), "127.0.0.1:7001");
  EXPECT_EQ(bind->home_rank(), 3);

  // Re-registration by the owner replaces.
  reg = solver->Register(SolverRegistration());
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_TRUE(reg->replaced());

  ASSERT_TRUE(solver->Unregister(kService).ok());
  EXPECT_EQ(alice->Bind(BindTo(kService)).status().code(), absl::StatusCode::kNotFound);
  list = alice->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(NameServerTest, TrustedPrincipalGetsKeysUntrustedDoesNot) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(Client(*server, "solver")->Register(SolverRegistration()).ok());

  absl::StatusOr<v1::BindReply> a = Client(*server, "alice")->Bind(BindTo(kService));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->trusted());
  ASSERT_EQ(a->keys_size(), 2);
  EXPECT_EQ(a->keys(1).rkey(), 0xabc1u);
  EXPECT_EQ(a->keys(1).rights(), v1::RemoteKey::READ_WRITE);
  EXPECT_THAT(Stubs(*a), ElementsAre(v1::MethodBinding::DATA_SHIPPING,
                                     v1::MethodBinding::FUNCTION_SHIPPING,
                                     v1::MethodBinding::AUTO));
  EXPECT_THAT(a->domains(), ElementsAre(5, 7));
  EXPECT_EQ(a->segments_size(), 2);

  absl::StatusOr<v1::BindReply> b = Client(*server, "bob")->Bind(BindTo(kService));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->principal(), kBob);
  EXPECT_FALSE(b->trusted());
  EXPECT_EQ(b->keys_size(), 0);
  EXPECT_EQ(b->segments_size(), 2);  // addresses are not secrets; keys are
  EXPECT_THAT(Stubs(*b), ElementsAre(v1::MethodBinding::FUNCTION_SHIPPING,
                                     v1::MethodBinding::FUNCTION_SHIPPING,
                                     v1::MethodBinding::FUNCTION_SHIPPING));
  EXPECT_THAT(b->methods(0).reason(), HasSubstr("untrusted"));

  // The owner is trusted without being listed.
  absl::StatusOr<v1::BindReply> o = Client(*server, "solver")->Bind(BindTo(kService));
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->trusted());
  EXPECT_EQ(o->keys_size(), 2);
}

TEST_F(NameServerTest, TlsIgnoresPrincipalMetadata) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(Client(*server, "solver")->Register(SolverRegistration()).ok());
  // Bob claims to be Alice through the insecure-mode metadata: ignored.
  auto stub = v1::NameServer::NewStub(Channel(*server, "bob"));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  ctx.AddMetadata("gasp-principal", kAlice);
  v1::BindReply reply;
  grpc::Status st = stub->Bind(&ctx, BindTo(kService), &reply);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.principal(), kBob);
  EXPECT_FALSE(reply.trusted());
  EXPECT_EQ(reply.keys_size(), 0);
}

TEST_F(NameServerTest, DataShippingOnlyWithCodeForTheMachineType) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(Client(*server, "solver")->Register(SolverRegistration()).ok());
  auto alice = Client(*server, "alice");

  absl::StatusOr<v1::BindReply> x86 = alice->Bind(BindTo(kService, kMachine));
  ASSERT_TRUE(x86.ok());
  EXPECT_TRUE(x86->has_code());
  EXPECT_EQ(x86->code().path(), "/opt/solver/libsolver.so");
  EXPECT_EQ(x86->code().sha256(), kSha);

  absl::StatusOr<v1::BindReply> arm = alice->Bind(BindTo(kService, "aarch64-linux-gnu"));
  ASSERT_TRUE(arm.ok());
  EXPECT_FALSE(arm->has_code());
  EXPECT_TRUE(arm->trusted());
  EXPECT_EQ(arm->keys_size(), 2);  // still trusted, only the code is missing
  EXPECT_THAT(Stubs(*arm), ElementsAre(v1::MethodBinding::FUNCTION_SHIPPING,
                                       v1::MethodBinding::FUNCTION_SHIPPING,
                                       v1::MethodBinding::FUNCTION_SHIPPING));
  EXPECT_THAT(arm->methods(0).reason(),
              HasSubstr("no code for machine type 'aarch64-linux-gnu' (registered: x86_64-linux-gnu)"));
  EXPECT_EQ(arm->methods(1).reason(), "registered for function shipping");
}

TEST_F(NameServerTest, CallerInTheHomeProcessGetsDirectOrGatedStubs) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(Client(*server, "solver")->Register(SolverRegistration()).ok());
  v1::BindRequest req = BindTo(kService);
  req.set_job_id("job-42");
  req.set_rank(3);
  absl::StatusOr<v1::BindReply> a = Client(*server, "alice")->Bind(req);
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(Stubs(*a), ElementsAre(v1::MethodBinding::TRUSTED_DIRECT,
                                     v1::MethodBinding::FUNCTION_SHIPPING,
                                     v1::MethodBinding::TRUSTED_DIRECT));
  absl::StatusOr<v1::BindReply> b = Client(*server, "bob")->Bind(req);
  ASSERT_TRUE(b.ok());
  EXPECT_THAT(Stubs(*b), ElementsAre(v1::MethodBinding::UNTRUSTED_GATED,
                                     v1::MethodBinding::FUNCTION_SHIPPING,
                                     v1::MethodBinding::UNTRUSTED_GATED));
  EXPECT_EQ(b->keys_size(), 0);
  // Another rank of the same job is elsewhere.
  req.set_rank(0);
  a = Client(*server, "alice")->Bind(req);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->methods(0).stub(), v1::MethodBinding::DATA_SHIPPING);
}

TEST_F(NameServerTest, InvalidRegistrationsAreRefusedWithAReason) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  auto solver = Client(*server, "solver");
  struct Case {
    const char* what;
    v1::RegisterRequest request;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({"empty name", SolverRegistration(""), "the service name is empty"});
  v1::RegisterRequest r = SolverRegistration();
  r.clear_methods();
  cases.push_back({"no methods", r, "no methods"});
  r = SolverRegistration();
  r.mutable_methods(1)->set_name("Solve");
  cases.push_back({"duplicate method", r, "method 'Solve' is listed twice"});
  r = SolverRegistration();
  r.set_endpoint("no-port-here");
  cases.push_back({"bad endpoint", r, "endpoint 'no-port-here': no port"});
  r = SolverRegistration();
  r.set_endpoint("host:99999");
  cases.push_back({"bad port", r, "the port must be 1..65535"});
  r = SolverRegistration();
  r.mutable_code(0)->set_sha256("xyz");
  cases.push_back({"bad sha256", r, "64 lowercase hex digits"});
  r = SolverRegistration();
  r.mutable_keys(0)->set_domain(99);
  cases.push_back({"key without segment", r, "domain 99, which no registered segment"});
  for (const Case& c : cases) {
    absl::StatusOr<v1::RegisterReply> reply = solver->Register(c.request);
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(reply.status().message(), HasSubstr(c.message)) << c.what;
  }
  absl::StatusOr<std::vector<v1::ServiceSummary>> list = solver->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(NameServerTest, UnknownServiceIsNotFound) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  auto alice = Client(*server, "alice");
  absl::StatusOr<v1::BindReply> b = alice->Bind(BindTo("no.such/Service"));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(b.status().message(), HasSubstr("no service 'no.such/Service' is registered"));
  EXPECT_THAT(b.status().message(), HasSubstr(absl::StrCat("name server ", server->address())));
  EXPECT_EQ(alice->Unregister("no.such/Service").code(), absl::StatusCode::kNotFound);
}

TEST_F(NameServerTest, OnlyTheOwnerMayUnregisterOrReplace) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(Client(*server, "solver")->Register(SolverRegistration()).ok());
  auto bob = Client(*server, "bob");
  absl::Status un = bob->Unregister(kService);
  EXPECT_EQ(un.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(un.message(), HasSubstr("registered by 'CN=solver,O=gasp'"));
  EXPECT_EQ(bob->Register(SolverRegistration()).status().code(),
            absl::StatusCode::kPermissionDenied);
  // Trusted is not owner either.
  EXPECT_EQ(Client(*server, "alice")->Unregister(kService).code(),
            absl::StatusCode::kPermissionDenied);
  absl::StatusOr<std::vector<v1::ServiceSummary>> list = bob->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].owner(), kSolver);
}

// A client without a certificate, with one from another CA (same subject as
// a trusted principal), with an expired one and with one not valid yet
// (both signed by the right CA): every call is refused with UNAUTHENTICATED
// and the reason, before it reaches the service; nothing changes.
TEST_F(NameServerTest, RefusedCertificatesGetUnauthenticatedAndChangeNothing) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(Client(*server, "solver")->Register(SolverRegistration()).ok());

  struct Case {
    const char* who;
    const char* property;  // test.xml property for the Bind message
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {"", "bind_error_no_cert",
       {"client certificate required (set GASP_NS_CERT / GASP_NS_KEY)"}},
      {"mallory", "bind_error_mallory",
       {"client certificate not signed by the name server's CA: ",
        "unable to get local issuer certificate", "subject CN=alice,O=gasp",
        "issuer CN=gasp test CA"}},
      {"expired", "bind_error_expired",
       {"client certificate expired on 2020-01-02 00:00:00 UTC", "subject CN=alice,O=gasp"}},
      {"notyet", "bind_error_notyet",
       {"client certificate not yet valid: valid from 2099-01-01 00:00:00 UTC",
        "subject CN=alice,O=gasp"}},
  };
  auto expect_refused = [](const grpc::Status& st, const Case& c, const char* rpc) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << rpc << ": " << st.error_message();
    for (const std::string& part : c.message) {
      EXPECT_THAT(st.error_message(), HasSubstr(part)) << rpc;
    }
  };
  auto deadline = [] { return absl::ToChronoTime(absl::Now() + absl::Seconds(10)); };

  for (const Case& c : cases) {
    SCOPED_TRACE(*c.who == '\0' ? "no client certificate" : c.who);
    auto stub = v1::NameServer::NewStub(Channel(*server, c.who));
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      v1::BindReply reply;
      grpc::Status st = stub->Bind(&ctx, BindTo(kService), &reply);
      expect_refused(st, c, "Bind");
      EXPECT_EQ(reply.keys_size(), 0);
      EXPECT_TRUE(reply.principal().empty());
      // In test.xml: what the client is told (docs/services.md quotes it).
      RecordProperty(c.property, st.error_message());
    }
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      v1::RegisterReply reply;
      expect_refused(stub->Register(&ctx, SolverRegistration("intruder/Service"), &reply), c,
                     "Register new");
    }
    {
      // Replacing the existing service (the subject is a trusted principal's,
      // not the owner's, but the call must not get that far).
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      v1::RegisterRequest r = SolverRegistration();
      r.set_endpoint("127.0.0.1:6666");
      v1::RegisterReply reply;
      expect_refused(stub->Register(&ctx, r, &reply), c, "Register existing");
    }
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      v1::UnregisterRequest un;
      un.set_service(kService);
      v1::UnregisterReply reply;
      expect_refused(stub->Unregister(&ctx, un, &reply), c, "Unregister");
    }
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      v1::ListReply reply;
      expect_refused(stub->List(&ctx, v1::ListRequest(), &reply), c, "List");
      EXPECT_EQ(reply.services_size(), 0);
    }
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
          stub->Watch(&ctx, v1::WatchRequest());
      v1::WatchEvent ev;
      EXPECT_FALSE(reader->Read(&ev));
      expect_refused(reader->Finish(), c, "Watch");
    }
  }
  // The client library passes the server's code and reason through.
  for (const char* who : {"mallory", "expired", "notyet"}) {
    auto client = Client(*server, who);
    absl::StatusOr<v1::BindReply> b = client->Bind(BindTo(kService));
    EXPECT_EQ(b.status().code(), absl::StatusCode::kUnauthenticated) << b.status();
    EXPECT_THAT(b.status().message(),
                HasSubstr(absl::StrCat("name server ", server->address(), ": client certificate ")))
        << who;
    EXPECT_THAT(b.status().message(), Not(HasSubstr("if the name server is up"))) << who;
    EXPECT_EQ(client->Unregister(kService).code(), absl::StatusCode::kUnauthenticated) << who;
    EXPECT_EQ(client->Register(SolverRegistration("intruder/Service")).status().code(),
              absl::StatusCode::kUnauthenticated)
        << who;
  }
  absl::StatusOr<v1::BindReply> b = Client(*server, "expired")->Bind(BindTo(kService));
  EXPECT_THAT(b.status().message(), HasSubstr("client certificate expired on 2020-01-02"));

  // Nothing was registered, replaced or removed.
  absl::StatusOr<std::vector<v1::ServiceSummary>> list = Client(*server, "alice")->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].service(), kService);
  EXPECT_EQ((*list)[0].owner(), kSolver);
  EXPECT_EQ((*list)[0].endpoint(), "127.0.0.1:7001");

  // A valid client on a new connection after the refusals is served as before.
  absl::StatusOr<v1::BindReply> a = Client(*server, "alice")->Bind(BindTo(kService));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->principal(), kAlice);
  EXPECT_TRUE(a->trusted());
  EXPECT_EQ(a->keys_size(), 2);
}

// A client certificate signed by an intermediate CA, sent with the
// intermediate's certificate: accepted, the principal is its subject. A
// name server whose --ca is the intermediate itself accepts it too (a
// partial chain, as the TLS handshake's own check did), and refuses
// certificates the intermediate did not sign.
TEST_F(NameServerTest, CertificateChainsThroughAnIntermediateCa) {
  {
    auto server = StartTls();
    ASSERT_NE(server, nullptr);
    auto carol = Client(*server, "carol");
    absl::StatusOr<v1::RegisterReply> reg = carol->Register(SolverRegistration("carol/Service"));
    ASSERT_TRUE(reg.ok()) << reg.status();
    EXPECT_EQ(reg->owner(), kCarol);
    absl::StatusOr<v1::BindReply> b = carol->Bind(BindTo("carol/Service"));
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->principal(), kCarol);
    EXPECT_TRUE(b->trusted());
    EXPECT_TRUE(carol->Unregister("carol/Service").ok());
  }
  std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--ca", Cert("inter.crt"),
                                   "--cert", Cert("server.crt"), "--key", Cert("server.key")};
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<v1::BindReply> b = Client(**server, "carol")->Bind(BindTo(kService));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kNotFound) << b.status();
  b = Client(**server, "alice")->Bind(BindTo(kService));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnauthenticated) << b.status();
  EXPECT_THAT(b.status().message(),
              HasSubstr("client certificate not signed by the name server's CA"));
}

// What still fails the handshake is the client refusing the server's
// certificate: UNAVAILABLE, and the client library says what to check.
TEST_F(NameServerTest, ServerCertificateFromAnotherCaIsUnavailableWithAHint) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  ClientOptions o;
  o.address = server->address();
  o.ca_file = Cert("rogue-ca.crt");
  o.cert_file = Cert("alice.crt");
  o.key_file = Cert("alice.key");
  absl::StatusOr<std::unique_ptr<NameServerClient>> c = NameServerClient::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<v1::BindReply> b = (*c)->Bind(BindTo(kService));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable) << b.status();
  EXPECT_THAT(b.status().message(),
              HasSubstr(absl::StrCat("if the name server is up: check that its certificate is "
                                     "signed by ",
                                     Cert("rogue-ca.crt"), " and names the host of ",
                                     server->address())));
}

TEST_F(NameServerTest, RegistrationsSurviveARestart) {
  const std::string state = testing::NewTempDir("state") + "/ns.state";
  {
    auto server = StartTls({"--state", state});
    ASSERT_NE(server, nullptr);
    auto solver = Client(*server, "solver");
    ASSERT_TRUE(solver->Register(SolverRegistration("a/One")).ok());
    ASSERT_TRUE(solver->Register(SolverRegistration("b/Two")).ok());
    ASSERT_TRUE(solver->Unregister("a/One").ok());
    server->Signal(SIGTERM);
    absl::StatusOr<int> status = server->WaitExit(absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  }
  auto server = StartTls({"--state", state});
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::vector<v1::ServiceSummary>> list = Client(*server, "bob")->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].service(), "b/Two");
  EXPECT_EQ((*list)[0].owner(), kSolver);
  // Keys, trust and ownership came back too.
  absl::StatusOr<v1::BindReply> a = Client(*server, "alice")->Bind(BindTo("b/Two"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->keys_size(), 2);
  EXPECT_EQ(Client(*server, "bob")->Unregister("b/Two").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Client(*server, "solver")->Unregister("b/Two").ok());
}

TEST_F(NameServerTest, DamagedStateFileStopsTheStart) {
  const std::string dir = testing::NewTempDir("state");
  // A valid file to damage.
  const std::string good = dir + "/good.state";
  {
    auto server = StartTls({"--state", good});
    ASSERT_NE(server, nullptr);
    ASSERT_TRUE(Client(*server, "solver")->Register(SolverRegistration()).ok());
  }
  const std::string image = ReadFile(good);
  ASSERT_GT(image.size(), 24u);
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  std::string flipped = image;
  flipped[flipped.size() / 2] ^= 0x40;
  std::vector<Case> cases = {
      {"garbage", "this is not a state file at all", "not a gasp_nameserver state file"},
      {"empty", "", "shorter than the 24-byte header"},
      {"truncated", image.substr(0, image.size() - 10), "payload bytes"},
      {"bit flip", flipped, "checksum mismatch"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = dir + "/bad.state";
    WriteFile(path, c.bytes);
    std::vector<std::string> args = TlsArgs();
    args.insert(args.end(), {"--state", path});
    testing::ExitResult r = ServerProcess::Run(args);
    EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1) << r.status;
    EXPECT_THAT(r.stderr_text, HasSubstr("damaged name server state"));
    EXPECT_THAT(r.stderr_text, HasSubstr(c.message));
    EXPECT_THAT(r.stderr_text, HasSubstr(path));
    EXPECT_EQ(ReadFile(path), c.bytes) << "the damaged file must be left alone";
  }
}

TEST_F(NameServerTest, InsecureRefusesNonLoopbackAddresses) {
  for (const char* listen : {"0.0.0.0:0", "[::]:0", "192.0.2.1:5000"}) {
    testing::ExitResult r = ServerProcess::Run({"--insecure", "--listen", listen});
    EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2) << listen << ": " << r.status;
    EXPECT_THAT(r.stderr_text, HasSubstr("--insecure serves only loopback addresses"));
    EXPECT_THAT(r.stderr_text, HasSubstr(absl::StrCat("--listen ", listen)));
  }
  // Without --insecure the PEM files are required.
  testing::ExitResult r = ServerProcess::Run({"--listen", "127.0.0.1:0"});
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2);
  EXPECT_THAT(r.stderr_text, HasSubstr("--ca, --cert and --key are required"));
  // The client refuses insecure mode to a non-loopback address as well.
  ClientOptions o;
  o.address = "192.0.2.1:5000";
  o.insecure = true;
  EXPECT_EQ(NameServerClient::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NameServerTest, InsecureModeTakesThePrincipalFromMetadata) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start({"--insecure", "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  ClientOptions o;
  o.address = (*server)->address();
  o.insecure = true;
  o.principal = "dev-solver";
  absl::StatusOr<std::unique_ptr<NameServerClient>> dev = NameServerClient::Create(o);
  ASSERT_TRUE(dev.ok());
  absl::StatusOr<v1::RegisterReply> reg = (*dev)->Register(SolverRegistration());
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_EQ(reg->owner(), "dev-solver");
  // Without the metadata: UNAUTHENTICATED, and the message says what to send.
  auto stub = v1::NameServer::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::ListReply reply;
  grpc::Status st = stub->List(&ctx, v1::ListRequest(), &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(st.error_message(), HasSubstr("gasp-principal"));
}

TEST_F(NameServerTest, CallsToADeadOrHungNameServerEndWithinTheDeadline) {
  const absl::Duration deadline = absl::Seconds(2);
  // Slack for process scheduling on a loaded 2-core machine.
  const absl::Duration slack = absl::Milliseconds(1500);
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  auto alice = Client(*server, "alice", deadline);
  ASSERT_TRUE(alice->List().ok());

  // Hung (SIGSTOP): the connection is up but nothing answers.
  server->Signal(SIGSTOP);
  absl::Time start = absl::Now();
  absl::StatusOr<v1::BindReply> b = alice->Bind(BindTo(kService));
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(b.status().code(), absl::StatusCode::kDeadlineExceeded) << b.status();
  EXPECT_LT(took, deadline + slack);
  EXPECT_GE(took, deadline - absl::Milliseconds(100));

  // Dead (SIGKILL): the connection is gone.
  server->Signal(SIGKILL);
  server->Signal(SIGCONT);
  ASSERT_TRUE(server->WaitExit(absl::Seconds(10)).ok());
  for (int i = 0; i < 3; ++i) {
    start = absl::Now();
    absl::Status st = alice->Unregister(kService);
    took = absl::Now() - start;
    EXPECT_THAT(st.code(),
                AnyOf(absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded))
        << st;
    EXPECT_LT(took, deadline + slack) << "call " << i;
  }
}

TEST_F(NameServerTest, WatchSeesChangesAndEndsOnShutdown) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  auto solver = Client(*server, "solver");
  ASSERT_TRUE(solver->Register(SolverRegistration("a/One")).ok());

  auto stub = v1::NameServer::NewStub(Channel(*server, "bob"));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
      stub->Watch(&ctx, v1::WatchRequest());
  v1::WatchEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), v1::WatchEvent::REGISTERED);
  EXPECT_EQ(ev.service().service(), "a/One");
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), v1::WatchEvent::SYNCED);

  ASSERT_TRUE(solver->Register(SolverRegistration("b/Two")).ok());
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), v1::WatchEvent::REGISTERED);
  EXPECT_EQ(ev.service().service(), "b/Two");
  EXPECT_EQ(ev.service().owner(), kSolver);
  ASSERT_TRUE(solver->Unregister("a/One").ok());
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), v1::WatchEvent::UNREGISTERED);
  EXPECT_EQ(ev.service().service(), "a/One");

  const absl::Time start = absl::Now();
  server->Signal(SIGTERM);
  EXPECT_FALSE(reader->Read(&ev));
  grpc::Status st = reader->Finish();
  EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  absl::StatusOr<int> status = server->WaitExit(absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ClientOptionsTest, FromSettings) {
  Config config;
  config.timeout = absl::Seconds(7);
  EXPECT_EQ(ClientOptionsFromConfig(config).status().code(),
            absl::StatusCode::kFailedPrecondition);
  config.nameserver = "127.0.0.1:7474";
  absl::StatusOr<ClientOptions> o = ClientOptionsFromConfig(config);
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->insecure);
  EXPECT_EQ(o->deadline, absl::Seconds(7));
  config.ns_ca = "/etc/gasp/ca.pem";
  o = ClientOptionsFromConfig(config);
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(o.status().message(), HasSubstr("GASP_NS_CA, GASP_NS_CERT and GASP_NS_KEY"));
  config.ns_cert = "/etc/gasp/me.pem";
  config.ns_key = "/etc/gasp/me.key";
  o = ClientOptionsFromConfig(config);
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->insecure);
  EXPECT_EQ(o->key_file, "/etc/gasp/me.key");
  // Create reads the files and says which one is missing.
  absl::Status st = NameServerClient::Create(*o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("/etc/gasp/ca.pem"));
}

// Unary call of a method we have no generated stub for, with raw protobuf
// bytes (the health and reflection protos are not installed by Debian).
grpc::Status RawUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& request, std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::CompletionQueue cq;
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1);
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&ctx, method, req, &cq);
  call->StartCall();
  grpc::ByteBuffer resp;
  grpc::Status status;
  call->Finish(&resp, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  if (!cq.Next(&tag, &ok)) return grpc::Status(grpc::StatusCode::INTERNAL, "queue shut down");
  std::vector<grpc::Slice> slices;
  if (status.ok() && resp.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

// The client library's Watch: the current set, SYNCED, changes in order;
// stopping from the callback is OK; the bound is its own.
TEST_F(NameServerTest, ClientWatchFollowsTheRegistry) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  auto solver = Client(*server, "solver");
  auto bob = Client(*server, "bob", /*deadline=*/absl::Seconds(2));
  ASSERT_TRUE(solver->Register(SolverRegistration("a/One")).ok());
  std::vector<std::string> seen;
  absl::Status st = bob->Watch(
      [&](const v1::WatchEvent& ev) {
        seen.push_back(absl::StrCat(v1::WatchEvent::Kind_Name(ev.kind()), " ",
                                    ev.service().service()));
        if (ev.kind() == v1::WatchEvent::SYNCED) {
          EXPECT_TRUE(solver->Register(SolverRegistration("b/Two")).ok());
          EXPECT_TRUE(solver->Unregister("a/One").ok());
        }
        return ev.kind() != v1::WatchEvent::UNREGISTERED;  // stop after the last change
      },
      absl::Now() + absl::Seconds(30));  // longer than the client's 2 s call deadline
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_THAT(seen, ElementsAre("REGISTERED a/One", "SYNCED ", "REGISTERED b/Two",
                                "UNREGISTERED a/One"));
  // Nothing changes: the watch ends at its own bound.
  const absl::Time start = absl::Now();
  st = bob->Watch([](const v1::WatchEvent&) { return true; }, start + absl::Milliseconds(500));
  EXPECT_TRUE(absl::IsDeadlineExceeded(st)) << st;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(NameServerTest, HealthCheckAnswersServing) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  std::string response;
  // HealthCheckRequest{service: ""} is the empty message; the answer
  // HealthCheckResponse{status: SERVING (1)} is field 1, varint 1.
  grpc::Status st = RawUnary(Channel(*server, "bob"), "/grpc.health.v1.Health/Check", "", &response);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(response, std::string("\x08\x01", 2));
  // The health service needs a valid client certificate like everything else.
  for (const std::string who : {"", "mallory", "expired"}) {
    st = RawUnary(Channel(*server, who), "/grpc.health.v1.Health/Check", "", &response);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << who;
    EXPECT_THAT(st.error_message(), HasSubstr("client certificate ")) << who;
  }
}

TEST_F(NameServerTest, ReflectionListsTheService) {
  auto server = StartTls();
  ASSERT_NE(server, nullptr);
  grpc::GenericStub stub(Channel(*server, "bob"));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::CompletionQueue cq;
  void* tag;
  bool ok;
  auto next = [&] { return cq.Next(&tag, &ok) && ok; };
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(next());
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited.
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer req(&slice, 1);
  call->Write(req, reinterpret_cast<void*>(2));
  ASSERT_TRUE(next());
  grpc::ByteBuffer resp;
  call->Read(&resp, reinterpret_cast<void*>(3));
  ASSERT_TRUE(next());
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_THAT(bytes, HasSubstr("gasp.nameserver.v1.NameServer"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  call->WritesDone(reinterpret_cast<void*>(4));
  ASSERT_TRUE(next());
  grpc::Status st;
  call->Finish(&st, reinterpret_cast<void*>(5));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_TRUE(st.ok()) << st.error_message();
}

}  // namespace
}  // namespace nameserver
}  // namespace gasp

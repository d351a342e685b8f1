// service_probe modes whose calls must be refused: bad, nons, tls, creds,
// serve/outsider (two jobs).
// Prints "PASS <mode>" per rank.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "consistency/bundle.h"
#include "consistency/notices.h"
#include "gasp/gasp.h"
#include "nameserver/pem.h"
#include "rpcgen/call_credential.h"
#include "rpcgen/host.h"
#include "rpcgen/ns.h"
#include "gasp/service.h"
#include "base/stats.h"
#include "rpcgen/shipping.grpc.pb.h"
#include "runtime/runtime_internal.h"
#include "tests/probe_expect.h"
#include "tests/service_probe.gasp.h"
#include "tests/service_probe_common.h"

namespace gasp_service_probe {

using gasp::tests::Probe;

int Bad() {
  const int me = gasp::Rank();
  Setup s = Start();
  auto unknown = gasp::rpc::Binding::Bind("gasp.tests.NoSuchService");
  EXPECT((unknown.status()).code() == gasp::StatusCode::kNotFound, "unknown service: %s", Msg(unknown.status()).c_str());
  gasp::Result<Probe::Stub> stub = Probe::Stub::Bind();
  if (!stub.ok()) return 1;
  if (me == 2 || (gasp::Size() == 2 && me == 1)) {
    gasp::tests::FillRequest fr;
    fr.set_value(666);
    fr.mutable_buf()->set_address(0x1000);
    fr.mutable_buf()->set_length(4096);
    auto a = stub->Fill(fr);
    EXPECT((a.status()).code() == gasp::StatusCode::kInvalidArgument, "outside the range: %s", Msg(a.status()).c_str());
    const uint64_t base = gasp::internal::GetConfig().base;
    fr.mutable_buf()->set_address(base + gasp::internal::GetConfig().size_bytes / 4);
    auto b = stub->Fill(fr);
    EXPECT((b.status()).code() == gasp::StatusCode::kInvalidArgument, "unallocated: %s", Msg(b.status()).c_str());
    fr.mutable_buf()->set_address(reinterpret_cast<uint64_t>(s.secret_words));
    fr.mutable_buf()->set_length(512 * 8);
    auto c = stub->Fill(fr);
    EXPECT((c.status()).code() == gasp::StatusCode::kPermissionDenied, "domain not granted: %s", Msg(c.status()).c_str());
    // Around the stub: a hand-made request straight to the home's server,
    // with a truncated bundle, and with a page this rank is not home of.
    auto ns = gasp::rpc::NameServer();
    gasp::nameserver::v1::BindRequest breq;
    breq.set_service(Probe::kServiceName);
    auto bound = (*ns)->Bind(breq);
    EXPECT(bound.ok(), "raw bind");
    if (bound.ok()) {
      auto raw = gasp::rpc::Shipping::NewStub(
          grpc::CreateChannel(bound->endpoint(), grpc::InsecureChannelCredentials()));
      uint64_t* mine = static_cast<uint64_t*>(gasp::Alloc(4096, 4096));
      gasp::rpc::CallRequest req = FillCall(mine, 7);
      gasp::consistency::BundleWriter w;
      std::string page(4096, 'x');
      w.Add((reinterpret_cast<uint64_t>(mine) - base) >> 12, reinterpret_cast<const uint8_t*>(page.data()));
      std::string good = w.Finish();
      req.set_pages(good.substr(0, good.size() - 100));
      // Signed like any call of this job's ranks: the server's own checks
      // are what is tested here, from a rank that holds the job secret.
      gasp::rpc::SignJobCall(bound->home_rank(), &req);
      gasp::rpc::CallReply rep;
      grpc::ClientContext c1;
      grpc::Status t = raw->Call(&c1, req, &rep);
      EXPECT(t.error_code() == grpc::StatusCode::DATA_LOSS, "truncated bundle: %d %s",
             t.error_code(), t.error_message().c_str());
      // A forged page: claims to bring rank 0's secret page.
      gasp::consistency::BundleWriter w2;
      w2.Add((reinterpret_cast<uint64_t>(s.secret_words) - base) >> 12,
             reinterpret_cast<const uint8_t*>(page.data()));
      req.set_pages(w2.Finish());
      gasp::rpc::SignJobCall(bound->home_rank(), &req);
      grpc::ClientContext c2;
      t = raw->Call(&c2, req, &rep);
      EXPECT(t.error_code() == grpc::StatusCode::INVALID_ARGUMENT, "forged page: %d %s",
             t.error_code(), t.error_message().c_str());
      // A request that does not parse.
      req.set_pages("");
      req.set_request("\xff\xff\xff");
      gasp::rpc::SignJobCall(bound->home_rank(), &req);
      grpc::ClientContext c3;
      t = raw->Call(&c3, req, &rep);
      EXPECT(t.error_code() == grpc::StatusCode::INVALID_ARGUMENT, "garbage request: %d %s",
             t.error_code(), t.error_message().c_str());
      // Malformed write notices, on a request of this job (so that they
      // are read): truncated, an origin outside the job, a run past the
      // range's end. Each is refused before the method runs.
      req = FillCall(mine, 7);
      req.set_job_id(gasp::internal::JobId());
      req.set_pages(gasp::consistency::BundleWriter().Finish());  // valid and empty
      const uint64_t num_pages = gasp::internal::GetConfig().size_bytes >> 12;
      const std::vector<uint8_t> ok_notices = gasp::consistency::EncodeCarriedNotices(
          {{me, {{(reinterpret_cast<uint64_t>(mine) - base) >> 12, 1}}, {}}});
      const std::vector<std::vector<uint8_t>> bad_notices = {
          std::vector<uint8_t>(ok_notices.begin(), ok_notices.end() - 3),
          gasp::consistency::EncodeCarriedNotices({{gasp::Size(), {{0, 1}}, {}}}),
          gasp::consistency::EncodeCarriedNotices({{me, {{num_pages - 1, 2}}, {}}}),
      };
      int notices_refused = 0;
      for (const std::vector<uint8_t>& n : bad_notices) {
        req.set_notices(std::string(n.begin(), n.end()));
        gasp::rpc::SignJobCall(bound->home_rank(), &req);
        grpc::ClientContext cn;
        t = raw->Call(&cn, req, &rep);
        EXPECT(t.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
                   t.error_message().find("write notices") != std::string::npos,
               "malformed notices: %d %s", t.error_code(), t.error_message().c_str());
        notices_refused += t.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? 1 : 0;
      }
      // None of the calls above ran Fill: the page still holds zeros.
      gasp::Acquire(mine, 4096);
      EXPECT(mine[0] == 0 && mine[511] == 0, "a refused call ran: %lu %lu",
             (unsigned long)mine[0], (unsigned long)mine[511]);
      std::printf("rank %d: unknown service, 3 bad GlobalRefs, truncated and forged bundles, "
                  "a garbage request and %d malformed notice lists all refused; nothing ran\n",
                  me, notices_refused);
    }
  }
  gasp::Barrier();
  if (me == 0) {
    int intact = 0;
    for (int i = 0; i < 512; ++i) intact += s.secret_words[i] == uint64_t(0x5ec0000 + i) ? 1 : 0;
    EXPECT(intact == 512, "secret words intact: %d/512", intact);
    std::printf("rank 0: the secret domain is intact (%d words)\n", intact);
  }
  return 0;
}

int NoNameServer() {
  const absl::Time t0 = absl::Now();
  auto b = gasp::rpc::Binding::Bind("gasp.tests.Probe");
  const absl::Duration took = absl::Now() - t0;
  EXPECT((b.status()).code() == gasp::StatusCode::kUnavailable || (b.status()).code() == gasp::StatusCode::kDeadlineExceeded,
         "bind without a name server: %s", Msg(b.status()).c_str());
  EXPECT(took <= gasp::internal::GetConfig().timeout + absl::Seconds(1), "took %s",
         absl::FormatDuration(took).c_str());
  std::printf("rank %d: Bind with the name server gone: %s after %s\n", gasp::Rank(),
              gasp::StatusCodeName(b.status().code()),
              absl::FormatDuration(took).c_str());
  return 0;
}

// A TLS channel that presents `identity` (none when empty) and does not
// check the server: what an outsider can build.
std::shared_ptr<grpc::ChannelCredentials> OutsiderCredentials(const std::string& ca,
                                                              const std::string& key,
                                                              const std::string& cert) {
  std::vector<grpc::experimental::IdentityKeyCertPair> id;
  if (!cert.empty()) id.push_back({key, cert});
  auto provider =
      std::make_shared<grpc::experimental::StaticDataCertificateProvider>(ca, std::move(id));
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_certificate_provider(provider);
  o.watch_root_certs();
  if (!cert.empty()) o.watch_identity_key_cert_pairs();
  o.set_verify_server_certs(false);
  o.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  o.set_check_call_host(false);
  return grpc::experimental::TlsCredentials(o);
}

int Tls() {
  const int me = gasp::Rank();
  Start();  // publishes on rank 0
  gasp::Result<Probe::Stub> stub = Probe::Stub::Bind();
  EXPECT(stub.ok(), "bind: %s", Msg(stub.status()).c_str());
  if (!stub.ok()) return 1;
  uint64_t* mine = static_cast<uint64_t*>(gasp::Alloc(4096, 4096));
  if (me == 1) {
    auto tls = gasp::rpc::JobShippingTls();
    EXPECT(tls.ok() && *tls != nullptr, "no shipping TLS: %s",
           tls.ok() ? "settings empty" : Msg(tls.status()).c_str());
    if (!tls.ok() || *tls == nullptr) return 1;
    gasp::tests::WhereRequest w;
    auto f = stub->WhereFunction(w);
    EXPECT(f.ok() && f->rank() == 0, "function shipping over TLS: %s",
           f.ok() ? "ran elsewhere" : Msg(f.status()).c_str());
    if (f.ok()) std::printf("rank 1: WhereFunction shipped to rank %d over mutual TLS\n", f->rank());
    auto ns = gasp::rpc::NameServer();
    gasp::nameserver::v1::BindRequest breq;
    breq.set_service(Probe::kServiceName);
    auto bound = (*ns)->Bind(breq);
    EXPECT(bound.ok(), "raw bind");
    if (!bound.ok()) return 1;
    EXPECT(bound->owner() == (*tls)->subject(), "owner '%s', this rank '%s'",
           bound->owner().c_str(), (*tls)->subject().c_str());
    const gasp::Config& c = gasp::internal::GetConfig();
    auto ca = gasp::nameserver::ReadPemFile("GASP_NS_CA", c.ns_ca);
    const char* rc = std::getenv("PROBE_ROGUE_CERT");
    const char* rk = std::getenv("PROBE_ROGUE_KEY");
    EXPECT(rc != nullptr && rk != nullptr, "PROBE_ROGUE_CERT / PROBE_ROGUE_KEY not set");
    if (!ca.ok() || rc == nullptr || rk == nullptr) return 1;
    auto rogue_cert = gasp::nameserver::ReadPemFile("PROBE_ROGUE_CERT", rc);
    auto rogue_key = gasp::nameserver::ReadPemFile("PROBE_ROGUE_KEY", rk);
    if (!rogue_cert.ok() || !rogue_key.ok()) return 1;
    // A call that would fill rank 1's page with 7s if it ran.
    gasp::rpc::CallRequest req = FillCall(mine, 7);
    req.set_principal(bound->principal());
    // The page of `mine`, as a caller bundles the pages it is home of.
    gasp::consistency::BundleWriter bundle;
    bundle.Add((reinterpret_cast<uint64_t>(mine) - c.base) >> 12,
               reinterpret_cast<const uint8_t*>(mine));
    req.set_pages(bundle.Finish());
    auto send = [&](std::shared_ptr<grpc::ChannelCredentials> creds,
                    const gasp::rpc::CallRequest& r) {
      auto raw = gasp::rpc::Shipping::NewStub(grpc::CreateChannel(bound->endpoint(), creds));
      gasp::rpc::CallReply rep;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      return raw->Call(&ctx, r, &rep);
    };
    auto call = [&](std::shared_ptr<grpc::ChannelCredentials> creds, const std::string& principal) {
      gasp::rpc::CallRequest r = req;
      r.set_principal(principal);
      return send(creds, r);
    };
    grpc::Status t = call(OutsiderCredentials(*ca, "", ""), bound->principal());
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
               t.error_message().find("client certificate required") != std::string::npos,
           "no client certificate: %d %s", t.error_code(), t.error_message().c_str());
    t = call(OutsiderCredentials(*ca, *rogue_key, *rogue_cert), bound->principal());
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
               t.error_message().find("not signed by") != std::string::npos,
           "another CA's certificate: %d %s", t.error_code(), t.error_message().c_str());
    t = call((*tls)->ChannelCredentials(bound->owner()), "CN=mallory,O=gasp");
    EXPECT(t.error_code() == grpc::StatusCode::PERMISSION_DENIED &&
               t.error_message().find("claims principal") != std::string::npos,
           "claimed principal: %d %s", t.error_code(), t.error_message().c_str());
    t = call((*tls)->ChannelCredentials("CN=someone else,O=gasp"), bound->principal());
    EXPECT(t.error_code() == grpc::StatusCode::UNAVAILABLE,
           "a callee that is not the owner: %d %s", t.error_code(), t.error_message().c_str());
    t = call(grpc::InsecureChannelCredentials(), bound->principal());
    EXPECT(t.error_code() == grpc::StatusCode::UNAVAILABLE, "plaintext caller: %d %s",
           t.error_code(), t.error_message().c_str());
    // A certificate of the CA does not make its holder a rank of this job:
    // a call that gives this job's id must carry the job credential too
    // (else another job could pass write notices as one of its ranks).
    gasp::rpc::CallRequest claimed = req;
    claimed.set_job_id(gasp::internal::JobId());
    t = send((*tls)->ChannelCredentials(bound->owner()), claimed);
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
               t.error_message().find("must also carry the job credential") != std::string::npos,
           "this job's id, no credential: %d %s", t.error_code(), t.error_message().c_str());
    const std::vector<uint8_t> other_secret(32, 0x5a);
    gasp::rpc::SignCall(absl::MakeConstSpan(other_secret), bound->home_rank(), 1, &claimed);
    t = send((*tls)->ChannelCredentials(bound->owner()), claimed);
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
               t.error_message().find("does not match this job's secret") != std::string::npos,
           "this job's id, another job's credential: %d %s", t.error_code(),
           t.error_message().c_str());
    int untouched = 0;
    for (int i = 0; i < 512; ++i) untouched += mine[i] == 0 ? 1 : 0;
    EXPECT(untouched == 512, "a refused call ran: %d/512 words untouched", untouched);
    // The same call, properly made, does run (so the check above can fail).
    t = call((*tls)->ChannelCredentials(bound->owner()), bound->principal());
    EXPECT(t.ok(), "the proper raw call: %d %s", t.error_code(), t.error_message().c_str());
    int filled = 0;
    for (int i = 0; i < 512; ++i) filled += mine[i] == 7 ? 1 : 0;
    EXPECT(filled == 512, "the proper call filled %d/512 words", filled);
    std::printf("rank 1: no certificate, another CA, a false principal, a false callee, "
                "plaintext and this job's id without its credential all refused (%d words "
                "untouched); the proper call ran (%d filled)\n",
                untouched, filled);
  }
  gasp::Barrier();
  return 0;
}

// Without mutual TLS every shipped call carries a credential made with the
// job secret. Rank 1 hand-makes calls to rank 0's server: without one,
// with another job's secret, one made for another rank, then the proper
// call (it runs: the refusals are the credential's doing) and the same
// call again (a replay).
int Creds() {
  const int me = gasp::Rank();
  Start();  // publishes on rank 0
  uint64_t* mine = static_cast<uint64_t*>(gasp::Alloc(4096, 4096));
  if (me == 1) {
    auto ns = gasp::rpc::NameServer();
    gasp::nameserver::v1::BindRequest breq;
    breq.set_service(Probe::kServiceName);
    auto bound = (*ns)->Bind(breq);
    EXPECT(bound.ok(), "raw bind");
    if (!bound.ok()) return 1;
    auto raw = gasp::rpc::Shipping::NewStub(
        grpc::CreateChannel(bound->endpoint(), grpc::InsecureChannelCredentials()));
    gasp::rpc::CallRequest req = FillCall(mine, 7);
    // The page of `mine`, as a caller bundles the pages it is home of.
    gasp::consistency::BundleWriter bundle;
    bundle.Add((reinterpret_cast<uint64_t>(mine) - gasp::internal::GetConfig().base) >> 12,
               reinterpret_cast<const uint8_t*>(mine));
    req.set_pages(bundle.Finish());
    const auto call = [&](const gasp::rpc::CallRequest& r) {
      gasp::rpc::CallReply rep;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      return raw->Call(&ctx, r, &rep);
    };
    const auto untouched = [&] {
      int n = 0;
      for (int i = 0; i < 512; ++i) n += mine[i] == 0 ? 1 : 0;
      return n;
    };
    grpc::Status t = call(req);
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
               t.error_message().find("GASP_NS_CA") != std::string::npos,
           "no credential: %d %s", t.error_code(), t.error_message().c_str());
    gasp::rpc::CallRequest other = req;
    const std::string other_secret(32, 'o');
    gasp::rpc::SignCall(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(other_secret.data()),
                                            other_secret.size()),
                        0, 1, &other);
    t = call(other);
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
               t.error_message().find("does not match this job's secret") != std::string::npos,
           "another job's secret: %d %s", t.error_code(), t.error_message().c_str());
    gasp::rpc::CallRequest elsewhere = req;
    gasp::rpc::SignJobCall(2, &elsewhere);  // made for rank 2
    t = call(elsewhere);
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED,
           "a call made for rank 2: %d %s", t.error_code(), t.error_message().c_str());
    const int before = untouched();
    EXPECT(before == 512, "a refused call ran: %d/512 words untouched", before);
    gasp::rpc::CallRequest proper = req;
    gasp::rpc::SignJobCall(bound->home_rank(), &proper);
    t = call(proper);
    EXPECT(t.ok(), "the proper call: %d %s", t.error_code(), t.error_message().c_str());
    const int filled = 512 - untouched();
    EXPECT(filled == 512, "the proper call filled %d/512 words", filled);
    for (int i = 0; i < 512; ++i) mine[i] = 0;
    t = call(proper);
    EXPECT(t.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
               t.error_message().find("replayed") != std::string::npos,
           "the replayed call: %d %s", t.error_code(), t.error_message().c_str());
    const int after = untouched();
    EXPECT(after == 512, "the replayed call ran: %d/512 words untouched", after);
    std::printf("rank 1: no credential, another job's secret, a call made for rank 2 and a "
                "replay all refused UNAUTHENTICATED (%d and %d words untouched); the proper "
                "call ran (%d filled)\n",
                before, after, filled);
  }
  gasp::Barrier();
  if (me == 0) {
    const uint64_t refused = gasp::StatGet(gasp::Counter::kRpcsRefused);
    EXPECT(refused == 4, "rank 0 counted %lu refused calls, expected 4", (unsigned long)refused);
    std::printf("rank 0: rpcs_refused=%lu\n", (unsigned long)refused);
  }
  return 0;
}

// Two jobs on one name server: `serve` (job A) publishes on its rank 0 and
// waits for PROBE_DONE_FILE; `outsider` (job B) binds A's service and
// calls it. Without mutual TLS, job B's calls carry job B's secret: A
// refuses them and runs nothing.
int Serve() {
  const int me = gasp::Rank();
  Setup s = Start();
  const char* done = std::getenv("PROBE_DONE_FILE");
  EXPECT(done != nullptr, "PROBE_DONE_FILE not set");
  if (done == nullptr) return 1;
  if (me == 0) {
    std::printf("rank 0: serving\n");
    std::fflush(stdout);
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (access(done, F_OK) != 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
    const uint64_t refused = gasp::StatGet(gasp::Counter::kRpcsRefused);
    int intact = 0;
    for (int i = 0; i < 512; ++i) intact += s.secret_words[i] == uint64_t(0x5ec0000 + i) ? 1 : 0;
    EXPECT(refused >= 2, "job A refused %lu calls of job B", (unsigned long)refused);
    EXPECT(intact == 512, "secret words intact: %d/512", intact);
    std::printf("rank 0: refused %lu calls from another job; data intact (%d words)\n",
                (unsigned long)refused, intact);
  }
  gasp::Barrier();
  return 0;
}

int Outsider() {
  gasp::Result<Probe::Stub> stub = Probe::Stub::Bind();
  EXPECT(stub.ok(), "bind across jobs: %s", Msg(stub.status()).c_str());
  if (!stub.ok()) return 1;
  gasp::tests::WhereRequest w;
  auto f = stub->WhereFunction(w);
  EXPECT((f.status()).code() == gasp::StatusCode::kUnauthenticated, "WhereFunction from another job: %s",
         f.ok() ? "ran" : Msg(f.status()).c_str());
  uint64_t* mine = static_cast<uint64_t*>(gasp::Alloc(4096, 4096));
  gasp::tests::FillRequest fr;
  fr.mutable_buf()->set_address(reinterpret_cast<uint64_t>(mine));
  fr.mutable_buf()->set_length(4096);
  fr.set_value(9);
  auto g = stub->Fill(fr);
  EXPECT((g.status()).code() == gasp::StatusCode::kUnauthenticated, "Fill from another job: %s",
         g.ok() ? "ran" : Msg(g.status()).c_str());
  std::printf("rank %d of another job: WhereFunction and Fill refused: %s\n", gasp::Rank(),
              gasp::StatusCodeName(f.status().code()));
  return 0;
}

}  // namespace gasp_service_probe

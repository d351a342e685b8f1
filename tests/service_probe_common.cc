// The Probe service and the pieces every service_probe mode shares.
#include "tests/service_probe_common.h"

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

std::string Msg(const absl::Status& s) { return std::string(s.message()); }
std::string Msg(const gasp::Status& s) { return s.message(); }

uint8_t* g_churn = nullptr;

void ChangeSomething(uint8_t* buf, uint64_t pages, Rng* rng) {
  uint8_t* page = buf + rng->Below(pages) * 4096;
  switch (rng->Below(8)) {
    case 0:  // rewritten: a diff would not be smaller
      for (int i = 0; i < 4096; ++i) page[i] = static_cast<uint8_t>(rng->Next());
      break;
    case 1:  // zeros
      std::memset(page, 0, 4096);
      break;
    case 2: {  // a run
      const uint64_t at = rng->Below(4096), n = 1 + rng->Below(300);
      for (uint64_t i = at; i < std::min<uint64_t>(4096, at + n); ++i) page[i] ^= 0x5a;
      break;
    }
    default:  // a few bytes here and there, as a counter in each node
      for (uint64_t k = 1 + rng->Below(40); k > 0; --k) page[rng->Below(4096)] += 1;
  }
}

class ProbeImpl : public Probe::Service {
 public:
  explicit ProbeImpl(uint64_t root) : state_(reinterpret_cast<State*>(root)) {}
  gasp::Status WhereData(const gasp::tests::WhereRequest&, gasp::tests::WhereReply* r) override {
    r->set_rank(gasp::Rank());
    (void)state_->calls;  // reads the service's domain
    return gasp::OkStatus();
  }
  gasp::Status WhereFunction(const gasp::tests::WhereRequest&, gasp::tests::WhereReply* r) override {
    r->set_rank(gasp::Rank());
    return gasp::OkStatus();
  }
  gasp::Status Fill(const gasp::tests::FillRequest& q, gasp::tests::FillReply* r) override {
    uint64_t* w = reinterpret_cast<uint64_t*>(q.buf().address());
    for (uint64_t i = 0; i < q.buf().length() / 8; ++i) w[i] = q.value();
    r->set_rank(gasp::Rank());
    return gasp::OkStatus();
  }
  gasp::Status Echo(const gasp::tests::EchoRequest& q, gasp::tests::EchoReply* r) override {
    r->set_data(std::string(reinterpret_cast<const char*>(q.buf().address()), q.buf().length()));
    return gasp::OkStatus();
  }
  gasp::Status Relay(const gasp::tests::RelayRequest& q, gasp::tests::RelayReply*) override {
    gasp::GlobalLock lock(reinterpret_cast<uint64_t*>(q.lock_word()));
    if (q.lock_word() != 0) lock.lock();
    if (q.remote_address() != 0) *reinterpret_cast<uint64_t*>(q.remote_address()) = q.value();
    if (q.flag_address() != 0) *reinterpret_cast<uint64_t*>(q.flag_address()) = 1;
    if (q.lock_word() != 0) lock.unlock();
    return gasp::OkStatus();
  }
  gasp::Status Churn(const gasp::tests::ChurnRequest& q, gasp::tests::ChurnReply* r) override {
    if (q.forget_length() > 0) {
      const uint8_t* p = reinterpret_cast<const uint8_t*>(q.forget_address());
      gasp::Acquire(p, q.forget_length());  // this rank's copies are gone
      if (q.touch()) {  // and fetched again, as the home has them now
        uint64_t sum = 0;
        for (uint64_t i = 0; i < q.forget_length(); i += 4096) sum += p[i];
        (void)*static_cast<volatile uint64_t*>(&sum);
      }
    }
    if (g_churn == nullptr || q.region() >= static_cast<uint32_t>(gasp::Size())) {
      return gasp::Status(gasp::StatusCode::kInvalidArgument, "no such region");
    }
    uint8_t* region = g_churn + q.region() * kChurnPages * 4096;
    Rng rng{q.seed()};
    for (uint32_t i = 0; i < q.changes(); ++i) ChangeSomething(region, kChurnPages, &rng);
    r->mutable_buf()->set_address(reinterpret_cast<uint64_t>(region));
    r->mutable_buf()->set_length(kChurnPages * 4096);
    r->set_data(std::string(reinterpret_cast<const char*>(region), kChurnPages * 4096));
    return gasp::OkStatus();
  }
  gasp::Status Sum(const gasp::tests::SumRequest& q, gasp::tests::SumReply* r) override {
    const uint64_t* w = reinterpret_cast<const uint64_t*>(q.buf().address());
    uint64_t s = 0;
    for (uint64_t i = 0; i < q.buf().length() / 8; ++i) s += w[i];
    r->set_sum(s);
    r->set_rank(gasp::Rank());
    return gasp::OkStatus();
  }

 private:
  State* state_;
};

GASP_SERVICE_IMPL(Probe, ProbeImpl);

Setup Start() {
  const int me = gasp::Rank();
  Setup s;
  s.domain = gasp::CoNewDomain("probe");
  s.state = gasp::CoNewArray<State>(1, gasp::Placement::OnRank(0), s.domain);
  s.secret = gasp::CoNewDomain("secret");
  s.secret_words = gasp::CoNewArray<uint64_t>(512, gasp::Placement::OnRank(0), s.secret);
  gasp::CoGrant(s.domain, 0, gasp::Access::kReadWrite);
  gasp::CoGrant(s.secret, 0, gasp::Access::kReadWrite);
  gasp::CoGrant(s.domain, 1, gasp::Access::kRead);
  if (gasp::Size() > 2) {
    gasp::CoGrant(s.domain, 2, gasp::Access::kRead, gasp::Trust::kUntrusted);
  }
  if (me == 0) {
    for (int i = 0; i < 512; ++i) s.secret_words[i] = 0x5ec0000 + i;
    gasp::rpc::PublishOptions po;
    po.domain = s.domain;
    po.trusted_principals.push_back(gasp::rpc::DevPrincipal(1));
    gasp::Status st = gasp::rpc::Publish<ProbeImpl>(reinterpret_cast<uint64_t>(s.state), po);
    EXPECT(st.ok(), "publish: %s", Msg(st).c_str());
  }
  gasp::Barrier();
  return s;
}

// Where the bytes differ: "" if nowhere, else the first offset and how many.
std::string Mismatch(const uint8_t* seen, const uint8_t* want, uint64_t n) {
  uint64_t first = n, count = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (seen[i] != want[i]) {
      if (first == n) first = i;
      ++count;
    }
  }
  if (count == 0) return "";
  return absl::StrCat(count, " bytes differ, the first at offset ", first, " (page ", first / 4096,
                      ")");
}

// A hand-made Shipping request for Probe.Fill of the page at `page` with
// `value`, from this rank (no page bundle yet).
gasp::rpc::CallRequest FillCall(uint64_t* page, uint64_t value) {
  gasp::rpc::CallRequest req;
  req.set_service(Probe::kServiceName);
  req.set_method("Fill");
  gasp::tests::FillRequest fill;
  fill.mutable_buf()->set_address(reinterpret_cast<uint64_t>(page));
  fill.mutable_buf()->set_length(4096);
  fill.set_value(value);
  fill.SerializeToString(req.mutable_request());
  req.set_caller_rank(gasp::Rank());
  return req;
}

}  // namespace gasp_service_probe

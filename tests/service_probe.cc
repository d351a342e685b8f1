// Services end to end under gasprun -np 3 (tests/services_test.sh):
// rank 0 publishes Probe (state in its own domain), rank 1 is a trusted
// client, rank 2 an untrusted one (granted read through gates only).
//
//   service_probe paths    which rank runs each call, per path
//   service_probe refs     call by reference: results written through a
//                          GlobalRef, pages bundled both ways, AUTO
//   service_probe ship     a structure shipped by reference again and
//                          again with random changes (pages changed, left
//                          alone, zeroed, rewritten; copies dropped or made
//                          stale at the receiver in between), both ways:
//                          every byte the receiver sees is checked against
//                          the sender's, and diffs, fallbacks and refused
//                          diffs must all have happened
//   service_probe bad      unknown service, GlobalRefs outside the range /
//                          unallocated / into a domain not granted, a
//                          truncated and a forged page bundle, malformed
//                          write notices: each refused with its code, and
//                          nothing ran or changed
//   service_probe nons     (GASP_NAMESERVER points at nothing) Bind fails
//                          with UNAVAILABLE within the deadline
//   service_probe tls      (mutual TLS: GASP_NS_CA/CERT/KEY set, and
//                          PROBE_ROGUE_CERT/KEY a certificate of another CA)
//                          function shipping works over TLS; raw calls with
//                          no client certificate, one of another CA, or a
//                          claimed principal that is not the certificate's
//                          are refused, as are a callee that is not the
//                          owner and a plaintext caller; none of them ran
//   service_probe notices  (3 ranks) write notices carried by calls: the
//                          caller's writes reach a third rank through a
//                          lock the callee frees, the callee's reach the
//                          caller's next acquire, and notices too many for
//                          a call go to the notice log
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

namespace {

using gasp::tests::Probe;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }
std::string Msg(const gasp::Status& s) { return s.message(); }

struct State {
  uint64_t calls;
};

// "ship": a buffer homed at rank 0, one region of kChurnPages per rank,
// that Churn changes and returns by reference (the same address on every
// rank: a collective allocation).
constexpr uint64_t kChurnPages = 8;
uint8_t* g_churn = nullptr;

// A small deterministic generator (the same stream wherever it runs).
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

// One random change to `pages` pages at `buf`: a few bytes, a run, a whole
// page rewritten, or a page of zeros.
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

struct Setup {
  gasp::Domain domain;
  gasp::Domain secret;
  State* state = nullptr;
  uint64_t* secret_words = nullptr;
};

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

int Paths() {
  const int me = gasp::Rank();
  Start();  // publishes on rank 0
  gasp::Result<Probe::Stub> stub = Probe::Stub::Bind();
  EXPECT(stub.ok(), "bind: %s", Msg(stub.status()).c_str());
  if (!stub.ok()) return 1;
  gasp::tests::WhereRequest w;
  auto d = stub->WhereData(w);
  auto f = stub->WhereFunction(w);
  EXPECT(d.ok() && f.ok(), "calls: %s / %s", Msg(d.status()).c_str(), Msg(f.status()).c_str());
  if (!d.ok() || !f.ok()) return 1;
  const gasp::rpc::CallStats st = stub->binding().stats();
  if (me == 0) {
    EXPECT(d->rank() == 0 && f->rank() == 0, "home: ran on %d / %d", d->rank(), f->rank());
    EXPECT(st.calls[0] == 2, "home: both calls direct (%lu)", (unsigned long)st.calls[0]);
  } else {
    EXPECT(d->rank() == me, "data shipping ran on rank %d, not here", d->rank());
    EXPECT(f->rank() == 0, "function shipping ran on rank %d, not the home", f->rank());
    EXPECT(st.calls[2] == 1 && st.calls[3] == 1, "paths: %lu data, %lu function",
           (unsigned long)st.calls[2], (unsigned long)st.calls[3]);
  }
  std::printf("rank %d: WhereData ran on rank %d, WhereFunction on rank %d (%s client)\n", me,
              d->rank(), f->rank(), me == 0 ? "home" : me == 1 ? "trusted" : "untrusted");
  gasp::Barrier();
  return 0;
}

int Refs() {
  const int me = gasp::Rank();
  Start();  // publishes on rank 0
  gasp::Result<Probe::Stub> stub = Probe::Stub::Bind();
  if (!stub.ok()) return 1;
  if (me != 0) {
    constexpr uint64_t kPages = 16;
    uint64_t* buf = static_cast<uint64_t*>(gasp::Alloc(kPages * 4096, 4096));
    for (uint64_t i = 0; i < kPages * 512; ++i) buf[i] = i;
    gasp::tests::FillRequest fr;
    fr.mutable_buf()->set_address(reinterpret_cast<uint64_t>(buf));
    fr.mutable_buf()->set_length(kPages * 4096);
    fr.set_value(1000 + me);
    const uint64_t before = stub->binding().stats().pages_bundled;
    auto r = stub->Fill(fr);
    EXPECT(r.ok() && r->rank() == 0, "Fill: %s", Msg(r.status()).c_str());
    uint64_t right = 0;
    for (uint64_t i = 0; i < kPages * 512; ++i) right += buf[i] == uint64_t(1000 + me) ? 1 : 0;
    EXPECT(right == kPages * 512, "the callee's writes through the reference: %lu/%lu seen",
           (unsigned long)right, (unsigned long)(kPages * 512));
    const uint64_t bundled = stub->binding().stats().pages_bundled - before;
    EXPECT(bundled == kPages, "%lu pages bundled with the request, expected %lu",
           (unsigned long)bundled, (unsigned long)kPages);
    // AUTO on the same buffer: resident here, so it runs here.
    gasp::tests::SumRequest sr;
    *sr.mutable_buf() = fr.buf();
    auto sum = stub->Sum(sr);
    EXPECT(sum.ok() && sum->sum() == uint64_t(1000 + me) * kPages * 512, "Sum: %s",
           Msg(sum.status()).c_str());
    std::printf("rank %d: Fill wrote %lu words through a reference at rank 0 (%lu pages "
                "bundled), Sum (AUTO) ran on rank %d\n",
                me, (unsigned long)right, (unsigned long)bundled, sum.ok() ? sum->rank() : -1);
    // Shipped again unchanged (hashes only), then changed: the home's
    // answers follow the data exactly.
    stub->binding().ForcePath(gasp::rpc::Path::kFunctionShipping);
    uint64_t want = uint64_t(1000 + me) * kPages * 512;
    for (int round = 0; round < 4; ++round) {
      const uint64_t full0 = gasp::StatGet(gasp::Counter::kPagesBundled);
      const uint64_t diffs0 = gasp::StatGet(gasp::Counter::kPagesBundledAsDiffs);
      auto again = stub->Sum(sr);
      const uint64_t full = gasp::StatGet(gasp::Counter::kPagesBundled) - full0;
      EXPECT(again.ok() && again->sum() == want && again->rank() == 0,
             "round %d: Sum at the home %lu, expected %lu", round,
             again.ok() ? (unsigned long)again->sum() : 0ul, (unsigned long)want);
      // Round 0 sends every page as a diff against what Fill shipped (the
      // home's copies already hold those changes: it made them), round 1
      // nothing, round 2 the one changed page as a diff, round 3 nothing;
      // no page goes in full.
      const uint64_t expect_diffs[] = {kPages, 0, 1, 0};
      const uint64_t diffs = gasp::StatGet(gasp::Counter::kPagesBundledAsDiffs) - diffs0;
      EXPECT(full == 0 && diffs == expect_diffs[round],
             "round %d: %lu pages sent in full and %lu as diffs, expected 0 and %lu", round,
             (unsigned long)full, (unsigned long)diffs, (unsigned long)expect_diffs[round]);
      if (round == 1) {
        buf[5 * 512 + 3] += 7;  // one page changes
        want += 7;
      }
    }
    stub->binding().ClearForcedPath();
  }
  gasp::Barrier();
  if (me == 0) {
    // The diffs of round 0 found copies here that already had the changes
    // (this rank made them): kept, none dropped and fetched again.
    const uint64_t dropped = gasp::StatGet(gasp::Counter::kShippedDiffsDropped);
    EXPECT(dropped == 0, "%lu diffs did not apply at the home", (unsigned long)dropped);
  }
  return 0;
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

int Ship() {
  const int me = gasp::Rank();
  Start();  // publishes on rank 0
  g_churn = gasp::CoNewArray<uint8_t>(kChurnPages * 4096 * gasp::Size(),
                                      gasp::Placement::OnRank(0));
  EXPECT(reinterpret_cast<uint64_t>(g_churn) % 4096 == 0, "the regions start on a page");
  gasp::Barrier();
  gasp::Result<Probe::Stub> stub = Probe::Stub::Bind();
  if (!stub.ok()) return 1;
  if (me != 0) {
    constexpr uint64_t kPages = 40;
    constexpr int kRounds = 30;
    uint8_t* mine = static_cast<uint8_t*>(gasp::Alloc(kPages * 4096, 4096));
    Rng rng{0x5eed0000u + static_cast<uint64_t>(me)};
    for (uint64_t i = 0; i < kPages * 4096; ++i) mine[i] = static_cast<uint8_t>(rng.Next() >> 7);
    uint8_t* theirs = g_churn + me * kChurnPages * 4096;  // homed at rank 0
    const uint64_t full0 = gasp::StatGet(gasp::Counter::kPagesBundled);
    const uint64_t diffs0 = gasp::StatGet(gasp::Counter::kPagesBundledAsDiffs);
    const uint64_t dropped0 = gasp::StatGet(gasp::Counter::kShippedDiffsDropped);
    int echoes_right = 0, churns_right = 0;
    for (int round = 0; round < kRounds; ++round) {
      const std::string shipped(reinterpret_cast<const char*>(mine), kPages * 4096);
      // Some pages change (a few bytes, runs, rewritten, zeroed), most do
      // not; round 0 ships everything for the first time.
      if (round > 0) {
        for (uint64_t k = rng.Below(12); k > 0; --k) ChangeSomething(mine, kPages, &rng);
      }
      gasp::tests::ChurnRequest cq;
      cq.set_region(static_cast<uint32_t>(me));
      if (round % 3 == 2) {
        // Every third round the callee loses its copies of some pages
        // first: dropped, or read again from here (then they hold this
        // round's changes, not what was shipped last). Then some of those
        // pages are put back as shipped (half the time) and change again,
        // so their diffs find the callee's copy gone, or a copy that is
        // not the one they were made against and that patching would get
        // wrong (bytes changed and changed back are in no run).
        const uint64_t first = rng.Below(kPages), n = 1 + rng.Below(kPages - first);
        gasp::tests::ChurnRequest forget = cq;
        forget.set_forget_address(reinterpret_cast<uint64_t>(mine + first * 4096));
        forget.set_forget_length(n * 4096);
        forget.set_touch(rng.Below(2) == 0);
        auto f = stub->Churn(forget);
        EXPECT(f.ok(), "round %d: forget: %s", round, Msg(f.status()).c_str());
        if (rng.Below(2) == 0) std::memcpy(mine + first * 4096, &shipped[first * 4096], n * 4096);
        for (uint64_t k = 1 + rng.Below(4); k > 0; --k) {
          ChangeSomething(mine + first * 4096, n, &rng);
        }
      }
      // Request direction: the callee echoes what it sees of `mine`.
      gasp::tests::EchoRequest eq;
      eq.mutable_buf()->set_address(reinterpret_cast<uint64_t>(mine));
      eq.mutable_buf()->set_length(kPages * 4096);
      auto e = stub->Echo(eq);
      EXPECT(e.ok() && e->data().size() == kPages * 4096, "round %d: Echo: %s", round,
             Msg(e.status()).c_str());
      if (e.ok() && e->data().size() == kPages * 4096) {
        const std::string wrong =
            Mismatch(reinterpret_cast<const uint8_t*>(e->data().data()), mine, kPages * 4096);
        EXPECT(wrong.empty(), "round %d: the callee sees other bytes: %s", round, wrong.c_str());
        echoes_right += wrong.empty();
      }
      // Reply direction: the callee changes its region and returns it by
      // reference; what this rank reads there must be what it holds.
      cq.set_seed(rng.Next());
      cq.set_changes(static_cast<uint32_t>(round == 0 ? 0 : rng.Below(6)));
      auto c = stub->Churn(cq);
      EXPECT(c.ok() && c->data().size() == kChurnPages * 4096 &&
                 c->buf().address() == reinterpret_cast<uint64_t>(theirs),
             "round %d: Churn: %s", round, Msg(c.status()).c_str());
      if (c.ok() && c->data().size() == kChurnPages * 4096) {
        const std::string wrong = Mismatch(
            theirs, reinterpret_cast<const uint8_t*>(c->data().data()), kChurnPages * 4096);
        EXPECT(wrong.empty(), "round %d: the reply's pages read here differ: %s", round,
               wrong.c_str());
        churns_right += wrong.empty();
      }
      // Sometimes this rank drops some of its copies of the callee's pages.
      if (round % 4 == 1) gasp::Acquire(theirs + rng.Below(kChurnPages) * 4096, 4096);
    }
    const uint64_t full = gasp::StatGet(gasp::Counter::kPagesBundled) - full0;
    const uint64_t diffs = gasp::StatGet(gasp::Counter::kPagesBundledAsDiffs) - diffs0;
    const uint64_t dropped = gasp::StatGet(gasp::Counter::kShippedDiffsDropped) - dropped0;
    EXPECT(full > kPages && diffs > 0, "pages sent: %lu in full, %lu as diffs",
           (unsigned long)full, (unsigned long)diffs);
    std::printf("rank %d: %d/%d echoes and %d/%d churned regions right, every byte; sent %lu "
                "pages in full and %lu as diffs; %lu diffs received did not apply\n",
                me, echoes_right, kRounds, churns_right, kRounds, (unsigned long)full,
                (unsigned long)diffs, (unsigned long)dropped);
  }
  gasp::Barrier();
  if (me == 0) {
    const uint64_t diffs = gasp::StatGet(gasp::Counter::kPagesBundledAsDiffs);
    const uint64_t dropped = gasp::StatGet(gasp::Counter::kShippedDiffsDropped);
    EXPECT(diffs > 0 && dropped > 0, "rank 0 sent %lu diffs, refused %lu", (unsigned long)diffs,
           (unsigned long)dropped);
    std::printf("rank 0: sent %lu pages as diffs; %lu diffs received did not apply (copy gone "
                "or not the one shipped): dropped and fetched from the home instead\n",
                (unsigned long)diffs, (unsigned long)dropped);
  }
  return 0;
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

// Write notices carried by calls (docs/protocol.md, "Notices carried by
// calls"), 3 ranks, rank 1 calling rank 0: (a) what the caller wrote
// outside the call's references reaches rank 2 through a lock the callee
// takes and frees in the method; (b) what the callee wrote outside them
// reaches the caller's next acquire; (c) more runs than a call carries go
// to the notice log instead.
int Notices() {
  const int me = gasp::Rank();
  Start();
  constexpr uint64_t kWords = 512;
  uint64_t* p = gasp::CoNewArray<uint64_t>(kWords, gasp::Placement::OnRank(1));
  uint64_t* q = gasp::CoNewArray<uint64_t>(2 * kWords, gasp::Placement::OnRank(2));
  uint64_t* flag = gasp::CoNewArray<uint64_t>(kWords, gasp::Placement::OnRank(0));
  constexpr uint64_t kWidePages = 2 * 1024 + 100;  // every other page: over 1024 runs
  uint8_t* wide = gasp::CoNewArray<uint8_t>(kWidePages * 4096, gasp::Placement::OnRank(1));
  gasp::GlobalLock lock = gasp::CoNewLock();
  gasp::Barrier();
  // Copies that go stale: rank 2 caches p, rank 1 caches both pages of q.
  volatile uint64_t sink = 0;
  if (me == 2) sink = sink + p[0];
  if (me == 1) sink = sink + q[0] + q[kWords];
  gasp::Barrier();
  gasp::Result<Probe::Stub> stub = Probe::Stub::Bind();
  if (!stub.ok()) return 1;
  if (me == 1) {
    for (uint64_t i = 0; i < kWords; ++i) p[i] = 42;
    const uint64_t carried0 = gasp::StatGet(gasp::Counter::kNoticesCarried);
    const uint64_t sent0 = gasp::StatGet(gasp::Counter::kNoticesSent);
    gasp::tests::RelayRequest a;
    a.set_lock_word(reinterpret_cast<uint64_t>(lock.word()));
    a.set_remote_address(reinterpret_cast<uint64_t>(q));
    a.set_value(77);
    a.set_flag_address(reinterpret_cast<uint64_t>(flag));
    auto ra = stub->Relay(a);
    EXPECT(ra.ok(), "Relay under the lock: %s", Msg(ra.status()).c_str());
    const uint64_t carried = gasp::StatGet(gasp::Counter::kNoticesCarried) - carried0;
    const uint64_t sent = gasp::StatGet(gasp::Counter::kNoticesSent) - sent0;
    EXPECT(carried >= 1 && sent == 0, "the call carried %lu pages of notices and published %lu",
           (unsigned long)carried, (unsigned long)sent);
    // (b) The second page of q, written by the callee without a lock: its
    // notice can only come back with the reply.
    gasp::tests::RelayRequest b;
    b.set_remote_address(reinterpret_cast<uint64_t>(q + kWords));
    b.set_value(78);
    auto rb = stub->Relay(b);
    EXPECT(rb.ok(), "Relay without a lock: %s", Msg(rb.status()).c_str());
    gasp::Acquire();
    const uint64_t q0 = q[0], q1 = q[kWords];
    EXPECT(q0 == 77 && q1 == 78, "after the calls and an acquire rank 1 reads %lu and %lu, "
           "expected 77 and 78", (unsigned long)q0, (unsigned long)q1);
    // (c) Too many runs for a call.
    for (uint64_t k = 0; k < kWidePages; k += 2) wide[k * 4096] = 1;
    const uint64_t carried1 = gasp::StatGet(gasp::Counter::kNoticesCarried);
    const uint64_t sent1 = gasp::StatGet(gasp::Counter::kNoticesSent);
    auto rc = stub->Relay(gasp::tests::RelayRequest());
    EXPECT(rc.ok(), "Relay of nothing: %s", Msg(rc.status()).c_str());
    const uint64_t wide_carried = gasp::StatGet(gasp::Counter::kNoticesCarried) - carried1;
    const uint64_t wide_sent = gasp::StatGet(gasp::Counter::kNoticesSent) - sent1;
    EXPECT(wide_carried == 0 && wide_sent >= kWidePages / 2,
           "%lu written pages in %lu runs: %lu carried, %lu published", (unsigned long)kWidePages / 2,
           (unsigned long)kWidePages / 2, (unsigned long)wide_carried, (unsigned long)wide_sent);
    std::printf("rank 1: the call carried %lu pages of notices and published none; the callee's "
                "writes read after an acquire (%lu, %lu); %lu pages in %lu runs went to the log "
                "instead\n",
                (unsigned long)carried, (unsigned long)q0, (unsigned long)q1,
                (unsigned long)wide_sent, (unsigned long)kWidePages / 2);
  }
  if (me == 2) {
    // (a) Wait for the callee's flag under the lock, then read p.
    uint64_t f = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (f == 0 && std::chrono::steady_clock::now() < deadline) {
      lock.lock();
      f = flag[0];
      lock.unlock();
      if (f == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT(f == 1, "the callee's flag never came");
    uint64_t right = 0;
    for (uint64_t i = 0; i < kWords; ++i) right += p[i] == 42 ? 1 : 0;
    EXPECT(right == kWords, "rank 2 read %lu/%lu words of the caller's writes after the "
           "callee's lock", (unsigned long)right, (unsigned long)kWords);
    std::printf("rank 2: the caller's writes read through the callee's lock: %lu/%lu words\n",
                (unsigned long)right, (unsigned long)kWords);
  }
  gasp::Barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", Msg(rt.status()).c_str());
    return 1;
  }
  const std::string mode = argc > 1 ? argv[1] : "";
  int rc = 2;
  if (mode == "paths") rc = Paths();
  if (mode == "refs") rc = Refs();
  if (mode == "bad") rc = Bad();
  if (mode == "ship") rc = Ship();
  if (mode == "nons") rc = NoNameServer();
  if (mode == "tls") rc = Tls();
  if (mode == "creds") rc = Creds();
  if (mode == "serve") rc = Serve();
  if (mode == "outsider") rc = Outsider();
  if (mode == "notices") rc = Notices();
  if (rc == 2) {
    std::fprintf(stderr,
                 "usage: service_probe paths|refs|ship|bad|nons|tls|creds|serve|outsider|notices\n");
  }
  gasp::Barrier();
  const int fin = rt->Finalize();
  if (rc != 0 || gasp::tests::ProbeFailures() != 0 || fin != 0) return 1;
  std::printf("PASS %s\n", mode.c_str());
  return 0;
}

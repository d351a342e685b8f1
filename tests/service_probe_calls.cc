// service_probe modes whose calls must work: paths, refs, ship, notices.
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

}  // namespace gasp_service_probe

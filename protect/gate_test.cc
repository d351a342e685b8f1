// Call gates: binding checks, enter/leave on every return path, nesting,
// concurrency. Both backends.
#include "protect/gate.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "protect/protect_test_util.h"

namespace gasp {
namespace protect {
namespace {

using testing::BackendTest;
using testing::Faults;
using testing::Pages;
using testing::Peek;
using testing::Poke;

class GateTest : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    pages_ = std::make_unique<Pages>(2);
    auto s = p_->CreateDomain("server");
    auto c = p_->CreateDomain("client");
    ASSERT_TRUE(s.ok() && c.ok());
    server_ = *s;
    client_ = *c;
    ASSERT_TRUE(p_->Attach(server_, pages_->at(0), 4096).ok());
    ASSERT_TRUE(p_->Attach(client_, pages_->at(1), 4096).ok());
    auto b = p_->Bind(server_, Rights::kReadWrite, Scope::kThread);
    ASSERT_TRUE(b.ok());
    binding_ = *b;
  }
  void TearDown() override {
    BackendTest::TearDown();  // returns the pages to plain memory first
    pages_.reset();
  }
  char* server_page() { return pages_->at(0); }
  char* client_page() { return pages_->at(1); }

  std::unique_ptr<Pages> pages_;
  DomainId server_ = 0, client_ = 0;
  Binding binding_;
};
GASP_INSTANTIATE_BACKENDS(GateTest);

TEST_P(GateTest, EnterAndLeaveOnEveryReturnPath) {
  Gate gate(p_.get(), server_, Rights::kReadWrite);
  auto rights_inside = [&] { return p_->RightsOf(server_); };
  // T
  absl::StatusOr<Rights> r = gate.Call(binding_, rights_inside);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, Rights::kReadWrite);
  EXPECT_EQ(p_->RightsOf(server_), Rights::kNone);
  // void
  absl::Status v = gate.Call(binding_, [&] { Poke(server_page(), 11); });
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(p_->RightsOf(server_), Rights::kNone);
  // absl::Status error, returned early from the middle of fn
  absl::Status e = gate.Call(binding_, [&]() -> absl::Status {
    if (Peek(server_page()) == 11) return absl::DataLossError("early");
    Poke(server_page(), 12);
    return absl::OkStatus();
  });
  EXPECT_EQ(e.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(p_->RightsOf(server_), Rights::kNone);
  // absl::StatusOr<T> error and value
  auto so = gate.Call(binding_, [&](int x) -> absl::StatusOr<int> {
    if (x < 0) return absl::InvalidArgumentError("neg");
    return Peek(server_page()) + x;
  }, -1);
  EXPECT_EQ(so.status().code(), absl::StatusCode::kInvalidArgument);
  so = gate.Call(binding_, [&](int x) -> absl::StatusOr<int> { return Peek(server_page()) + x; }, 1);
  ASSERT_TRUE(so.ok());
  EXPECT_EQ(*so, 12);
  EXPECT_EQ(p_->RightsOf(server_), Rights::kNone);
  EXPECT_TRUE(Faults(p_.get(), [&] { Poke(server_page(), 13); })) << "closed after the gate";
  auto now = gate.Call(binding_, [&] { return Peek(server_page()); });
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(*now, 11) << "the stray write after the gate did not land";
}

TEST_P(GateTest, BindingIsChecked) {
  Gate gate(p_.get(), server_, Rights::kReadWrite);
  bool called = false;
  auto fn = [&] { called = true; };
  EXPECT_EQ(gate.Call(Binding{}, fn).code(), absl::StatusCode::kPermissionDenied);
  auto ro = p_->Bind(server_, Rights::kRead, Scope::kProcess);
  ASSERT_TRUE(ro.ok());
  EXPECT_EQ(gate.Call(*ro, fn).code(), absl::StatusCode::kPermissionDenied) << "read-only binding";
  auto other = p_->Bind(client_, Rights::kReadWrite, Scope::kProcess);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(gate.Call(*other, fn).code(), absl::StatusCode::kPermissionDenied) << "other domain";
  absl::Status from_other_thread;
  std::thread t = StartThread([&] { from_other_thread = gate.Call(binding_, fn); });
  t.join();
  EXPECT_EQ(from_other_thread.code(), absl::StatusCode::kPermissionDenied) << "thread binding";
  ASSERT_TRUE(p_->Unbind(binding_).ok());
  EXPECT_EQ(gate.Call(binding_, fn).code(), absl::StatusCode::kPermissionDenied) << "unbound";
  EXPECT_FALSE(called);
  EXPECT_EQ(p_->RightsOf(server_), Rights::kNone);
}

TEST_P(GateTest, CallerGrantsAreSuspendedInsideAndNestedGatesRestore) {
  ASSERT_TRUE(p_->Grant(client_, Rights::kReadWrite, Scope::kThread).ok());
  Poke(client_page(), 1);
  auto cb = p_->Bind(client_, Rights::kRead, Scope::kProcess);
  ASSERT_TRUE(cb.ok());
  Gate to_server(p_.get(), server_, Rights::kReadWrite);
  Gate back_to_client(p_.get(), client_, Rights::kRead);
  auto r = to_server.Call(binding_, [&]() -> absl::StatusOr<int> {
    if (p_->RightsOf(client_) != Rights::kNone) return absl::InternalError("client visible");
    if (pkeys() && !Faults(p_.get(), [&] { (void)Peek(client_page()); })) {
      return absl::InternalError("callee could read the caller's private domain");
    }
    Poke(server_page(), 5);
    auto inner = back_to_client.Call(*cb, [&] {
      return static_cast<int>(p_->RightsOf(server_)) * 100 + Peek(client_page());
    });
    if (!inner.ok()) return inner.status();
    if (p_->RightsOf(server_) != Rights::kReadWrite) return absl::InternalError("not restored");
    Poke(server_page(), 6);  // still writable after the nested gate
    return *inner;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 1) << "inner gate: server none, client read";
  EXPECT_EQ(p_->RightsOf(client_), Rights::kReadWrite);
  EXPECT_EQ(p_->RightsOf(server_), Rights::kNone);
  Poke(client_page(), 2);
}

TEST_P(GateTest, TrustedServerGateKeepsTheCallersRights) {
  ASSERT_TRUE(p_->Grant(client_, Rights::kReadWrite, Scope::kThread).ok());
  Poke(client_page(), 40);
  Gate trusted(p_.get(), server_, Rights::kReadWrite, CallerRights::kKeep);
  auto r = trusted.Call(binding_, [&]() -> absl::StatusOr<int> {
    if (p_->RightsOf(client_) != Rights::kReadWrite) return absl::InternalError("client hidden");
    Poke(server_page(), Peek(client_page()) + 1);  // follows the caller's pointer
    return Peek(server_page());
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 41);
  // A suspending gate nested inside a keeping one hides the caller again.
  Gate untrusted(p_.get(), server_, Rights::kRead);
  auto nested = trusted.Call(binding_, [&] {
    return untrusted.Call(binding_, [&] { return p_->RightsOf(client_); });
  });
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(*nested, Rights::kNone);
  EXPECT_EQ(p_->RightsOf(server_), Rights::kNone);
  EXPECT_EQ(p_->RightsOf(client_), Rights::kReadWrite);
}

TEST_P(GateTest, FourThreadsCrossGatesAtOnce) {
  constexpr int kThreads = 4, kCalls = 2000;
  auto shared = p_->Bind(server_, Rights::kReadWrite, Scope::kProcess);
  ASSERT_TRUE(shared.ok());
  Gate gate(p_.get(), server_, Rights::kReadWrite);
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.push_back(StartThread([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        auto s = gate.Call(*shared, [&] {
          reinterpret_cast<std::atomic<int>*>(server_page())->fetch_add(1);
          reinterpret_cast<std::atomic<int>*>(server_page() + 64 + 4 * t)->fetch_add(1);
        });
        if (!s.ok()) failures.fetch_add(1);
        if (p_->RightsOf(server_) != Rights::kNone) failures.fetch_add(1);
      }
    }));
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto total = gate.Call(*shared, [&] { return Peek(server_page()); });
  ASSERT_TRUE(total.ok());
  EXPECT_EQ(*total, kThreads * kCalls);
  EXPECT_EQ(p_->violations(), 0u);
}

// More domains than keys, entered from 4 threads at once: gate entries on
// the lock-free path race key evictions (pkeys) and must never see another
// domain's pages or lose a write.
TEST_P(GateTest, GatesIntoFortyDomainsFromFourThreadsWhileKeysMove) {
  constexpr int kDomains = 40, kThreads = 4, kCalls = 400;
  Pages pages(kDomains);
  std::vector<DomainId> ids;
  std::vector<Binding> bindings;
  for (int i = 0; i < kDomains; ++i) {
    auto d = p_->CreateDomain("many");
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(p_->Attach(*d, pages.at(i), 4096).ok());
    auto b = p_->Bind(*d, Rights::kReadWrite, Scope::kProcess);
    ASSERT_TRUE(b.ok());
    ids.push_back(*d);
    bindings.push_back(*b);
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.push_back(StartThread([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const int k = (t * 11 + i * 7) % kDomains;
        Gate gate(p_.get(), ids[k], Rights::kReadWrite);
        auto s = gate.Call(bindings[k], [&] {
          reinterpret_cast<std::atomic<int>*>(pages.at(k))->fetch_add(1);
          // Only the gate's own domain is open inside.
          return p_->RightsOf(ids[(k + 1) % kDomains]) == Rights::kNone;
        });
        if (!s.ok()) {
          // ResourceExhausted is allowed only when every key is held at once.
          if (!absl::IsResourceExhausted(s.status())) failures.fetch_add(1);
          continue;
        }
        if (!*s) failures.fetch_add(1);
      }
    }));
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  int total = 0;
  for (int k = 0; k < kDomains; ++k) {
    Gate gate(p_.get(), ids[k], Rights::kRead);
    auto v = gate.Call(bindings[k], [&] { return Peek(pages.at(k)); });
    ASSERT_TRUE(v.ok()) << v.status();
    total += *v;
  }
  EXPECT_EQ(total, kThreads * kCalls);
  EXPECT_EQ(p_->violations(), 0u);
  if (pkeys()) {
    EXPECT_GT(p_->rekeys(), 0u) << "40 domains over 14 keys must re-key";
  }
  for (int k = 0; k < kDomains; ++k) ASSERT_TRUE(p_->Detach(pages.at(k), 4096).ok());
}

}  // namespace
}  // namespace protect
}  // namespace gasp

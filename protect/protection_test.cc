// Domains, grants, rights, violations, key virtualization; both backends.
#include "protect/protection.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "protect/cpu_probe.h"
#include "protect/gate.h"
#include "protect/protect_test_util.h"

namespace gasp {
namespace protect {
namespace {

using testing::BackendTest;
using testing::Faults;
using testing::Pages;
using testing::Peek;
using testing::Poke;

using ProtectionTest = BackendTest;
GASP_INSTANTIATE_BACKENDS(ProtectionTest);

TEST_P(ProtectionTest, CreateAttachGrantQuery) {
  Pages pages(2);
  auto d = p_->CreateDomain("data");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(p_->RightsOf(*d), Rights::kNone);
  EXPECT_EQ(p_->RightsOf(kDefaultDomain), Rights::kReadWrite);
  ASSERT_TRUE(p_->Attach(*d, pages.data(), pages.size()).ok());
  EXPECT_EQ(p_->DomainAt(pages.at(1) + 8), *d);
  EXPECT_EQ(p_->DomainAt(&d), kDefaultDomain);
  EXPECT_FALSE(p_->Attach(*d, pages.at(1), 4096).ok()) << "overlap";
  EXPECT_FALSE(p_->Attach(*d, pages.at(0) + 1, 4096).ok()) << "unaligned";
  EXPECT_FALSE(p_->Attach(999, pages.data(), 4096).ok());

  ASSERT_TRUE(p_->Grant(*d, Rights::kRead, Scope::kThread).ok());
  EXPECT_EQ(p_->RightsOf(*d), Rights::kRead);
  EXPECT_FALSE(Faults(p_.get(), [&] { (void)Peek(pages.at(0)); }));
  EXPECT_TRUE(Faults(p_.get(), [&] { Poke(pages.at(0), 1); })) << "write with read rights";
  ASSERT_TRUE(p_->Grant(*d, Rights::kReadWrite, Scope::kThread).ok());
  EXPECT_FALSE(Faults(p_.get(), [&] { Poke(pages.at(1), 42); }));
  EXPECT_EQ(Peek(pages.at(1)), 42);
  ASSERT_TRUE(p_->Grant(*d, Rights::kNone, Scope::kThread).ok());
  EXPECT_EQ(p_->RightsOf(*d), Rights::kNone);
  EXPECT_TRUE(Faults(p_.get(), [&] { (void)Peek(pages.at(1)); }));

  ASSERT_TRUE(p_->Detach(pages.data(), pages.size()).ok());
  EXPECT_EQ(p_->DomainAt(pages.at(1)), kDefaultDomain);
  EXPECT_EQ(Peek(pages.at(1)), 42) << "detached pages are plain memory again";
}

TEST_P(ProtectionTest, StrayWriteIsReportedWithDomainAndAddressAndDataStays) {
  Pages pages(1);
  auto d = p_->CreateDomain("secret");
  ASSERT_TRUE(d.ok());
  Poke(pages.at(0) + 64, 1234);
  ASSERT_TRUE(p_->Attach(*d, pages.data(), pages.size()).ok());
  char* target = pages.at(0) + 64;
  EXPECT_TRUE(Faults(p_.get(), [&] { Poke(target, 666); }));
  EXPECT_EQ(seen_.count.load(), 1);
  EXPECT_EQ(seen_.last.domain, *d);
  EXPECT_STREQ(seen_.last.domain_name, "secret");
  EXPECT_EQ(seen_.last.address, reinterpret_cast<uintptr_t>(target));
  EXPECT_TRUE(seen_.last.write);
  EXPECT_GT(seen_.last.tid, 0);
  if (pkeys()) {
    EXPECT_EQ(seen_.last.si_code, 4) << "SEGV_PKUERR";
    EXPECT_EQ(seen_.last.pkey, p_->ParkingKey()) << "an unheld domain sits on the parking key";
  } else {
    EXPECT_EQ(seen_.last.si_code, SEGV_ACCERR);
  }
  EXPECT_EQ(p_->violations(), 1u);
  ASSERT_TRUE(p_->Grant(*d, Rights::kRead, Scope::kThread).ok());
  EXPECT_EQ(Peek(target), 1234) << "the stray write did not land";
}

TEST_P(ProtectionTest, DefaultActionEndsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ProtectionOptions o;
  o.backend = GetParam();
  EXPECT_EXIT(
      {
        p_.reset();
        auto p = Protection::Create(o);  // no callback: the default action
        if (!p.ok()) _exit(3);
        Pages pages(1);
        auto d = (*p)->CreateDomain("victim");
        if (!d.ok() || !(*p)->Attach(*d, pages.data(), pages.size()).ok()) _exit(4);
        Poke(pages.at(0), 1);
        _exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "protection violation: write to 0x[0-9a-f]+ in domain 1 \\(victim\\)");
}

TEST_P(ProtectionTest, ProcessGrantReachesOtherThreads) {
  Pages pages(1);
  auto d = p_->CreateDomain("shared");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(p_->Attach(*d, pages.data(), pages.size()).ok());
  std::atomic<int> phase{0};
  std::atomic<bool> faulted_before{false}, faulted_after{true};
  std::thread t = StartThread([&] {
    faulted_before = Faults(p_.get(), [&] { (void)Peek(pages.at(0)); });
    phase = 1;
    while (phase.load() != 2) std::this_thread::yield();
    faulted_after = Faults(p_.get(), [&] { Poke(pages.at(0), 7); });
  });
  while (phase.load() != 1) std::this_thread::yield();
  ASSERT_TRUE(p_->Grant(*d, Rights::kReadWrite, Scope::kProcess).ok());
  EXPECT_EQ(p_->ProcessRights(*d), Rights::kReadWrite);
  phase = 2;
  t.join();
  EXPECT_TRUE(faulted_before);
  EXPECT_FALSE(faulted_after) << "the thread picks the process grant up on first access";
  EXPECT_EQ(Peek(pages.at(0)), 7);
  EXPECT_EQ(p_->Grant(*d, Rights::kRead, Scope::kProcess).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(ProtectionTest, FortyDomains) {
  constexpr int kDomains = 40;
  Pages pages(kDomains);
  std::vector<DomainId> ds;
  std::vector<Binding> bs;
  for (int i = 0; i < kDomains; ++i) {
    auto d = p_->CreateDomain("d" + std::to_string(i));
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(p_->Attach(*d, pages.at(i), 4096).ok());
    auto b = p_->Bind(*d, Rights::kReadWrite, Scope::kProcess);
    ASSERT_TRUE(b.ok());
    ds.push_back(*d);
    bs.push_back(*b);
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < kDomains; ++i) {
      Gate g(p_.get(), ds[i], Rights::kReadWrite);
      absl::Status s = g.Call(bs[i], [&] { Poke(pages.at(i), Peek(pages.at(i)) + i); });
      ASSERT_TRUE(s.ok()) << s;
    }
  }
  for (int i = 0; i < kDomains; ++i) {
    EXPECT_TRUE(Faults(p_.get(), [&] { (void)Peek(pages.at(i)); })) << "domain " << i;
    Gate g(p_.get(), ds[i], Rights::kRead);
    auto v = g.Call(bs[i], [&] { return Peek(pages.at(i)); });
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, 3 * i);
  }
  if (pkeys()) {
    std::printf("40 domains over %d keys: %lu re-keys\n", 14,
                static_cast<unsigned long>(p_->rekeys()));
    EXPECT_GT(p_->rekeys(), 0u);
    // Holding more domains at once than there are keys fails cleanly.
    int held = 0;
    absl::Status last;
    for (int i = 0; i < kDomains && last.ok(); ++i) {
      last = p_->Grant(ds[i], Rights::kRead, Scope::kThread);
      if (last.ok()) ++held;
    }
    EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted) << last;
    EXPECT_EQ(held, 14);
    for (int i = 0; i < held; ++i) {
      EXPECT_EQ(Peek(pages.at(i)), 3 * i);
      ASSERT_TRUE(p_->Grant(ds[i], Rights::kNone, Scope::kThread).ok());
    }
  }
}

// pkeys-only properties ----------------------------------------------------

using PkeysTest = BackendTest;
INSTANTIATE_TEST_SUITE_P(Pkeys, PkeysTest, ::testing::Values(BackendKind::kPkeys),
                         testing::BackendParamName);

TEST_P(PkeysTest, GrantAndDenyPerThread) {
  Pages pages(1);
  auto d = p_->CreateDomain("mine");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(p_->Attach(*d, pages.data(), pages.size()).ok());
  ASSERT_TRUE(p_->Grant(*d, Rights::kReadWrite, Scope::kThread).ok());
  Poke(pages.at(0), 5);
  std::atomic<bool> other_faulted{false};
  Rights other_rights = Rights::kReadWrite;
  std::thread t = StartThread([&] {
    other_rights = p_->RightsOf(*d);
    other_faulted = Faults(p_.get(), [&] { Poke(pages.at(0), 9); });
  });
  t.join();
  EXPECT_EQ(other_rights, Rights::kNone);
  EXPECT_TRUE(other_faulted);
  EXPECT_EQ(seen_.last.domain, *d);
  EXPECT_EQ(Peek(pages.at(0)), 5);
  Poke(pages.at(0), 6);  // still ours
  EXPECT_EQ(Peek(pages.at(0)), 6);
}

TEST_P(PkeysTest, NewThreadsInheritPkruUnlessStartedThroughTheHook) {
  Pages pages(1);
  auto d = p_->CreateDomain("inherit");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(p_->Attach(*d, pages.data(), pages.size()).ok());
  ASSERT_TRUE(p_->Grant(*d, Rights::kReadWrite, Scope::kThread).ok());
  bool raw_faulted = true, hooked_faulted = false;
  std::thread raw([&] {  // Linux: PKRU is copied from the creating thread
    raw_faulted = Faults(p_.get(), [&] { Poke(pages.at(0), 1); });
  });
  raw.join();
  std::thread hooked = StartThread([&] {
    hooked_faulted = Faults(p_.get(), [&] { Poke(pages.at(0), 2); });
  });
  hooked.join();
  EXPECT_FALSE(raw_faulted) << "documented: a raw thread inherits its creator's rights";
  EXPECT_TRUE(hooked_faulted) << "StartThread resets PKRU to the process grants";
  EXPECT_EQ(Peek(pages.at(0)), 1);
}

int SmapsProtectionKey(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  while (std::getline(in, line)) {
    unsigned long lo, hi;
    char dash;
    std::istringstream head(line);
    if (line.find("ProtectionKey:") == 0) {
      if (inside) return std::stoi(line.substr(14));
    } else if ((head >> std::hex >> lo >> dash >> hi) && dash == '-') {
      inside = a >= lo && a < hi;
    }
  }
  return -1;
}

TEST_P(PkeysTest, MprotectOnAKeyedPageKeepsTheKey) {
  Pages pages(1);
  auto d = p_->CreateDomain("coherent");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(p_->Attach(*d, pages.data(), pages.size()).ok());
  ASSERT_TRUE(p_->Grant(*d, Rights::kReadWrite, Scope::kThread).ok());
  const int key = p_->KeyOf(*d);
  ASSERT_GT(key, 0);
  EXPECT_EQ(SmapsProtectionKey(pages.data()), key);
  // Coherence-style state changes: INVALID, READ, WRITE.
  ASSERT_EQ(mprotect(pages.data(), 4096, PROT_NONE), 0);
  EXPECT_EQ(SmapsProtectionKey(pages.data()), key);
  ASSERT_EQ(mprotect(pages.data(), 4096, PROT_READ), 0);
  EXPECT_EQ(SmapsProtectionKey(pages.data()), key);
  ASSERT_EQ(mprotect(pages.data(), 4096, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(SmapsProtectionKey(pages.data()), key);
  Poke(pages.at(0), 3);
  // And the key still protects it.
  ASSERT_TRUE(p_->Grant(*d, Rights::kNone, Scope::kThread).ok());
  EXPECT_TRUE(Faults(p_.get(), [&] { Poke(pages.at(0), 4); }));
  EXPECT_EQ(seen_.last.si_code, 4);
  EXPECT_EQ(seen_.last.pkey, key);
  // A PROT_NONE (coherence INVALID) page of a closed domain reports the
  // violation, not a miss.
  ASSERT_EQ(mprotect(pages.data(), 4096, PROT_NONE), 0);
  EXPECT_TRUE(Faults(p_.get(), [&] { (void)Peek(pages.at(0)); }));
  EXPECT_EQ(seen_.last.si_code, 4);
  ASSERT_EQ(mprotect(pages.data(), 4096, PROT_READ | PROT_WRITE), 0);
}


// /proc/self/maps permissions ("rw-p") of the mapping holding addr.
std::string MapsPerms(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    char perms[8] = {0};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi) {
      return perms;
    }
  }
  return "";
}

// An ApplyProtFn like the runtime's: one page (a coherence READ page, say)
// never gets more than PROT_READ, whatever the domain allows.
struct HookState {
  std::atomic<int> calls{0};
  std::atomic<int> last_prot{-1};
  std::atomic<int> last_pkey{-2};
  char* read_only_page = nullptr;
};

int CappingHook(void* addr, size_t len, int prot, int pkey, void* context) {
  HookState* h = static_cast<HookState*>(context);
  h->calls.fetch_add(1);
  h->last_prot.store(prot);
  h->last_pkey.store(pkey);
  for (char* p = static_cast<char*>(addr); p < static_cast<char*>(addr) + len; p += 4096) {
    int want = p == h->read_only_page ? (prot & PROT_READ) : prot;
    int rc = pkey >= 0 ? SysPkeyMprotect(p, 4096, want, pkey) : mprotect(p, 4096, want);
    if (rc != 0) return errno;
  }
  return 0;
}

TEST_P(ProtectionTest, ApplyProtHookKeepsPageStatesWhenDomainsChange) {
  p_.reset();
  HookState hook;
  ProtectionOptions o;
  o.backend = GetParam();
  o.on_violation = testing::RecordAndJump;
  o.violation_context = &seen_;
  o.apply_prot = CappingHook;
  o.apply_prot_context = &hook;
  auto created = Protection::Create(o);
  ASSERT_TRUE(created.ok()) << created.status();
  p_ = std::move(created).value();

  Pages pages(2);
  hook.read_only_page = pages.at(1);
  auto d = p_->CreateDomain("composed");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(p_->Attach(*d, pages.data(), pages.size()).ok());
  EXPECT_GE(hook.calls.load(), 1) << "attach goes through the hook";
  if (pkeys()) {
    EXPECT_EQ(hook.last_pkey.load(), p_->ParkingKey()) << "unheld domain: parked";
    EXPECT_EQ(p_->MaxProt(*d), PROT_READ | PROT_WRITE) << "pkeys: keys do the work";
  } else {
    EXPECT_EQ(hook.last_prot.load(), PROT_NONE) << "nobody holds it: closed";
    EXPECT_EQ(p_->MaxProt(*d), PROT_NONE);
  }
  const int before = hook.calls.load();
  ASSERT_TRUE(p_->Grant(*d, Rights::kReadWrite, Scope::kThread).ok());
  EXPECT_GT(hook.calls.load(), before) << "keying / opening goes through the hook";
  EXPECT_EQ(p_->MaxProt(*d), PROT_READ | PROT_WRITE);
  if (pkeys()) {
    EXPECT_EQ(hook.last_pkey.load(), p_->KeyOf(*d));
  }
  Poke(pages.at(0), 7);
  EXPECT_EQ(Peek(pages.at(1)), 0);
  EXPECT_EQ(MapsPerms(pages.at(0)).substr(0, 2), "rw");
  EXPECT_EQ(MapsPerms(pages.at(1)).substr(0, 2), "r-") << "the hook's cap survived opening";
  ASSERT_TRUE(p_->Grant(*d, Rights::kRead, Scope::kThread).ok());
  if (!pkeys()) {
    EXPECT_EQ(p_->MaxProt(*d), PROT_READ);
  }
  EXPECT_TRUE(Faults(p_.get(), [&] { Poke(pages.at(0), 8); }));
  EXPECT_EQ(Peek(pages.at(0)), 7);
  ASSERT_TRUE(p_->Grant(*d, Rights::kNone, Scope::kThread).ok());
  EXPECT_TRUE(p_->Detach(pages.data(), pages.size()).ok());
  p_.reset();  // before `hook` and `pages` go away: shutdown calls the hook
}

}  // namespace
}  // namespace protect
}  // namespace gasp

// Protection domains end to end (tests/domains_test.sh, tools/vmtest):
//
//   domain_probe remote     2+ ranks. Domains homed on rank 0: "server",
//                           granted read to rank 1 (nothing to rank 2), and
//                           "secret", granted to rank 0 only. Rank 1 reads
//                           "server" through the DSM; its WRITE and FETCH_ADD
//                           with the read-only key, and READ / WRITE /
//                           FETCH_ADD by a non-grantee (rank 1 on "secret",
//                           rank 2 on "server") with no key or forged ones,
//                           get a remote access error; rank 0 then finds the
//                           data of both unchanged.
//   domain_probe stray      An untrusted rank writes through a gate, then a
//                           forked copy of it makes a stray write outside the
//                           gate: it dies of SIGSEGV with a violation report,
//                           and the data (shared memory) is intact.
//   domain_probe coherence  2+ ranks, 4 threads per rank write a remote-homed
//                           domain through gates at once (faults, twins,
//                           diffs inside gates); pages keep the domain's key
//                           (pkeys) or stay closed outside gates (mprotect);
//                           the home sees every write after a barrier.
// Each mode prints "PASS <mode>" on success and exits non-zero on failure.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gasp/gasp.h"
#include "protect/cpu_probe.h"
#include "runtime/runtime_internal.h"
#include "tests/probe_expect.h"
#include "transport/transport.h"

namespace {

constexpr size_t kWords = 4 * 512;  // four pages of uint64_t

uint64_t Pattern(size_t i) { return 0x5a5a000000000000ull + i * 7; }

// One raw one-sided operation on the home copy of `addr`, with `key`.
gasp::transport::CompletionCode Raw(gasp::transport::OpType type, uint64_t* addr, uint64_t key,
                                    uint64_t* buf) {
  using namespace gasp;
  consistency::Coherence* coh = internal::GetCoherence();
  const int home = coh->HomeOf(reinterpret_cast<uint64_t>(addr));
  transport::Op op;
  op.type = type;
  op.peer = home;
  op.local = buf;
  op.length = 8;
  op.remote_addr = coh->HomeAddress(home, reinterpret_cast<uint64_t>(addr));
  op.rkey.packed = key;
  op.operand = 1;
  transport::CompletionCounter counter;
  transport::Transport* t = internal::GetTransport();
  absl::Status s = t->Post(absl::MakeConstSpan(&op, 1), &counter);
  if (!s.ok()) return transport::CompletionCode::kLocalError;
  (void)t->Wait(&counter, absl::Now() + absl::Seconds(10));
  return counter.first_error();
}

const char* Name(gasp::transport::CompletionCode c) { return gasp::transport::CompletionCodeName(c); }

int Remote() {
  using namespace gasp;
  using transport::CompletionCode;
  using transport::OpType;
  const int me = Rank();
  Domain d = CoNewDomain("server");
  uint64_t* data = CoNewArray<uint64_t>(kWords, Placement::OnRank(0), d);
  uint64_t* open_words = CoNewArray<uint64_t>(512, Placement::OnRank(0));  // default domain
  // Granted to rank 0 only: with 2 ranks, rank 1 plays the non-grantee here.
  Domain secret_domain = CoNewDomain("secret");
  uint64_t* secret = CoNewArray<uint64_t>(512, Placement::OnRank(0), secret_domain);
  CoGrant(secret_domain, 0, Access::kReadWrite);
  if (me == 0) {
    for (size_t i = 0; i < 512; ++i) secret[i] = Pattern(i);
  }
  EXPECT(DomainOf(data) == d, "DomainOf");
  EXPECT(DomainOf(open_words) == Domain(), "DomainOf default");
  EXPECT(AccessOf(d) == Access::kNone, "nobody holds a new domain");
  CoGrant(d, 0, Access::kReadWrite);
  CoGrant(d, 1, Access::kRead);
  if (me == 0) {
    EXPECT(AccessOf(d) == Access::kReadWrite, "rank 0 access");
    for (size_t i = 0; i < kWords; ++i) data[i] = Pattern(i);
  }
  Barrier();
  const uint64_t key_here = internal::GetCoherence()->HomeKey(reinterpret_cast<uint64_t>(data), 0).packed;
  if (me == 1) {
    EXPECT(AccessOf(d) == Access::kRead, "rank 1 access %d", static_cast<int>(AccessOf(d)));
    uint64_t sum = 0;
    for (size_t i = 0; i < kWords; ++i) sum += data[i] == Pattern(i) ? 1 : 0;
    EXPECT(sum == kWords, "rank 1 read %lu/%zu words right through the DSM", (unsigned long)sum, kWords);
    EXPECT(key_here != 0, "rank 1 holds a (read-only) key");
    uint64_t buf = 0xdeadbeef;
    CompletionCode c = Raw(OpType::kRead, data + 3, key_here, &buf);
    EXPECT(c == CompletionCode::kSuccess && buf == Pattern(3), "read-only key READ: %s", Name(c));
    buf = 0xbad;
    c = Raw(OpType::kWrite, data + 5, key_here, &buf);
    EXPECT(c == CompletionCode::kRemoteAccessError, "WRITE with the read-only key: %s", Name(c));
    c = Raw(OpType::kFetchAdd, data + 6, key_here, &buf);
    EXPECT(c == CompletionCode::kRemoteAccessError, "FETCH_ADD with the read-only key: %s", Name(c));
    std::printf("rank 1: granted read: DSM reads ok, WRITE and FETCH_ADD refused by the target\n");
  }
  // A rank without a grant: no key, and forged keys, all refused.
  auto refused = [&](uint64_t* target, const char* what) {
    const uint64_t none =
        internal::GetCoherence()->HomeKey(reinterpret_cast<uint64_t>(target), 0).packed;
    EXPECT(none == 0, "%s: never sent a key (has %#lx)", what, (unsigned long)none);
    // Forged: the key of a region rank 0 did give us (the default-domain
    // segment), used on the domain's address, and variations of it.
    const uint64_t forged =
        internal::GetCoherence()->HomeKey(reinterpret_cast<uint64_t>(open_words), 0).packed;
    EXPECT(forged != 0, "default-domain key present");
    uint64_t buf = 0xbad;
    for (uint64_t key : {none, forged, forged + 1, forged ^ 0xff, forged + (uint64_t{1} << 32)}) {
      CompletionCode c = Raw(OpType::kRead, target + 1, key, &buf);
      EXPECT(c == CompletionCode::kRemoteAccessError, "%s: READ with key %#lx: %s", what, (unsigned long)key, Name(c));
      c = Raw(OpType::kWrite, target + 1, key, &buf);
      EXPECT(c == CompletionCode::kRemoteAccessError, "%s: WRITE with key %#lx: %s", what, (unsigned long)key, Name(c));
      c = Raw(OpType::kFetchAdd, target + 2, key, &buf);
      EXPECT(c == CompletionCode::kRemoteAccessError, "%s: FETCH_ADD with key %#lx: %s", what, (unsigned long)key, Name(c));
    }
    std::printf("rank %d: not granted %s: READ, WRITE, FETCH_ADD refused with no key and forged keys\n", me, what);
  };
  if (me == 1) {
    EXPECT(AccessOf(secret_domain) == Access::kNone, "rank 1 access to secret");
    refused(secret, "secret");
  }
  if (me == 2) {
    EXPECT(AccessOf(d) == Access::kNone, "rank 2 access");
    refused(data, "server");
  }
  Barrier();
  if (me == 0) {
    size_t intact = 0;
    for (size_t i = 0; i < kWords; ++i) intact += data[i] == Pattern(i) ? 1 : 0;
    for (size_t i = 0; i < 512; ++i) intact += secret[i] == Pattern(i) ? 1 : 0;
    EXPECT(intact == kWords + 512, "rank 0: %zu/%zu words intact", intact, kWords + 512);
    std::printf("rank 0: all %zu words of both domains intact\n", intact);
  }
  return 0;
}

int Stray() {
  using namespace gasp;
  const int me = Rank();
  Domain d = CoNewDomain("server");
  uint64_t* data = CoNewArray<uint64_t>(kWords, Placement::OnRank(0), d);
  for (int r = 0; r < Size(); ++r) CoGrant(d, r, Access::kReadWrite, Trust::kUntrusted);
  EXPECT(AccessOf(d) == Access::kNone, "untrusted: closed outside gates");
  // Trusted setup code may give one thread the domain directly.
  std::thread setup([&] {
    Status g = GrantThread(d, Access::kRead);
    EXPECT(g.ok(), "GrantThread: %s", std::string(g.message()).c_str());
    EXPECT(AccessOf(d) == Access::kRead, "thread grant");
    EXPECT(GrantThread(d, Access::kNone).ok() && AccessOf(d) == Access::kNone, "thread revoke");
  });
  setup.join();
  EXPECT(AccessOf(d) == Access::kNone, "a thread grant stays in its thread");
  Domain other = CoNewDomain("other");
  EXPECT(GrantThread(other, Access::kRead).code() == StatusCode::kPermissionDenied,
         "GrantThread without a rank grant");
  Result<Gate> gate = OpenGate(d, Access::kReadWrite);
  EXPECT(gate.ok(), "OpenGate: %s", std::string(gate.status().message()).c_str());
  if (!gate.ok()) return 1;
  if (me == 0) {
    Status s = gate->Call([&] {
      for (size_t i = 0; i < kWords; ++i) data[i] = Pattern(i);
    });
    EXPECT(s.ok(), "gate call");
    Result<Access> inside = gate->Call([&] { return AccessOf(d); });
    EXPECT(inside.ok() && *inside == Access::kReadWrite, "access inside the gate");
    // A thread started inside the gate through gasp::StartThread does not
    // inherit the gate's rights.
    Result<Access> child = gate->Call([&] {
      Access a = Access::kReadWrite;
      bool pkru_open = true;
      std::thread t = StartThread([&] {
        a = AccessOf(d);
        protect::Protection* p = internal::GetProtection();
        pkru_open = p->backend() == protect::BackendKind::kPkeys &&
                    p->KeyOf(p->DomainAt(data)) > 0 &&
                    ((protect::ReadPkru() >> (2 * p->KeyOf(p->DomainAt(data)))) & 1) == 0;
      });
      t.join();
      return pkru_open ? Access::kReadWrite : a;
    });
    EXPECT(child.ok() && *child == Access::kNone, "a thread started inside the gate holds nothing");
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
      // The "untrusted client": a stray write outside any gate. The memory
      // is shared with the parent (memfd), so a write that got through
      // would be visible there.
      *reinterpret_cast<volatile uint64_t*>(data + 9) = 0x666;
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
           "the stray write should end its process with SIGSEGV (status %#x)", status);
    Result<bool> intact = gate->Call([&] {
      for (size_t i = 0; i < kWords; ++i) {
        if (data[i] != Pattern(i)) return false;
      }
      return true;
    });
    EXPECT(intact.ok() && *intact, "server data intact after the stray write");
    std::printf("rank 0: stray write outside the gate killed its process (SIGSEGV), data intact "
                "[%s]\n", ProtectionBackend());
  }
  Barrier();
  // Another rank reads the data through its own gate (remote fetch).
  if (me == 1 % Size()) {
    Result<bool> ok = gate->Call([&] { return data[kWords - 1] == Pattern(kWords - 1); });
    EXPECT(ok.ok() && *ok, "remote read through a gate");
  }
  Barrier();
  return 0;
}

// /proc/self/smaps "ProtectionKey:" of the mapping holding addr (-1 if none).
int SmapsKey(const void* addr) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  while (std::getline(f, line)) {
    uintptr_t lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > 12) {
      inside = a >= lo && a < hi;
    } else if (inside && line.rfind("ProtectionKey:", 0) == 0) {
      return std::atoi(line.c_str() + 14);
    }
  }
  return -1;
}

int Coherent() {
  using namespace gasp;
  const int me = Rank(), n = Size();
  constexpr int kThreads = 4, kRounds = 50;
  Domain d = CoNewDomain("shared");
  // Every page homed on rank 0: the other ranks fetch, twin and diff.
  uint64_t* data = CoNewArray<uint64_t>(n * kThreads * 512, Placement::OnRank(0), d);
  for (int r = 0; r < n; ++r) CoGrant(d, r, Access::kReadWrite, Trust::kUntrusted);
  Result<Gate> gate = OpenGate(d, Access::kReadWrite);
  if (!gate.ok()) return 1;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t* mine = data + (me * kThreads + t) * 512;  // one page per thread
      for (int i = 0; i < kRounds; ++i) {
        Status s = gate->Call([&] { mine[i] = (uint64_t(me) << 32) | (t << 16) | i; });
        if (!s.ok()) bad.fetch_add(1);
        if (AccessOf(d) != Access::kNone) bad.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT(bad.load() == 0, "%d gate calls failed or leaked rights", bad.load());
  protect::Protection* p = internal::GetProtection();
  const int key = p->KeyOf(p->DomainAt(data));
  if (p->backend() == protect::BackendKind::kPkeys && me != 0) {
    // The page was fetched (READ), twinned (WRITE) by the DSM's mprotects:
    // it still carries the domain's key (or the parking key if evicted).
    const int k = SmapsKey(data + me * kThreads * 512);
    EXPECT(k == key || k == p->ParkingKey(), "page key %d, domain key %d", k, key);
  }
  if (me != 0) {
    // Outside the gate the dirty page is closed: a forked copy's read faults.
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
      volatile uint64_t v = data[me * kThreads * 512];
      (void)v;
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
           "a read of a dirty domain page outside the gate should fault (status %#x)", status);
  }
  Barrier();  // diffs of the dirty pages go home (read from the system view)
  if (me == 0) {
    Result<int> wrong = gate->Call([&] {
      int w = 0;
      for (int r = 0; r < n; ++r)
        for (int t = 0; t < kThreads; ++t)
          for (int i = 0; i < kRounds; ++i) {
            const uint64_t want = (uint64_t(r) << 32) | (t << 16) | i;
            if (data[(r * kThreads + t) * 512 + i] != want) ++w;
          }
      return w;
    });
    EXPECT(wrong.ok() && *wrong == 0, "%d words wrong at the home", wrong.ok() ? *wrong : -1);
    std::printf("rank 0: %d ranks x %d threads x %d gated writes all home [%s]\n", n, kThreads,
                kRounds, ProtectionBackend());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const std::string mode = argc > 1 ? argv[1] : "";
  int rc = 2;
  if (mode == "remote") {
    if (rt->size() < 2) {
      std::fprintf(stderr, "domain_probe remote needs 2 or more ranks\n");
      return 2;
    }
    rc = Remote();
  } else if (mode == "stray") {
    rc = Stray();
  } else if (mode == "coherence") {
    rc = Coherent();
  } else {
    std::fprintf(stderr, "usage: domain_probe remote|stray|coherence\n");
  }
  gasp::Barrier();
  int fin = rt->Finalize();
  if (rc != 0 || gasp::tests::ProbeFailures() != 0 || fin != 0) return 1;
  std::printf("PASS %s\n", mode.c_str());
  return 0;
}

// Protection domains: a ledger whose balances live in their own domain.
//
//   rank 0     owns the ledger (trusted, read-write)
//   rank 1     a trusted auditor: granted read, calls the ledger directly
//   rank 2...  untrusted tellers: granted read-write, but only through a
//              gate; their own code cannot touch the balances
//
// Each teller deposits through its stub (LocalRef::Untrusted: a call gate);
// the auditor sums the balances through its stub (LocalRef::Trusted: a
// direct call). A rank that was not granted the domain could not even reach
// its pages over the network: its transport holds no key for them.
//   gasprun -np 4 bazel-bin/examples/ledger
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "gasp/gasp.h"

namespace {

struct Ledger {
  uint64_t* balances;  // in the ledger domain
  int accounts;
  gasp::GlobalLock lock;

  uint64_t Deposit(int account, uint64_t amount) {
    std::lock_guard<gasp::GlobalLock> guard(lock);
    balances[account] += amount;
    return balances[account];
  }
  uint64_t Total() {
    std::lock_guard<gasp::GlobalLock> guard(lock);
    uint64_t sum = 0;
    for (int i = 0; i < accounts; ++i) sum += balances[i];
    return sum;
  }
};

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int me = rt->rank(), n = rt->size();
  const int deposits = argc > 1 ? std::atoi(argv[1]) : 100;
  constexpr int kAccounts = 64;

  gasp::Domain domain = gasp::CoNewDomain("ledger");
  uint64_t* balances = gasp::CoNewArray<uint64_t>(kAccounts, gasp::Placement::OnRank(0), domain);
  Ledger* ledger = gasp::CoNew<Ledger>(Ledger{balances, kAccounts, gasp::CoNewLock()});
  gasp::CoGrant(domain, 0, gasp::Access::kReadWrite);
  if (n > 1) gasp::CoGrant(domain, 1, gasp::Access::kRead);
  for (int r = 2; r < n; ++r) {
    gasp::CoGrant(domain, r, gasp::Access::kReadWrite, gasp::Trust::kUntrusted);
  }

  int failures = 0;
  if (me >= 2) {
    // A teller: everything through the gate.
    gasp::Result<gasp::Gate> gate = gasp::OpenGate(domain, gasp::Access::kReadWrite);
    if (!gate.ok()) {
      std::fprintf(stderr, "rank %d: OpenGate: %s\n", me, std::string(gate.status().message()).c_str());
      return 1;
    }
    auto teller = gasp::LocalRef<Ledger>::Untrusted(ledger, *gate);
    for (int i = 0; i < deposits; ++i) {
      gasp::Result<uint64_t> b = teller.Call(&Ledger::Deposit, (me * 7 + i) % kAccounts, 10);
      if (!b.ok()) ++failures;
    }
    if (gasp::AccessOf(domain) != gasp::Access::kNone) ++failures;  // closed outside the gate
  }
  gasp::Barrier();
  if (me == 1 || (n == 1 && me == 0)) {
    auto auditor = gasp::LocalRef<Ledger>::Trusted(ledger);
    gasp::Result<uint64_t> total = auditor.Call(&Ledger::Total);
    const uint64_t want = uint64_t{10} * deposits * (n > 2 ? n - 2 : 0);
    if (!total.ok() || *total != want) {
      std::fprintf(stderr, "auditor: total %lu, expected %lu\n",
                   total.ok() ? (unsigned long)*total : 0ul, (unsigned long)want);
      ++failures;
    } else {
      std::printf("auditor (rank %d, trusted, read): total %lu from %d tellers through gates "
                  "[%s]: verified\n",
                  me, (unsigned long)*total, n > 2 ? n - 2 : 0, gasp::ProtectionBackend());
    }
  }
  gasp::Barrier();
  const int rc = rt->Finalize();
  return failures == 0 ? rc : 1;
}

// Randomized data-race-free programs with several application threads per
// rank, checked against a sequential model.
//
//   drf_threads [epochs=6] [threads=4] [seed=1] [ops=40]
//
// Shared state (one cyclic allocation, so its pages have different homes):
//   * 40 objects of about 800 bytes (5 per page), guarded by 37 locks
//     (object o by lock o % 37, so some locks guard two objects). Under the
//     lock a thread checks the two-field invariant a == b and that a never
//     went back since it last held the lock, then adds the same amount to a
//     and b and bumps its own 16-bit and 8-bit tally slots (sub-word
//     neighbours written by other threads and ranks under the same lock).
//   * per-rank mailboxes in the same pages: each epoch, one thread of rank r
//     fills mailbox r and publishes it with a release AtomicStore; a thread
//     of rank r+1 spins on an acquire AtomicLoad and checks the contents.
//   * atomic counters bumped with relaxed and acq_rel FetchAdd.
//   * a byte array (block placement) where every byte has a random owner
//     thread of a random rank each epoch; after a barrier every thread
//     checks every byte.
// Every operation is a pure function of (seed, epoch, rank, thread, k), so
// each rank computes the exact final state. Exits 0 with "verified" only if
// everything matches.
#include <atomic>
#include <cstdarg>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "gasp/gasp.h"

namespace {

constexpr int kObjects = 40;
constexpr int kLocks = 37;
constexpr int kMaxRanks = 64;
constexpr int kSlots16 = 4;
constexpr int kSlots8 = 8;
constexpr int kMailBytes = 200;
constexpr int kAtomics = 8;
constexpr size_t kBytes = 5 * 4096 + 123;

struct Obj {
  uint64_t a;
  uint64_t b;
  uint16_t tally16[kSlots16];
  uint8_t tally8[kSlots8];
  uint8_t pad[800 - 32];
};

struct Mail {
  uint8_t data[kMailBytes];
};

struct Shared {
  Obj objs[kObjects];
  Mail mail[kMaxRanks];
  uint64_t mail_flag[kMaxRanks];
  uint64_t atomics[kAtomics];
};

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t H(uint64_t seed, uint64_t e, uint64_t r, uint64_t t, uint64_t k, uint64_t salt) {
  return Mix(Mix(Mix(Mix(Mix(seed) ^ e) ^ r) ^ t) ^ k ^ (salt << 56));
}

// One locked operation of thread t of rank r: object, amount.
struct LockedOp {
  int obj;
  uint64_t delta;
};
LockedOp OpOf(uint64_t seed, int e, int r, int t, int k) {
  const uint64_t h = H(seed, e, r, t, k, 1);
  return {static_cast<int>(h % kObjects), 1 + ((h >> 20) % 1000)};
}

uint8_t MailByte(int e, int r, int i) { return static_cast<uint8_t>(Mix(e * 977 + r * 31 + i)); }

// A reusable barrier for the threads of one rank (C++17 has no std::barrier).
class LocalBarrier {
 public:
  explicit LocalBarrier(int n) : n_(n) {}
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    const uint64_t gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    cv_.wait(l, [&] { return gen_ != gen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int n_;
  int count_ = 0;
  uint64_t gen_ = 0;
};

std::atomic<long> g_errors{0};

void Report(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Report(const char* fmt, ...) {
  if (g_errors.fetch_add(1) >= 10) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 6;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  const int ops = argc > 4 ? std::atoi(argv[4]) : 40;
  const int me = rt->rank(), n = rt->size();
  if (n > kMaxRanks || threads < 1) {
    std::fprintf(stderr, "drf_threads: at most %d ranks and at least one thread\n", kMaxRanks);
    return 2;
  }
  // DRF_FIRST_TOUCH=1: both arrays first-touch (homes decided by the run).
  const char* ft = std::getenv("DRF_FIRST_TOUCH");
  const bool first_touch = ft != nullptr && std::strcmp(ft, "1") == 0;
  Shared* sh = gasp::CoNewArray<Shared>(
      1, first_touch ? gasp::Placement::FirstTouch() : gasp::Placement::Cyclic(1));
  uint8_t* bytes = gasp::CoNewArray<uint8_t>(
      kBytes, first_touch ? gasp::Placement::FirstTouch() : gasp::Placement::Block());
  std::vector<gasp::GlobalLock> locks;
  for (int l = 0; l < kLocks; ++l) locks.push_back(gasp::CoNewLock());

  LocalBarrier local(threads);
  // Per thread and object: the value of `a` this thread last left behind.
  std::vector<std::vector<uint64_t>> last_seen(threads, std::vector<uint64_t>(kObjects, 0));

  auto body = [&](int t) {
    for (int e = 0; e < epochs; ++e) {
      // 1. Byte owners write their bytes.
      for (size_t i = 0; i < kBytes; ++i) {
        const uint64_t h = H(seed, e, i, 0, 0, 2);
        if ((h & 1) == 0) continue;
        if (static_cast<int>((h >> 8) % n) == me && static_cast<int>((h >> 16) % threads) == t) {
          bytes[i] = static_cast<uint8_t>(h >> 32);
        }
      }
      // 2. Locked read-modify-writes on objects; atomics in between.
      const int sender = static_cast<int>(H(seed, e, me, 0, 0, 3) % threads);
      for (int k = 0; k < ops; ++k) {
        const LockedOp op = OpOf(seed, e, me, t, k);
        {
          std::lock_guard<gasp::GlobalLock> g(locks[op.obj % kLocks]);
          Obj& o = sh->objs[op.obj];
          if (o.a != o.b) {
            Report("rank %d thread %d epoch %d: object %d broken under its lock: a=%lu b=%lu\n",
                   me, t, e, op.obj, (unsigned long)o.a, (unsigned long)o.b);
          }
          if (o.a < last_seen[t][op.obj]) {
            Report("rank %d thread %d epoch %d: object %d went back: a=%lu, left at %lu\n", me, t,
                   e, op.obj, (unsigned long)o.a, (unsigned long)last_seen[t][op.obj]);
          }
          o.a += op.delta;
          o.tally16[(me * threads + t) % kSlots16] += 1;
          o.tally8[(me * threads + t) % kSlots8] += 1;
          o.b += op.delta;
          last_seen[t][op.obj] = o.a;
        }
        const int c = static_cast<int>(H(seed, e, me, t, k, 4) % kAtomics);
        gasp::AtomicFetchAdd(&sh->atomics[c], 1,
                             (k & 1) ? std::memory_order_relaxed : std::memory_order_acq_rel);
        // 3. Mailbox: halfway through, the sender thread publishes.
        if (k == ops / 2 && t == sender) {
          for (int i = 0; i < kMailBytes; ++i) sh->mail[me].data[i] = MailByte(e, me, i);
          gasp::AtomicStore(&sh->mail_flag[me], e + 1, std::memory_order_release);
        }
      }
      // 4. The receiver thread waits for the previous rank's mail.
      const int from = (me + n - 1) % n;
      if (t == (sender + 1) % threads) {
        int spins = 0;
        while (gasp::AtomicLoad(&sh->mail_flag[from], std::memory_order_acquire) <
               static_cast<uint64_t>(e + 1)) {
          if (++spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        for (int i = 0; i < kMailBytes; ++i) {
          if (sh->mail[from].data[i] != MailByte(e, from, i)) {
            Report("rank %d thread %d epoch %d: mail from rank %d byte %d is %u, expected %u\n", me,
                   t, e, from, i, sh->mail[from].data[i], MailByte(e, from, i));
            break;
          }
        }
      }
      // 5. Everyone checks the bytes after a barrier.
      local.Wait();
      if (t == 0) gasp::Barrier();
      local.Wait();
      for (size_t i = 0; i < kBytes; ++i) {
        uint8_t want = 0;
        for (int f = e; f >= 0; --f) {  // the latest epoch that wrote byte i
          const uint64_t h = H(seed, f, i, 0, 0, 2);
          if (h & 1) {
            want = static_cast<uint8_t>(h >> 32);
            break;
          }
        }
        if (bytes[i] != want) {
          Report("rank %d thread %d epoch %d: byte %zu is %u, model %u\n", me, t, e, i, bytes[i],
                 want);
          break;
        }
      }
      local.Wait();
      if (t == 0) gasp::Barrier();  // nobody writes the next epoch while others still check
      local.Wait();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.push_back(gasp::StartThread(body, t));
  body(0);
  for (auto& th : pool) th.join();
  gasp::Barrier();

  // The sequential model of every locked update and atomic.
  std::vector<uint64_t> sum(kObjects, 0);
  std::vector<uint64_t> t16(kObjects * kSlots16, 0), t8(kObjects * kSlots8, 0);
  std::vector<uint64_t> atomics(kAtomics, 0);
  for (int e = 0; e < epochs; ++e) {
    for (int r = 0; r < n; ++r) {
      for (int t = 0; t < threads; ++t) {
        for (int k = 0; k < ops; ++k) {
          const LockedOp op = OpOf(seed, e, r, t, k);
          sum[op.obj] += op.delta;
          t16[op.obj * kSlots16 + (r * threads + t) % kSlots16] += 1;
          t8[op.obj * kSlots8 + (r * threads + t) % kSlots8] += 1;
          atomics[H(seed, e, r, t, k, 4) % kAtomics] += 1;
        }
      }
    }
  }
  for (int o = 0; o < kObjects; ++o) {
    const Obj& obj = sh->objs[o];
    if (obj.a != sum[o] || obj.b != sum[o]) {
      Report("rank %d: object %d a=%lu b=%lu, model %lu\n", me, o, (unsigned long)obj.a,
             (unsigned long)obj.b, (unsigned long)sum[o]);
    }
    for (int s = 0; s < kSlots16; ++s) {
      if (obj.tally16[s] != static_cast<uint16_t>(t16[o * kSlots16 + s])) {
        Report("rank %d: object %d tally16[%d]=%u, model %u\n", me, o, s, obj.tally16[s],
               static_cast<uint16_t>(t16[o * kSlots16 + s]));
      }
    }
    for (int s = 0; s < kSlots8; ++s) {
      if (obj.tally8[s] != static_cast<uint8_t>(t8[o * kSlots8 + s])) {
        Report("rank %d: object %d tally8[%d]=%u, model %u\n", me, o, s, obj.tally8[s],
               static_cast<uint8_t>(t8[o * kSlots8 + s]));
      }
    }
  }
  for (int c = 0; c < kAtomics; ++c) {
    const uint64_t v = gasp::AtomicLoad(&sh->atomics[c]);
    if (v != atomics[c]) {
      Report("rank %d: atomic %d is %lu, model %lu\n", me, c, (unsigned long)v,
             (unsigned long)atomics[c]);
    }
  }
  const long errors = g_errors.load();
  std::printf("rank %d: %d epochs x %d threads x %d ops, seed %lu, %ld mismatches: %s\n", me,
              epochs, threads, ops, (unsigned long)seed, errors, errors == 0 ? "verified" : "FAILED");
  const int rc = rt->Finalize();
  return errors == 0 ? rc : 1;
}

// Conformance suite: the semantics transport.h promises, checked on every
// backend named in the parameter list below (three ranks in one process,
// real sockets on 127.0.0.1). A new backend is added by teaching
// TransportFactoryForTest its name and adding the name to kBackends.
// This file: one-sided operations and messages (conformance_fixture.h).
#include "transport/conformance_fixture.h"

namespace gasp {
namespace transport {
namespace conformance {
namespace {

TEST_P(ConformanceTest, CapabilitiesAndName) {
  const Capabilities caps = T(0).capabilities();
  if (GetParam() == "verbs") {
    // HCA atomics are not atomic with the CPU's.
    EXPECT_FALSE(caps.cpu_atomics_coherent);
    EXPECT_EQ(T(0).name(), "verbs");
  } else {
    EXPECT_TRUE(caps.cpu_atomics_coherent);
    EXPECT_THAT(T(0).name(), HasSubstr(GetParam() == "shm" ? "shm" : "tcp"));
  }
  EXPECT_GE(caps.max_op_bytes, size_t{1} << 20);
  EXPECT_EQ(T(2).rank(), 2);
  EXPECT_EQ(T(2).size(), kRanks);
}

// Pattern depending on everything, so a misplaced byte is caught.
uint8_t PatternByte(size_t i, size_t size, size_t offset, int target) {
  return static_cast<uint8_t>((i * 131 + size * 7 + offset * 3 + static_cast<size_t>(target)) ^ 0x5c);
}

TEST_P(ConformanceTest, ReadWriteSizesOffsetsSelfAndPeers) {
  const size_t sizes[] = {1, 3, 4096, 4099, 65537, 1u << 20};
  const size_t offsets[] = {0, 1, 7, 13};
  std::vector<uint8_t> src_storage((1u << 20) + 64), dst_storage((1u << 20) + 64);
  for (int initiator : {0, 1}) {
    for (int target = 0; target < kRanks; ++target) {
      for (size_t size : sizes) {
        for (size_t offset : offsets) {
          SCOPED_TRACE(absl::StrCat("rank ", initiator, " -> rank ", target, ", ", size,
                                    " bytes at offset ", offset));
          // Unaligned local buffers too.
          uint8_t* src = src_storage.data() + (offset % 5);
          uint8_t* dst = dst_storage.data() + 3;
          for (size_t i = 0; i < size; ++i) src[i] = PatternByte(i, size, offset, target);
          uint8_t* remote = Mem(target) + 64 + offset;
          std::memset(Mem(target), 0xee, size + 256);
          ASSERT_TRUE(ExecuteFor(T(initiator),
                                 {WriteOp(target, src, size, Addr(remote), Key(target), 1)})
                          .ok());
          ASSERT_EQ(std::memcmp(remote, src, size), 0) << "target memory differs after WRITE";
          EXPECT_EQ(remote[-1], 0xee) << "WRITE touched the byte before its range";
          EXPECT_EQ(remote[size], 0xee) << "WRITE touched the byte after its range";
          std::memset(dst, 0, size + 1);
          ASSERT_TRUE(
              ExecuteFor(T(initiator), {ReadOp(target, dst, size, Addr(remote), Key(target), 2)})
                  .ok());
          ASSERT_EQ(std::memcmp(dst, src, size), 0) << "READ returned different bytes";
          EXPECT_EQ(dst[size], 0) << "READ wrote past its local buffer";
        }
      }
    }
  }
}

TEST_P(ConformanceTest, RegisteredLocalBuffersAndSmallWrites) {
  // Local buffers inside this rank's own registered region (verbs: zero
  // copy with that region's lkey), and small WRITEs (verbs: inline), alone
  // and mixed in one batch over two peers.
  constexpr size_t kLocal = (1u << 20) + 64;  // inside rank 0's region
  for (size_t size : {size_t{1}, size_t{8}, size_t{64}, size_t{65}, size_t{4096},
                      size_t{65537}, size_t{1} << 20}) {
    for (int target : {1, 2}) {
      SCOPED_TRACE(absl::StrCat(size, " bytes to rank ", target));
      uint8_t* src = Mem(0) + kLocal;
      for (size_t i = 0; i < size; ++i) src[i] = PatternByte(i, size, 1, target);
      std::memset(Mem(target), 0xee, size + 256);
      ASSERT_TRUE(
          ExecuteFor(T(0), {WriteOp(target, src, size, RAddr(target, 64), Key(target))}).ok());
      ASSERT_EQ(std::memcmp(Mem(target) + 64, src, size), 0);
      EXPECT_EQ(Mem(target)[64 + size], 0xee);
      uint8_t* dst = Mem(0) + 3;  // [3, 1 MiB + 4): clear of src
      std::memset(dst, 0, size + 1);
      ASSERT_TRUE(
          ExecuteFor(T(0), {ReadOp(target, dst, size, RAddr(target, 64), Key(target))}).ok());
      ASSERT_EQ(std::memcmp(dst, src, size), 0);
      EXPECT_EQ(dst[size], 0) << "READ wrote past its local buffer";
    }
  }
  // One batch: inline WRITEs, zero-copy READs and bounced READs, two peers.
  std::vector<uint8_t> bounced(16 * 8, 0);
  std::vector<Op> ops;
  for (int i = 0; i < 16; ++i) {
    const int peer = 1 + i % 2;
    uint64_t v = 1000 + static_cast<uint64_t>(i);
    std::memcpy(Mem(0) + 8 * i, &v, 8);
    ops.push_back(WriteOp(peer, Mem(0) + 8 * i, 8, RAddr(peer, 8 * i), Key(peer), i));
  }
  for (int i = 0; i < 16; ++i) {
    const int peer = 1 + i % 2;
    ops.push_back(ReadOp(peer, Mem(0) + 4096 + 8 * i, 8, RAddr(peer, 8 * i), Key(peer)));
    ops.push_back(ReadOp(peer, bounced.data() + 8 * i, 8, RAddr(peer, 8 * i), Key(peer)));
  }
  CompletionCounter counter;
  ASSERT_TRUE(PostAndWait(T(0), ops, &counter).ok());
  for (int i = 0; i < 16; ++i) {
    uint64_t a = 0, b = 0;
    std::memcpy(&a, Mem(0) + 4096 + 8 * i, 8);
    std::memcpy(&b, bounced.data() + 8 * i, 8);
    EXPECT_EQ(a, 1000u + i) << i;
    EXPECT_EQ(b, 1000u + i) << i;
  }
}

TEST_P(ConformanceTest, AbandonedReadIntoRegisteredBufferIsDropped) {
  WarmUp();
  if (!testing::PauseForTest(&T(1), true).ok()) GTEST_SKIP() << "backend has no pause hook";
  constexpr size_t kBytes = 64u << 10;
  for (size_t i = 0; i < kBytes; ++i) Mem(1)[i] = static_cast<uint8_t>(i * 3);
  uint8_t* late = Mem(0) + (1u << 20);  // registered: zero copy on verbs
  std::memset(late, 0xcd, kBytes);
  auto counter = std::make_unique<CompletionCounter>();
  ASSERT_TRUE(T(0).Post({ReadOp(1, late, kBytes, RAddr(1, 0), Key(1))}, counter.get()).ok());
  absl::Status s = T(0).Wait(counter.get(), absl::Now() + absl::Milliseconds(100));
  ASSERT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  counter.reset();
  ASSERT_TRUE(testing::PauseForTest(&T(1), false).ok());
  uint8_t* fresh = Mem(0) + 8192;
  ASSERT_TRUE(ExecuteFor(T(0), {ReadOp(1, fresh, kBytes, RAddr(1, 0), Key(1))}).ok());
  EXPECT_EQ(std::memcmp(fresh, Mem(1), kBytes), 0);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE(std::all_of(late, late + kBytes, [](uint8_t b) { return b == 0xcd; }))
      << "the late reply of an abandoned READ was written into its buffer";
  EXPECT_TRUE(failures_[0].calls().empty());
  EXPECT_TRUE(failures_[1].calls().empty());
}

TEST_P(ConformanceTest, ZeroLengthReadWriteSucceed) {
  EXPECT_EQ(Outcome(0, {WriteOp(1, nullptr, 0, RAddr(1, 10), Key(1)),
                        ReadOp(2, nullptr, 0, RAddr(2, 10), Key(2)),
                        ReadOp(0, nullptr, 0, RAddr(0, 10), Key(0))}),
            CompletionCode::kSuccess);
}

TEST_P(ConformanceTest, BatchOf100MixedOpsWithOneCounter) {
  // Rank 0 posts 100 ops round-robin over ranks 0..2: 40 WRITEs of 100
  // bytes, 40 READs of 100 bytes, 20 FETCH_ADDs on one word per rank.
  constexpr size_t kBlock = 100;
  constexpr size_t kWordOffset = 1u << 20;  // clear of the blocks
  std::vector<uint8_t> out(40 * kBlock), in(40 * kBlock, 0);
  std::vector<uint64_t> olds(20, ~0ull);
  for (int r = 0; r < kRanks; ++r) {
    for (size_t i = 0; i < 40 * kBlock; ++i) Mem(r)[8192 + i] = static_cast<uint8_t>(i * 7 + r);
    std::memset(Mem(r) + kWordOffset, 0, 8);
  }
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i ^ 0xa5);
  std::vector<Op> ops;
  int fa = 0;
  for (int i = 0; i < 100; ++i) {
    const int peer = i % kRanks;
    const uint64_t wr = static_cast<uint64_t>(i);
    switch (i % 5) {
      case 0:
      case 1: {
        const size_t b = static_cast<size_t>(i / 5 * 2 + i % 5);  // 0..39
        ops.push_back(WriteOp(peer, out.data() + b * kBlock, kBlock, RAddr(peer, b * kBlock),
                              Key(peer), wr));
        break;
      }
      case 2:
      case 3: {
        const size_t b = static_cast<size_t>(i / 5 * 2 + i % 5 - 2);  // 0..39
        ops.push_back(ReadOp(peer, in.data() + b * kBlock, kBlock, RAddr(peer, 8192 + b * kBlock),
                             Key(peer), wr));
        break;
      }
      default:
        ops.push_back(FetchAddOp(peer, &olds[static_cast<size_t>(fa++)], RAddr(peer, kWordOffset),
                                 Key(peer), 1, wr));
    }
  }
  CompletionCounter counter;
  ASSERT_TRUE(T(0).Post(ops, &counter).ok());
  ASSERT_TRUE(T(0).Wait(&counter, absl::Now() + absl::Seconds(20)).ok());
  EXPECT_EQ(counter.pending(), 0u);
  for (int i = 0; i < 100; ++i) {
    const int peer = i % kRanks;
    if (i % 5 < 2) {
      const size_t b = static_cast<size_t>(i / 5 * 2 + i % 5);
      EXPECT_EQ(std::memcmp(Mem(peer) + b * kBlock, out.data() + b * kBlock, kBlock), 0) << i;
    } else if (i % 5 < 4) {
      const size_t b = static_cast<size_t>(i / 5 * 2 + i % 5 - 2);
      EXPECT_EQ(std::memcmp(in.data() + b * kBlock, Mem(peer) + 8192 + b * kBlock, kBlock), 0)
          << i;
    }
  }
  // 20 FETCH_ADDs spread over 3 ranks: the old values per rank are 0..k-1.
  uint64_t total = 0;
  for (int r = 0; r < kRanks; ++r) {
    uint64_t v;
    std::memcpy(&v, Mem(r) + kWordOffset, 8);
    total += v;
  }
  EXPECT_EQ(total, 20u);
  for (uint64_t old : olds) EXPECT_LT(old, 20u);
}

TEST_P(ConformanceTest, CompareAndSwapReturnsOldValue) {
  for (int target : {1, 0}) {
    SCOPED_TRACE(absl::StrCat("target rank ", target));
    uint64_t* word = reinterpret_cast<uint64_t*>(Mem(target) + 128);
    *word = 5;
    uint64_t old = 0;
    // Success: compare matches.
    ASSERT_TRUE(ExecuteFor(T(0), {CasOp(target, &old, Addr(word), Key(target), 5, 9)}).ok());
    EXPECT_EQ(old, 5u);
    EXPECT_EQ(*word, 9u);
    // Failure: compare does not match, the word stays, the old value comes back.
    old = 0;
    ASSERT_TRUE(ExecuteFor(T(0), {CasOp(target, &old, Addr(word), Key(target), 5, 11)}).ok());
    EXPECT_EQ(old, 9u);
    EXPECT_EQ(*word, 9u);
    // Null result pointer is allowed.
    ASSERT_TRUE(ExecuteFor(T(0), {CasOp(target, nullptr, Addr(word), Key(target), 9, 1)}).ok());
    EXPECT_EQ(*word, 1u);
  }
}

TEST_P(ConformanceTest, FetchAddFromAllRanksAndThreadsIsExact) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1000;
  constexpr int kBatch = 10;
  constexpr int kCpuAdds = 1000;
  uint64_t* word = reinterpret_cast<uint64_t*>(Mem(0) + 256);
  *word = 0;
  std::vector<std::vector<uint64_t>> olds(kRanks * kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int r = 0; r < kRanks; ++r) {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, r, t] {
        std::vector<uint64_t>& mine = olds[static_cast<size_t>(r * kThreads + t)];
        mine.assign(kPerThread, 0);
        for (int i = 0; i < kPerThread; i += kBatch) {
          std::vector<Op> ops;
          for (int k = 0; k < kBatch; ++k) {
            ops.push_back(FetchAddOp(0, &mine[static_cast<size_t>(i + k)], Addr(word), Key(0), 1));
          }
          if (!ExecuteFor(T(r), ops, absl::Seconds(60)).ok()) failures.fetch_add(1);
        }
      });
    }
  }
  // The target's own CPU adds at the same time (only where promised).
  const bool cpu_adds = T(0).capabilities().cpu_atomics_coherent;
  if (cpu_adds) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCpuAdds; ++i) __atomic_fetch_add(word, 1000000, __ATOMIC_SEQ_CST);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t transport_adds = uint64_t{kRanks} * kThreads * kPerThread;
  EXPECT_EQ(__atomic_load_n(word, __ATOMIC_SEQ_CST),
            transport_adds + (cpu_adds ? uint64_t{kCpuAdds} * 1000000 : 0));
  // Every transport add saw a distinct count of earlier transport adds.
  std::vector<uint64_t> seen;
  for (const auto& v : olds) {
    for (uint64_t old : v) seen.push_back(old % 1000000);
  }
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i) << "duplicate or lost add";
}

TEST_P(ConformanceTest, AccessViolationsFailAndLeaveMemoryUnchanged) {
  // Regions on rank 1 with various rights, and one to deregister.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[5 * 4096]);
  std::memset(buf.get(), 0x5a, 5 * 4096);
  auto reg = [&](int i, uint32_t access) {
    absl::StatusOr<Region> r = T(1).Register(buf.get() + i * 4096, 4096, access);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  };
  const Region all = reg(0, kRemoteAll);
  const Region read_only = reg(1, kRemoteRead);
  const Region write_only = reg(2, kRemoteWrite);
  const Region no_atomic = reg(3, kRemoteRead | kRemoteWrite);
  Region gone = reg(4, kRemoteAll);
  ASSERT_TRUE(T(1).Deregister(gone).ok());
  EXPECT_EQ(T(1).Deregister(gone).code(), absl::StatusCode::kNotFound);

  std::vector<uint8_t> data(1u << 20, 0x11);
  uint64_t old = 0;
  const uint64_t base = Addr(all.addr);
  RemoteKey wrong_key = all.rkey;
  wrong_key.packed ^= 1;  // right region id, wrong random part
  RemoteKey unknown_id;
  unknown_id.packed = (uint64_t{4000} << 32) | 1;
  struct Case {
    const char* what;
    Op op;
  };
  const std::vector<Case> cases = {
      {"WRITE past the end", WriteOp(1, data.data(), 200, base + 4000, all.rkey, 11)},
      {"WRITE starting before the region", WriteOp(1, data.data(), 2, base - 1, all.rkey, 12)},
      {"READ past the end", ReadOp(1, data.data(), 4097, base, all.rkey, 13)},
      {"READ far away", ReadOp(1, data.data(), 8, base + (1ull << 40), all.rkey, 14)},
      {"WRITE with a wrong rkey", WriteOp(1, data.data(), 8, base, wrong_key, 15)},
      {"READ with an unknown region id", ReadOp(1, data.data(), 8, base, unknown_id, 16)},
      {"WRITE to a read-only region",
       WriteOp(1, data.data(), 8, Addr(read_only.addr), read_only.rkey, 17)},
      {"READ from a write-only region",
       ReadOp(1, data.data(), 8, Addr(write_only.addr), write_only.rkey, 18)},
      {"CAS on a read-only region",
       CasOp(1, &old, Addr(read_only.addr), read_only.rkey, 0x5a5a5a5a5a5a5a5aull, 1, 19)},
      {"FETCH_ADD without atomic rights",
       FetchAddOp(1, &old, Addr(no_atomic.addr), no_atomic.rkey, 1, 20)},
      {"FETCH_ADD past the end", FetchAddOp(1, &old, base + 4096, all.rkey, 1, 21)},
      {"WRITE to a deregistered region", WriteOp(1, data.data(), 8, Addr(gone.addr), gone.rkey, 22)},
      {"READ from a deregistered region", ReadOp(1, data.data(), 8, Addr(gone.addr), gone.rkey, 23)},
      {"1 MiB WRITE to a deregistered region (payload discarded)",
       WriteOp(1, data.data(), 1u << 20, Addr(gone.addr), gone.rkey, 24)},
  };
  for (int initiator : {0, 1}) {  // remote and to self
    for (const Case& c : cases) {
      SCOPED_TRACE(absl::StrCat(c.what, " from rank ", initiator));
      CompletionCounter counter;
      absl::Status s = PostAndWait(T(initiator), {c.op}, &counter);
      EXPECT_EQ(counter.first_error(), CompletionCode::kRemoteAccessError);
      EXPECT_EQ(counter.error_peer(), 1);
      EXPECT_EQ(counter.error_wr_id(), c.op.wr_id);
      EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
      EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
      for (int i = 0; i < 5 * 4096; ++i) {
        ASSERT_EQ(buf[i], 0x5a) << "byte " << i << " of the target regions changed";
      }
    }
  }
  // The connection is still in sync: a good op after all the refused ones.
  ASSERT_TRUE(ExecuteFor(T(0), {WriteOp(1, data.data(), 16, base, all.rkey)}).ok());
  EXPECT_EQ(buf[0], 0x11);
  EXPECT_EQ(buf[16], 0x5a);
}

TEST_P(ConformanceTest, RegistrationArgumentErrors) {
  EXPECT_EQ(T(0).Register(nullptr, 10, kRemoteAll).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(T(0).Register(Mem(0), 0, kRemoteAll).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(T(0).Register(Mem(0), 10, 0x80).status().code(), absl::StatusCode::kInvalidArgument);
  // Re-registering the same memory gives a different key; the old one dies
  // with its deregistration.
  absl::StatusOr<Region> a = T(1).Register(Mem(1), 64, kRemoteAll);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(T(1).Deregister(*a).ok());
  absl::StatusOr<Region> b = T(1).Register(Mem(1), 64, kRemoteAll);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(a->rkey == b->rkey);
  uint64_t v;
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, Addr(Mem(1)), a->rkey)}),
            CompletionCode::kRemoteAccessError);
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, Addr(Mem(1)), b->rkey)}), CompletionCode::kSuccess);
}

TEST_P(ConformanceTest, PostRejectsBadArgumentsWithoutPostingAnything) {
  CompletionCounter counter;
  uint64_t v = 0;
  absl::Status s = T(0).Post({ReadOp(1, &v, 8, RAddr(1, 0), Key(1)),
                              ReadOp(kRanks, &v, 8, RAddr(1, 0), Key(1), 77)},
                             &counter);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("wr_id 77"));
  s = T(0).Post({FetchAddOp(1, &v, RAddr(1, 4), Key(1), 1)}, &counter);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("aligned"));
  s = T(0).Post({ReadOp(1, nullptr, 8, RAddr(1, 0), Key(1))}, &counter);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(counter.pending(), 0u);
  EXPECT_TRUE(T(0).Post({}, &counter).ok());
  EXPECT_TRUE(counter.done());
}

TEST_P(ConformanceTest, MoreOpsThanTableSlotsInOneBatch) {
  // More than the tcp backend's default 4096 outstanding slots: Post waits
  // for slots instead of failing.
  constexpr int kOps = 5000;
  std::vector<uint64_t> out(kOps, 0);
  for (int i = 0; i < 64; ++i) std::memcpy(Mem(1) + 8 * i, &i, 4);
  std::vector<Op> ops;
  for (int i = 0; i < kOps; ++i) {
    ops.push_back(ReadOp(1, &out[static_cast<size_t>(i)], 8, RAddr(1, 8 * (i % 64)), Key(1)));
  }
  ASSERT_TRUE(ExecuteFor(T(0), ops, absl::Seconds(60)).ok());
  for (int i = 0; i < kOps; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], uint64_t(i % 64)) << i;
}

TEST_P(ConformanceTest, LargeReadsBothWaysDoNotDeadlock) {
  // Ranks 0 and 1 each read 8 MiB from the other and write 8 MiB to the
  // other, at the same time, from two threads each.
  constexpr size_t kChunk = 1u << 20;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::vector<std::vector<uint8_t>> sinks(4, std::vector<uint8_t>(kChunk));
  for (int r : {0, 1}) {
    const int peer = 1 - r;
    threads.emplace_back([&, r, peer] {
      std::vector<Op> ops;
      for (int i = 0; i < 8; ++i) {
        ops.push_back(ReadOp(peer, sinks[static_cast<size_t>(r)].data(), kChunk, RAddr(peer, 0),
                             Key(peer)));
      }
      if (!ExecuteFor(T(r), ops, absl::Seconds(60)).ok()) failures.fetch_add(1);
    });
    threads.emplace_back([&, r, peer] {
      std::vector<Op> ops;
      for (int i = 0; i < 8; ++i) {
        ops.push_back(WriteOp(peer, sinks[static_cast<size_t>(2 + r)].data(), kChunk,
                              RAddr(peer, kChunk), Key(peer)));
      }
      if (!ExecuteFor(T(r), ops, absl::Seconds(60)).ok()) failures.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(ConformanceTest, IdleTransportsDoNotSpin) {
  // Progress threads must block when there is nothing to do: four ranks on
  // two cores would otherwise starve each other.
  WarmUp();
  const auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return absl::DurationFromTimespec(ts);
  };
  const absl::Duration before = cpu_now();
  absl::SleepFor(absl::Milliseconds(500));
  const absl::Duration used = cpu_now() - before;
  EXPECT_LT(used, absl::Milliseconds(50)) << "the process burned CPU while idle";
}

// --- Messages -----------------------------------------------------------

std::vector<uint8_t> MsgPayload(int from, uint32_t tag, int seq) {
  std::string s = absl::StrCat(from, "/", tag, "/", seq);
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST_P(ConformanceTest, MessagesArriveInOrderPerPeerAndTag) {
  constexpr int kCount = 100;
  std::vector<std::thread> senders;
  for (int from : {1, 2}) {
    senders.emplace_back([&, from] {
      for (int i = 0; i < kCount; ++i) {
        for (uint32_t tag : {5u, 6u}) {
          ASSERT_TRUE(T(from).Send(0, tag, MsgPayload(from, tag, i)).ok());
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  // Drain in an order unrelated to the send order.
  for (uint32_t tag : {6u, 5u}) {
    for (int from : {2, 1}) {
      for (int i = 0; i < kCount; ++i) {
        absl::StatusOr<Message> m = T(0).Recv(tag, from, deadline);
        ASSERT_TRUE(m.ok()) << m.status();
        EXPECT_EQ(m->peer, from);
        EXPECT_EQ(m->tag, tag);
        ASSERT_EQ(m->payload, MsgPayload(from, tag, i));
      }
    }
  }
}

TEST_P(ConformanceTest, MessagesAnyPeerSelfEmptyAndLarge) {
  ASSERT_TRUE(T(1).Send(0, 7, MsgPayload(1, 7, 0)).ok());
  ASSERT_TRUE(T(2).Send(0, 7, MsgPayload(2, 7, 0)).ok());
  ASSERT_TRUE(T(0).Send(0, 7, MsgPayload(0, 7, 0)).ok());
  std::vector<int> from;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Message> m = T(0).Recv(7, kAnyPeer, absl::Now() + absl::Seconds(20));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->payload, MsgPayload(m->peer, 7, 0));
    from.push_back(m->peer);
  }
  std::sort(from.begin(), from.end());
  EXPECT_EQ(from, (std::vector<int>{0, 1, 2}));

  ASSERT_TRUE(T(2).Send(1, 8, {}).ok());
  absl::StatusOr<Message> empty = T(1).Recv(8, 2, absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->payload.empty());

  std::vector<uint8_t> big(3u << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 13);
  ASSERT_TRUE(T(2).Send(1, 9, big).ok());
  absl::StatusOr<Message> got = T(1).Recv(9, 2, absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->payload == big);

  std::vector<uint8_t> too_big(kMaxMessageBytes + 1);
  EXPECT_EQ(T(2).Send(1, 9, too_big).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(ConformanceTest, RecvTimeoutNamesTagAndPeer) {
  const absl::Time start = absl::Now();
  absl::StatusOr<Message> m = T(0).Recv(77, 2, absl::Now() + absl::Milliseconds(100));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(90));
  ASSERT_EQ(m.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("tag 77"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("rank 2"));
  m = T(0).Recv(78, kAnyPeer, absl::Now() + absl::Milliseconds(20));
  ASSERT_EQ(m.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("tag 78"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("any rank"));
  // A message with another tag does not satisfy the wait.
  ASSERT_TRUE(T(2).Send(0, 79, MsgPayload(2, 79, 0)).ok());
  m = T(0).Recv(80, 2, absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(T(0).Recv(79, 2, absl::Now() + absl::Seconds(20)).ok());
}


// Every backend (and decorator set-up) the suite runs on. "verbs" skips
// (with the reason) where there is no RDMA device.
const std::vector<std::string>& Backends() {
  static const auto* names = new std::vector<std::string>{"tcp", "faulty_passthrough", "shm",
                                                                "verbs"};
  return *names;
}

INSTANTIATE_TEST_SUITE_P(Backends, ConformanceTest, ::testing::ValuesIn(Backends()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace conformance
}  // namespace transport
}  // namespace gasp

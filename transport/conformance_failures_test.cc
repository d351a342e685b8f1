// Transport conformance suite: endpoints, peer failures and malformed bytes
// from the network (conformance_fixture.h).
#include "transport/conformance_fixture.h"

namespace gasp {
namespace transport {
namespace conformance {
namespace {

// --- Endpoints ----------------------------------------------------------

// Two "jobs" whose blobs got mixed up (a stale address, a reused port):
// their job secrets differ, so no operation crosses, in either direction,
// and each side's error says the other is not of its job.
TEST_P(ConformanceTest, RanksOfAnotherJobAreRefused) {
  // Declared before the transports: an early ASSERT return destroys them
  // first, while their handlers may still write here.
  FailureLog logs[2];
  std::unique_ptr<uint64_t[]> words(new uint64_t[2]{0x1111, 0x2222});
  std::vector<std::unique_ptr<Transport>> t;
  for (int r = 0; r < 2; ++r) {
    // The refusal ends the wait at once; the timeout only bounds a first
    // connection that is slow to resolve (rxe in the guest).
    TransportOptions o = testing::LoopbackOptions(r, 2, absl::Seconds(10));
    if (r == 1) o.job_secret = std::string(32, 'B');
    absl::StatusOr<std::unique_ptr<Transport>> created =
        testing::TransportFactoryForTest(GetParam(), o);
    ASSERT_TRUE(created.ok()) << created.status();
    t.push_back(std::move(*created));
  }
  std::vector<EndpointBlob> blobs = {t[0]->LocalEndpoint(), t[1]->LocalEndpoint()};
  Region regions[2];
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(t[r]->Connect(blobs).ok());
    t[r]->SetPeerFailureHandler(logs[r].Handler());
    absl::StatusOr<Region> reg = t[r]->Register(&words[r], 8, kRemoteAll);
    ASSERT_TRUE(reg.ok());
    regions[r] = *reg;
  }
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE(absl::StrCat("rank ", r, " reads and writes the other job's rank"));
    const int other = 1 - r;
    uint64_t v = 0, w = 0xbad;
    CompletionCounter counter;
    absl::Status s = testing::PostAndWait(
        *t[r],
        {ReadOp(other, &v, 8, Addr(&words[other]), regions[other].rkey),
         WriteOp(other, &w, 8, Addr(&words[other]), regions[other].rkey)},
        &counter);
    EXPECT_NE(counter.first_error(), CompletionCode::kSuccess) << s;
    EXPECT_EQ(v, 0u);
    ASSERT_TRUE(logs[r].WaitFor(1, absl::Seconds(20)));
    EXPECT_THAT(logs[r].calls()[0].second, HasSubstr("job"));
  }
  EXPECT_EQ(words[0], 0x1111u);
  EXPECT_EQ(words[1], 0x2222u);
  for (auto& x : t) (void)x->Shutdown(absl::Now() + absl::Seconds(5));
}

TEST_P(ConformanceTest, ConnectRefusesForeignBlobs) {
  absl::StatusOr<std::unique_ptr<Transport>> fresh = testing::TransportFactoryForTest(
      GetParam(), testing::LoopbackOptions(0, kRanks, absl::Seconds(5)));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  std::vector<EndpointBlob> blobs = cluster_.blobs;
  blobs[0] = (*fresh)->LocalEndpoint();
  struct Case {
    const char* what;
    size_t offset;  // in the common 8-byte prefix
    uint8_t value;
    const char* needle;
  };
  for (const Case& c : {Case{"magic", 0, 0x00, "rank 2"}, Case{"backend", 4, 0x7f, "rank 2"},
                        Case{"version", 6, 0x09, "version"}}) {
    SCOPED_TRACE(c.what);
    std::vector<EndpointBlob> bad = blobs;
    bad[2].bytes[c.offset] = c.value;
    absl::Status s = (*fresh)->Connect(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.needle));
  }
  // Wrong count, and our own blob replaced by another rank's.
  EXPECT_EQ((*fresh)->Connect(absl::MakeConstSpan(blobs.data(), 2)).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<EndpointBlob> swapped = blobs;
  std::swap(swapped[1], swapped[2]);
  EXPECT_EQ((*fresh)->Connect(swapped).code(), absl::StatusCode::kInvalidArgument);
  // The good set is still accepted after the refusals.
  EXPECT_TRUE((*fresh)->Connect(blobs).ok());
  EXPECT_TRUE((*fresh)->Shutdown(absl::Now() + absl::Seconds(5)).ok());
}

// --- Failures -----------------------------------------------------------

TEST_P(ConformanceTest, PeerDeathFailsOpsAndCallsHandlerOnce) {
  WarmUp();
  if (!testing::PauseForTest(&T(2), true).ok()) GTEST_SKIP() << "backend has no pause hook";
  // An op rank 2 will never answer.
  uint64_t v = 0;
  CompletionCounter outstanding;
  ASSERT_TRUE(T(0).Post({ReadOp(2, &v, 8, RAddr(2, 0), Key(2), 41)}, &outstanding).ok());
  ASSERT_TRUE(testing::CrashForTest(&T(2)).ok());

  absl::Status s = T(0).Wait(&outstanding, absl::Now() + absl::Seconds(20));
  EXPECT_EQ(outstanding.first_error(), CompletionCode::kPeerUnreachable) << s;
  EXPECT_EQ(outstanding.error_wr_id(), 41u);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);

  for (int r : {0, 1}) {
    ASSERT_TRUE(failures_[r].WaitFor(1, absl::Seconds(20))) << "rank " << r << " not told";
  }
  // Later ops to the dead rank fail at once, not after a timeout.
  const absl::Time start = absl::Now();
  EXPECT_EQ(Outcome(0, {ReadOp(2, &v, 8, RAddr(2, 0), Key(2))}), CompletionCode::kPeerUnreachable);
  EXPECT_EQ(Outcome(1, {WriteOp(2, &v, 8, RAddr(2, 0), Key(2))}), CompletionCode::kPeerUnreachable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(T(0).Send(2, 1, {}).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(T(0).Recv(1, 2, absl::Now() + absl::Seconds(20)).status().code(),
            absl::StatusCode::kUnavailable);
  // The survivors still talk to each other.
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}), CompletionCode::kSuccess);
  EXPECT_TRUE(T(1).Send(0, 3, {1, 2, 3}).ok());
  EXPECT_TRUE(T(0).Recv(3, 1, absl::Now() + absl::Seconds(20)).ok());

  absl::SleepFor(absl::Milliseconds(100));  // a second report would come now
  for (int r : {0, 1}) {
    const auto calls = failures_[r].calls();
    ASSERT_EQ(calls.size(), 1u) << "rank " << r;
    EXPECT_EQ(calls[0].first, 2);
    EXPECT_THAT(calls[0].second, HasSubstr("rank 2"));
    EXPECT_THAT(calls[0].second, HasSubstr("without goodbye"));
  }
}

TEST_P(ConformanceTest, CleanShutdownIsNotAFailure) {
  WarmUp();
  ASSERT_TRUE(T(2).Shutdown(absl::Now() + absl::Seconds(20)).ok());
  uint64_t v = 0;
  // Ops to a rank that said goodbye fail fast; no failure is reported.
  EXPECT_EQ(Outcome(0, {ReadOp(2, &v, 8, RAddr(2, 0), Key(2))}, absl::Seconds(5)),
            CompletionCode::kPeerUnreachable);
  EXPECT_EQ(Outcome(2, {ReadOp(0, &v, 8, RAddr(0, 0), Key(0))}), CompletionCode::kFlushed);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(failures_[0].calls().empty());
  EXPECT_TRUE(failures_[1].calls().empty());
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}), CompletionCode::kSuccess);
}

TEST_P(ConformanceTest, ShutdownFlushesOutstandingOps) {
  WarmUp();
  if (!testing::PauseForTest(&T(1), true).ok()) GTEST_SKIP() << "backend has no pause hook";
  uint64_t v = 0;
  CompletionCounter counter;
  ASSERT_TRUE(T(0).Post({ReadOp(1, &v, 8, RAddr(1, 0), Key(1), 5)}, &counter).ok());
  EXPECT_FALSE(counter.done());
  ASSERT_TRUE(T(0).Shutdown(absl::Now() + absl::Seconds(20)).ok());
  EXPECT_TRUE(counter.done());
  EXPECT_EQ(counter.first_error(), CompletionCode::kFlushed);
  EXPECT_EQ(T(0).Wait(&counter, absl::Now()).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}), CompletionCode::kFlushed);
  EXPECT_EQ(T(0).Send(1, 1, {}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(testing::PauseForTest(&T(1), false).ok());
  EXPECT_TRUE(failures_[1].calls().empty());
}

TEST_P(ConformanceTest, WaitTimeoutAbandonsAndLateReplyIsDropped) {
  WarmUp();
  if (!testing::PauseForTest(&T(1), true).ok()) GTEST_SKIP() << "backend has no pause hook";
  constexpr size_t kBytes = 1u << 20;
  for (size_t i = 0; i < kBytes; ++i) Mem(1)[i] = static_cast<uint8_t>(i);
  std::vector<uint8_t> late(kBytes, 0xcd);
  auto counter = std::make_unique<CompletionCounter>();
  ASSERT_TRUE(T(0).Post({ReadOp(1, late.data(), kBytes, RAddr(1, 0), Key(1))}, counter.get()).ok());
  absl::Status s = T(0).Wait(counter.get(), absl::Now() + absl::Milliseconds(100));
  ASSERT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1"));
  counter.reset();  // abandoned: the backend must not touch it any more

  ASSERT_TRUE(testing::PauseForTest(&T(1), false).ok());
  // The late reply comes back before this one on the same path.
  std::vector<uint8_t> fresh(kBytes, 0);
  ASSERT_TRUE(ExecuteFor(T(0), {ReadOp(1, fresh.data(), kBytes, RAddr(1, 0), Key(1))}).ok());
  EXPECT_EQ(std::memcmp(fresh.data(), Mem(1), kBytes), 0);
  EXPECT_TRUE(std::all_of(late.begin(), late.end(), [](uint8_t b) { return b == 0xcd; }))
      << "the late reply of an abandoned READ was written into its buffer";
  EXPECT_TRUE(failures_[0].calls().empty());
}

TEST_P(ConformanceTest, UnreachablePeerAfterConnectRetries) {
  // Two fresh ranks with a short timeout; rank 1 goes away before rank 0
  // ever connects, so rank 0's lazy connect is refused until the deadline.
  absl::StatusOr<Cluster> c = Cluster::Start(GetParam(), 2, absl::Milliseconds(500));
  ASSERT_TRUE(c.ok()) << c.status();
  FailureLog log;
  (*c)[0].SetPeerFailureHandler(log.Handler());
  ASSERT_TRUE((*c)[1].Shutdown(absl::Now() + absl::Seconds(5)).ok());
  std::unique_ptr<uint8_t[]> mem(new uint8_t[64]());
  absl::StatusOr<Region> r = (*c)[0].Register(mem.get(), 64, kRemoteAll);
  ASSERT_TRUE(r.ok());
  uint64_t v = 0;
  const absl::Time start = absl::Now();
  CompletionCounter counter;
  absl::Status s = PostAndWait((*c)[0], {ReadOp(1, &v, 8, Addr(mem.get()), r->rkey)}, &counter);
  EXPECT_EQ(counter.first_error(), CompletionCode::kPeerUnreachable) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300)) << "gave up before the deadline";
  ASSERT_TRUE(log.WaitFor(1, absl::Seconds(10)));
  EXPECT_EQ(log.calls()[0].first, 1);
  EXPECT_THAT(log.calls()[0].second, HasSubstr("rank 1"));
  EXPECT_THAT(log.calls()[0].second, HasSubstr("GASP_TIMEOUT"));
  // Self-ops still work.
  EXPECT_TRUE(ExecuteFor((*c)[0], {ReadOp(0, &v, 8, Addr(mem.get()), r->rkey)}).ok());
  EXPECT_TRUE(c->ShutdownAll().ok());
}

// --- Malformed input from the network (tcp wire format) -------------------
// tcp listens on TCP, shm on its unix socket; both speak the handshake of
// tcp_wire.h there. verbs connects through the RDMA CM (verbs_setup_test.cc
// and verbs_cm_proof_test.cc cover its private data).

// Skips (with the reason printed) a backend without a raw handshake socket.
bool SkipWithoutRawWire(const EndpointBlob& blob) {
  if (testing::BlobSession(blob) != 0) return false;
  std::printf("[ SKIPPED  ] no tcp-style handshake socket: the verbs backend connects through "
              "the RDMA CM (verbs_setup_test.cc, verbs_cm_proof_test.cc)\n");
  return true;
}

using testing::ClosedByPeer;
using testing::RawConnect;

void WriteBytes(int fd, const void* data, size_t n) {
  ASSERT_TRUE(testing::RawSend(fd, data, n));
}

TEST_P(ConformanceTest, MalformedBytesDropTheConnectionOnly) {
  if (SkipWithoutRawWire(cluster_.blobs[0])) GTEST_SKIP() << "no raw handshake socket";
  WarmUp();
  std::vector<std::vector<uint8_t>> attacks;
  // Garbage.
  attacks.emplace_back(64, 0x41);
  // A valid frame that is not a HELLO.
  {
    uint8_t h[tcp::kFrameHeaderSize];
    tcp::EncodeHeader(tcp::ByeFrame(), h);
    attacks.emplace_back(h, h + sizeof(h));
  }
  // HELLO with the wrong job size, HELLO with a wrong session nonce, a
  // right HELLO followed by a request instead of a PROOF, and by a PROOF
  // that is not a MAC with the job's secret.
  const uint64_t session1 = testing::BlobSession(cluster_.blobs[1]);
  tcp::FrameHeader read_req;
  read_req.type = tcp::FrameType::kReadReq;
  read_req.req_id = 1;
  read_req.remote_addr = RAddr(0, 0);
  read_req.rkey = Key(0).packed;
  read_req.operand = 8;
  Mac forged{};
  forged[0] = 1;
  for (const std::vector<tcp::FrameHeader>& frames :
       std::vector<std::vector<tcp::FrameHeader>>{
           {tcp::HelloFrame(1, kRanks + 1, 1, 7)},
           {tcp::HelloFrame(2, kRanks, 12345, 7)},
           {tcp::HelloFrame(1, kRanks, session1, 7), read_req},
           {tcp::HelloFrame(1, kRanks, session1, 7), tcp::ProofFrame(forged)}}) {
    std::vector<uint8_t> bytes;
    for (const tcp::FrameHeader& f : frames) {
      uint8_t h[tcp::kFrameHeaderSize];
      tcp::EncodeHeader(f, h);
      bytes.insert(bytes.end(), h, h + sizeof(h));
    }
    attacks.push_back(bytes);
  }
  // A header whose length field is far beyond the limit.
  {
    uint8_t h[tcp::kFrameHeaderSize];
    tcp::FrameHeader w;
    w.type = tcp::FrameType::kWriteReq;
    tcp::EncodeHeader(w, h);
    tcp::PutLe32(h + 8, 0xffffffffu);
    attacks.emplace_back(h, h + sizeof(h));
  }
  for (size_t i = 0; i < attacks.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("attack ", i));
    const int fd = RawConnect(cluster_.blobs[0]);
    ASSERT_GE(fd, 0);
    WriteBytes(fd, attacks[i].data(), attacks[i].size());
    // Nothing but the acceptor's own HELLO and PROOF may come back (no
    // READ_RESP: the request before a valid PROOF is never served).
    uint8_t got[4 * tcp::kFrameHeaderSize];
    size_t n = 0;
    while (n < sizeof(got)) {
      const ssize_t k = recv(fd, got + n, sizeof(got) - n, 0);
      if (k <= 0) break;
      n += static_cast<size_t>(k);
    }
    EXPECT_LE(n, 2 * tcp::kFrameHeaderSize) << "the transport answered a stranger's request";
    EXPECT_TRUE(ClosedByPeer(fd)) << "the transport kept a connection that sent bad bytes";
    close(fd);
  }
  // Rank 0 still serves everyone, and nobody was declared dead.
  uint64_t v = 0;
  EXPECT_EQ(Outcome(1, {ReadOp(0, &v, 8, RAddr(0, 0), Key(0))}), CompletionCode::kSuccess);
  EXPECT_EQ(Outcome(2, {ReadOp(0, &v, 8, RAddr(0, 0), Key(0))}), CompletionCode::kSuccess);
  EXPECT_TRUE(failures_[0].calls().empty());
}

TEST_P(ConformanceTest, ProtocolErrorFromAKnownPeerFailsItsOps) {
  if (SkipWithoutRawWire(cluster_.blobs[0])) GTEST_SKIP() << "no raw handshake socket";
  // Rank 0 connects to rank 2 (so it has ops outstanding there), but rank 2
  // never connects to rank 0: a raw socket does, posing as rank 2, and
  // then sends a corrupt frame (tcp) or hands over rings holding a corrupt
  // record (shm).
  uint64_t v = 0;
  ASSERT_TRUE(ExecuteFor(T(0), {ReadOp(2, &v, 8, RAddr(2, 0), Key(2))}).ok());
  if (!testing::PauseForTest(&T(2), true).ok()) GTEST_SKIP() << "backend has no pause hook";
  CompletionCounter outstanding;
  ASSERT_TRUE(T(0).Post({ReadOp(2, &v, 8, RAddr(2, 0), Key(2), 9)}, &outstanding).ok());

  const int fd = RawConnect(cluster_.blobs[0]);
  ASSERT_GE(fd, 0);
  tcp::HandshakeTranscript t;
  bool acceptor_ok = false;
  ASSERT_TRUE(testing::RawHandshake(fd, 2, kRanks, testing::BlobSession(cluster_.blobs[2]), 0,
                                    testing::TestJobSecret(), true, &t, &acceptor_ok));
  EXPECT_TRUE(acceptor_ok);
  if (GetParam() == "shm") {
    ASSERT_TRUE(testing::RawShmGarbageRecord(fd));
  } else {
    const uint8_t garbage[tcp::kFrameHeaderSize] = {0x53, 0x47, 1, 200};
    WriteBytes(fd, garbage, sizeof(garbage));
  }
  EXPECT_TRUE(ClosedByPeer(fd));
  close(fd);

  absl::Status s = T(0).Wait(&outstanding, absl::Now() + absl::Seconds(20));
  EXPECT_EQ(outstanding.first_error(), CompletionCode::kProtocolError) << s;
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(failures_[0].WaitFor(1, absl::Seconds(20)));
  EXPECT_EQ(failures_[0].calls()[0].first, 2);
  EXPECT_THAT(failures_[0].calls()[0].second, HasSubstr("protocol error from rank 2"));
  EXPECT_EQ(Outcome(0, {ReadOp(2, &v, 8, RAddr(2, 0), Key(2))}), CompletionCode::kProtocolError);
  EXPECT_EQ(Outcome(0, {ReadOp(1, &v, 8, RAddr(1, 0), Key(1))}), CompletionCode::kSuccess);
  ASSERT_TRUE(testing::PauseForTest(&T(2), false).ok());
}


}  // namespace
}  // namespace conformance
}  // namespace transport
}  // namespace gasp

// The tcp handshake against an outsider driving raw sockets: only a
// process holding the job secret gets a request served, a recorded PROOF
// is useless on another connection, and two jobs with different secrets
// never talk (each side names why).
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transport/tcp_transport.h"
#include "transport/tcp_wire.h"
#include "transport/transport_test_util.h"

namespace gasp {
namespace transport {
namespace {

using ::testing::HasSubstr;
using testing::ClosedByPeer;
using testing::RawConnect;
using testing::RawHandshake;
using testing::RawRecvHeader;
using testing::RawSendHeader;
using testing::TestJobSecret;

constexpr uint64_t kMagic = 0x5eed5eed5eed5eedull;

// Rank 0 of a 2-rank job with a registered word holding kMagic; rank 1 is
// only an endpoint blob (its process never connects), so an outsider can
// pose as it.
class HandshakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int r = 0; r < 2; ++r) {
      auto t = CreateTcpTransport(testing::LoopbackOptions(r, 2, absl::Seconds(10)));
      ASSERT_TRUE(t.ok()) << t.status();
      t_.push_back(std::move(*t));
    }
    std::vector<EndpointBlob> blobs = {t_[0]->LocalEndpoint(), t_[1]->LocalEndpoint()};
    for (auto& t : t_) ASSERT_TRUE(t->Connect(blobs).ok());
    blob0_ = blobs[0];
    session1_ = tcp::DecodeEndpoint(blobs[1])->nonce;
    auto reg = t_[0]->Register(&word_, sizeof(word_), kRemoteAll);
    ASSERT_TRUE(reg.ok());
    rkey_ = reg->rkey.packed;
  }
  void TearDown() override {
    for (auto& t : t_) (void)t->Shutdown(absl::Now() + absl::Seconds(5));
  }

  tcp::FrameHeader ReadReq() const {
    tcp::FrameHeader h;
    h.type = tcp::FrameType::kReadReq;
    h.req_id = 77;
    h.remote_addr = reinterpret_cast<uint64_t>(&word_);
    h.rkey = rkey_;
    h.operand = sizeof(word_);
    return h;
  }

  // Sends a READ of the word and returns true when it came back with the
  // right value.
  bool ReadServed(int fd) {
    if (!RawSendHeader(fd, ReadReq())) return false;
    tcp::FrameHeader r;
    if (!RawRecvHeader(fd, &r) || r.type != tcp::FrameType::kReadResp || r.status != 0 ||
        r.length != sizeof(uint64_t)) {
      return false;
    }
    uint64_t v = 0;
    return recv(fd, &v, sizeof(v), MSG_WAITALL) == sizeof(v) && v == kMagic;
  }

  std::vector<std::unique_ptr<Transport>> t_;
  EndpointBlob blob0_;
  uint64_t session1_ = 0;
  uint64_t word_ = kMagic;
  uint64_t rkey_ = 0;
};

// The positive control: the raw client is right, so the refusals below are
// the handshake's doing.
TEST_F(HandshakeTest, HolderOfTheSecretIsServed) {
  const int fd = RawConnect(blob0_);
  ASSERT_GE(fd, 0);
  tcp::HandshakeTranscript t;
  bool acceptor_ok = false;
  ASSERT_TRUE(RawHandshake(fd, 1, 2, session1_, 0, TestJobSecret(), true, &t, &acceptor_ok));
  EXPECT_TRUE(acceptor_ok) << "the acceptor's PROOF must check out with the job secret";
  EXPECT_TRUE(ReadServed(fd));
  close(fd);
}

TEST_F(HandshakeTest, WrongSecretIsRefusedAndCannotCheckTheAcceptor) {
  const int fd = RawConnect(blob0_);
  ASSERT_GE(fd, 0);
  tcp::HandshakeTranscript t;
  bool acceptor_ok = true;
  const std::string wrong(32, 'w');
  ASSERT_TRUE(RawHandshake(fd, 1, 2, session1_, 0, wrong, true, &t, &acceptor_ok));
  EXPECT_FALSE(acceptor_ok);
  EXPECT_FALSE(ReadServed(fd));
  EXPECT_TRUE(ClosedByPeer(fd));
  close(fd);
  EXPECT_EQ(word_, kMagic);
}

// A PROOF recorded on one connection, replayed on another: refused there,
// while it still opens the connection it was made for.
TEST_F(HandshakeTest, ReplayedProofIsRefused) {
  const int a = RawConnect(blob0_);
  const int b = RawConnect(blob0_);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  tcp::HandshakeTranscript ta, tb;
  bool ok_a = false, ok_b = false;
  ASSERT_TRUE(RawHandshake(a, 1, 2, session1_, 0, TestJobSecret(), false, &ta, &ok_a));
  ASSERT_TRUE(RawHandshake(b, 1, 2, session1_, 0, TestJobSecret(), false, &tb, &ok_b));
  EXPECT_NE(ta.acceptor_nonce, tb.acceptor_nonce) << "every connection gets a fresh nonce";
  const absl::Span<const uint8_t> key(reinterpret_cast<const uint8_t*>(TestJobSecret().data()),
                                      TestJobSecret().size());
  const tcp::FrameHeader proof_a = tcp::ProofFrame(tcp::HandshakeMac(key, false, ta));
  ASSERT_TRUE(RawSendHeader(b, proof_a));
  EXPECT_FALSE(ReadServed(b));
  EXPECT_TRUE(ClosedByPeer(b));
  ASSERT_TRUE(RawSendHeader(a, proof_a));
  EXPECT_TRUE(ReadServed(a));
  close(a);
  close(b);
}

// The acceptor's PROOF replayed as the connector's (reflection): refused.
TEST_F(HandshakeTest, ReflectedProofIsRefused) {
  const int fd = RawConnect(blob0_);
  ASSERT_GE(fd, 0);
  tcp::HandshakeTranscript t;
  bool ok = false;
  ASSERT_TRUE(RawHandshake(fd, 1, 2, session1_, 0, TestJobSecret(), false, &t, &ok));
  const absl::Span<const uint8_t> key(reinterpret_cast<const uint8_t*>(TestJobSecret().data()),
                                      TestJobSecret().size());
  ASSERT_TRUE(RawSendHeader(fd, tcp::ProofFrame(tcp::HandshakeMac(key, true, t))));
  EXPECT_FALSE(ReadServed(fd));
  EXPECT_TRUE(ClosedByPeer(fd));
  close(fd);
}

// Strangers crowding a rank's port from the address another rank dials
// from (an outsider on the same host or behind the same NAT): the accept
// guard refuses that rank's first connection while they are pending, and
// the rank tries again until they are closed (no HELLO within 1 s) instead
// of declaring the peer lost.
TEST_F(HandshakeTest, FirstDialOutlastsStrangersCrowdingItsAddress) {
  // Shared with the handler, which may outlive this body (until TearDown).
  struct Lost {
    std::mutex mu;
    std::string why;
  };
  auto lost = std::make_shared<Lost>();
  t_[1]->SetPeerFailureHandler([lost](int, const absl::Status& s) {
    std::lock_guard<std::mutex> l(lost->mu);
    lost->why = std::string(s.message());
  });
  std::vector<int> idle;
  for (int i = 0; i < 32; ++i) {  // the guard's quota per address
    idle.push_back(RawConnect(blob0_));
    ASSERT_GE(idle.back(), 0);
  }
  // The quota is full: one more from this address is closed at once, not
  // after the second a pending stranger is given.
  const absl::Time start = absl::Now();
  const int extra = RawConnect(blob0_);
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(ClosedByPeer(extra));
  close(extra);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(800));
  uint64_t v = 0;
  CompletionCounter counter;
  absl::Status s = testing::PostAndWait(
      *t_[1], {testing::ReadOp(0, &v, sizeof(v), reinterpret_cast<uint64_t>(&word_),
                               RemoteKey{rkey_})},
      &counter);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(counter.first_error(), CompletionCode::kSuccess);
  EXPECT_EQ(v, kMagic);
  {
    std::lock_guard<std::mutex> l(lost->mu);
    EXPECT_EQ(lost->why, "");
  }
  for (int fd : idle) close(fd);
}

// Two jobs that found each other's addresses (a stale blob, a reused
// port): their secrets differ, so neither serves the other, and the
// connector's error says why.
TEST(HandshakeJobsTest, AnotherJobsRankIsNeverServed) {
  std::vector<std::unique_ptr<Transport>> t;
  for (int r = 0; r < 2; ++r) {
    TransportOptions o = testing::LoopbackOptions(r, 2, absl::Seconds(3));
    if (r == 1) o.job_secret = std::string(32, 'o');  // the other job
    auto created = CreateTcpTransport(o);
    ASSERT_TRUE(created.ok()) << created.status();
    t.push_back(std::move(*created));
  }
  std::vector<EndpointBlob> blobs = {t[0]->LocalEndpoint(), t[1]->LocalEndpoint()};
  for (auto& x : t) ASSERT_TRUE(x->Connect(blobs).ok());
  // std::mutex, not absl::Mutex: Debian's libabsl is not built for TSan.
  std::mutex mu;
  std::string why;
  t[0]->SetPeerFailureHandler([&](int, const absl::Status& s) {
    std::lock_guard<std::mutex> l(mu);
    why = std::string(s.message());
  });
  uint64_t word = kMagic, v = 0;
  auto reg = t[1]->Register(&word, sizeof(word), kRemoteAll);
  ASSERT_TRUE(reg.ok());
  CompletionCounter counter;
  absl::Status s = testing::PostAndWait(
      *t[0], {testing::ReadOp(1, &v, 8, testing::Addr(&word), reg->rkey)}, &counter);
  EXPECT_EQ(counter.first_error(), CompletionCode::kPeerUnreachable) << s;
  EXPECT_EQ(v, 0u);
  // The failure handler runs on the progress thread, after the op failed.
  std::string seen;
  for (int i = 0; i < 2000 && seen.empty(); ++i) {
    {
      std::lock_guard<std::mutex> l(mu);
      seen = why;
    }
    if (seen.empty()) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(seen, HasSubstr("does not know this job's secret"));
  for (auto& x : t) (void)x->Shutdown(absl::Now() + absl::Seconds(5));
}

TEST(HandshakeJobsTest, TransportWithoutASecretIsRefused) {
  TransportOptions o = testing::LoopbackOptions(0, 1, absl::Seconds(3));
  o.job_secret.clear();
  auto created = CreateTcpTransport(o);
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(), HasSubstr("needs the job secret"));
}

}  // namespace
}  // namespace transport
}  // namespace gasp

// The home side of packed diffs refuses, writing nothing, what a NIC would
// refuse for a WRITE: bytes outside every region registered for remote
// writes, or a key that is not the region's. A message with one bad record
// among good ones writes none of them.
#include "consistency/diff_service.h"

#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace gasp {
namespace consistency {
namespace {

constexpr uint64_t kBase = 0x300000000000ull;
constexpr uint64_t kPages = 16;
constexpr uint64_t kKey = 0xabcdef;

class DiffServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = gas::GlobalRange::Reserve(kBase, kPages * 4096);
    ASSERT_TRUE(r.ok()) << r.status();
    range_ = std::move(*r);
    std::memset(range_->sys(0), 0x55, kPages * 4096);
    service_ = std::make_unique<DiffService>(range_.get(), nullptr, 0);  // Apply only
    service_->AcceptWrites(4 * 4096, 4 * 4096, kKey);                  // pages 4..7
  }

  // A message writing `len` bytes of 0xEE at each offset, under `key`.
  std::vector<uint8_t> Message(uint64_t key, std::vector<uint64_t> offsets, uint32_t len = 8) {
    std::vector<uint8_t> page(4096, 0xEE);
    DiffWriter w;
    w.Start(1, key);
    for (uint64_t off : offsets) {
      const DiffRun run{static_cast<uint32_t>(off % 4096), len};
      w.AddPage(off - off % 4096, page.data(), absl::MakeConstSpan(&run, 1));
    }
    auto m = w.Finish();
    return std::vector<uint8_t>(m.begin(), m.end());
  }

  bool Untouched() const {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(range_->sys(0));
    for (uint64_t i = 0; i < kPages * 4096; ++i) {
      if (p[i] != 0x55) return false;
    }
    return true;
  }

  std::unique_ptr<gas::GlobalRange> range_;
  std::unique_ptr<DiffService> service_;
};

TEST_F(DiffServiceTest, AppliesRecordsInsideARegisteredRegion) {
  ASSERT_TRUE(service_->Apply(1, Message(kKey, {4 * 4096 + 16, 7 * 4096 + 4088})).ok());
  const uint8_t* p = reinterpret_cast<const uint8_t*>(range_->sys(0));
  EXPECT_EQ(p[4 * 4096 + 16], 0xEE);
  EXPECT_EQ(p[4 * 4096 + 23], 0xEE);
  EXPECT_EQ(p[4 * 4096 + 24], 0x55);  // the byte after the run is left alone
  EXPECT_EQ(p[7 * 4096 + 4095], 0xEE);
}

TEST_F(DiffServiceTest, RefusesAnotherKeyAndWritesNothing) {
  absl::Status s = service_->Apply(1, Message(kKey + 1, {4 * 4096}));
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_TRUE(Untouched());
}

TEST_F(DiffServiceTest, RefusesBytesOutsideTheRegionAndWritesNothing) {
  // One good record, then one on page 8 (not registered): neither is written.
  absl::Status s = service_->Apply(2, Message(kKey, {5 * 4096, 8 * 4096}));
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_NE(std::string(s.message()).find("rank 2"), std::string::npos) << s;
  EXPECT_TRUE(Untouched());
  EXPECT_FALSE(service_->Apply(2, Message(kKey, {3 * 4096 + 4090}, 6)).ok());  // page 3
  EXPECT_TRUE(Untouched());
}

TEST_F(DiffServiceTest, RefusesMalformedBytesAndWritesNothing) {
  std::vector<uint8_t> m = Message(kKey, {4 * 4096});
  m.pop_back();  // truncated
  EXPECT_FALSE(service_->Apply(1, m).ok());
  const uint8_t garbage[40] = {1, 2, 3};
  EXPECT_FALSE(service_->Apply(1, garbage).ok());
  EXPECT_TRUE(Untouched());
}

}  // namespace
}  // namespace consistency
}  // namespace gasp

// Fuzz target for the rank record decoder (boot/endpoint_exchange.h), the
// one decoder of bytes that other ranks send through the bootstrap, and for
// ExchangeRecords' error paths (a fake bootstrap delivers the input split
// into per-rank blobs).
//
// Checks, besides "no crash": an accepted record stays within its limits
// and re-encodes to bytes that decode to the same record.
//
// libFuzzer: bazel build --config=fuzz //boot:endpoint_exchange_fuzzer
// Test suite: //boot:endpoint_exchange_fuzz_test.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "boot/endpoint_exchange.h"

namespace {

using gasp::boot::Bootstrap;
using gasp::boot::DecodeRankRecord;
using gasp::boot::JobFailureHandler;
using gasp::boot::RankRecord;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "endpoint_exchange_fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

// Hands out pre-split blobs as the allgather result.
class FakeBootstrap : public Bootstrap {
 public:
  explicit FakeBootstrap(std::vector<std::string> blobs) : blobs_(std::move(blobs)) {}
  int rank() const override { return 0; }
  int size() const override { return static_cast<int>(blobs_.size()); }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string method() const override { return "fake"; }
  absl::StatusOr<std::vector<std::string>> Allgather(absl::string_view, absl::Time) override {
    return blobs_;
  }
  absl::Status Barrier(absl::Time) override { return absl::OkStatus(); }
  [[noreturn]] void Abort(int, absl::string_view) override { std::abort(); }
  std::string LocalAddressHint() const override { return ""; }
  void SetJobFailureHandler(JobFailureHandler) override {}
  absl::Status Finalize(absl::Time) override { return absl::OkStatus(); }

 private:
  std::vector<std::string> blobs_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<RankRecord> rec = DecodeRankRecord(in);
  if (rec.ok()) {
    Check(size <= gasp::boot::kMaxRankRecordBytes, "accepted size");
    Check(rec->host().size() <= gasp::boot::kRankRecordHostBytes, "host bounded");
    Check(rec->transport_blob().size() <= gasp::boot::kRankRecordBlobBytes, "blob bounded");
    Check(rec->rank() >= 0, "rank not negative");
    const std::string again = rec->SerializeAsString();
    absl::StatusOr<RankRecord> rec2 = DecodeRankRecord(again);
    Check(rec2.ok(), "re-encoded record decodes");
    Check(rec2->SerializeAsString() == again, "round trip keeps the fields");
  }
  // ExchangeRecords over 1..4 ranks: the first byte picks how many, the
  // rest is cut into equal pieces; record 0 is made valid so that the
  // other ranks' records are looked at.
  if (size >= 1) {
    int n = 1 + data[0] % 4;
    absl::string_view rest = in.substr(1);
    std::vector<std::string> blobs;
    size_t piece = rest.size() / n;
    RankRecord mine = gasp::boot::MakeRankRecord(0, "blob");
    blobs.push_back(mine.SerializeAsString());
    for (int i = 1; i < n; ++i) blobs.emplace_back(rest.substr((i - 1) * piece, piece));
    FakeBootstrap fake(std::move(blobs));
    absl::StatusOr<std::vector<RankRecord>> all =
        gasp::boot::ExchangeRecords(fake, mine, absl::InfiniteFuture());
    if (all.ok()) Check(static_cast<int>(all->size()) == n, "one record per rank");
  }
  return 0;
}

extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  for (int rank = 0; rank < 3; ++rank) {
    RankRecord r = gasp::boot::MakeRankRecord(rank, "tcp 10.0.0.1:4000");
    r.set_heap_key(0x1122334455667788ull);
    r.set_range_base(uint64_t{1} << 40);
    r.set_range_bytes(uint64_t{1} << 36);
    std::string b = r.SerializeAsString();
    add(ctx, reinterpret_cast<const uint8_t*>(b.data()), b.size());
    // As an ExchangeRecords input: 2 ranks, rank 1's record.
    RankRecord r1 = gasp::boot::MakeRankRecord(1, "x");
    std::string two = std::string(1, '\x01') + r1.SerializeAsString();
    add(ctx, reinterpret_cast<const uint8_t*>(two.data()), two.size());
  }
  RankRecord v3 = gasp::boot::MakeRankRecord(1, "");
  v3.set_version(3);
  std::string b = v3.SerializeAsString();
  add(ctx, reinterpret_cast<const uint8_t*>(b.data()), b.size());
}

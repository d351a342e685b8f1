// Fuzz target for the rank record decoder (boot/endpoint_exchange.h), the
// one decoder of bytes that other ranks send through the bootstrap, and for
// ExchangeRecords' error paths (a fake bootstrap delivers the input split
// into per-rank blobs).
//
// Checks, besides "no crash": an accepted record re-encodes to a record
// that decodes to the same fields.
//
// libFuzzer: bazel build --config=fuzz //boot:endpoint_exchange_fuzzer
// Test suite: //boot:endpoint_exchange_fuzz_test.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "boot/endpoint_exchange.h"

namespace {

using gasp::boot::Bootstrap;
using gasp::boot::DecodeRankRecord;
using gasp::boot::EncodeRankRecord;
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
    Check(size == gasp::boot::kRankRecordBytes, "accepted size");
    Check(std::memchr(rec->host, '\0', sizeof(rec->host)) != nullptr, "host terminated");
    std::string again = EncodeRankRecord(*rec);
    absl::StatusOr<RankRecord> rec2 = DecodeRankRecord(again);
    Check(rec2.ok(), "re-encoded record decodes");
    Check(rec2->rank == rec->rank && rec2->pid == rec->pid &&
              std::strcmp(rec2->host, rec->host) == 0 &&
              std::memcmp(rec2->transport_blob, rec->transport_blob, sizeof(rec->transport_blob)) ==
                  0 &&
              std::memcmp(rec2->extra, rec->extra, sizeof(rec->extra)) == 0,
          "round trip keeps the fields");
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
    blobs.push_back(EncodeRankRecord(mine));
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
    r.extra[1] = 0x1122334455667788ull;
    std::string b = EncodeRankRecord(r);
    add(ctx, reinterpret_cast<const uint8_t*>(b.data()), b.size());
    // As an ExchangeRecords input: 2 ranks, rank 1's record.
    RankRecord r1 = gasp::boot::MakeRankRecord(1, "x");
    std::string two = std::string(1, '\x01') + EncodeRankRecord(r1);
    add(ctx, reinterpret_cast<const uint8_t*>(two.data()), two.size());
  }
  RankRecord v2 = gasp::boot::MakeRankRecord(1, "");
  v2.version = 2;
  std::string b = EncodeRankRecord(v2);
  add(ctx, reinterpret_cast<const uint8_t*>(b.data()), b.size());
}

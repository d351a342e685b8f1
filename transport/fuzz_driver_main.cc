// Runs a libFuzzer-style target (LLVMFuzzerTestOneInput) without libFuzzer,
// so every fuzz target also runs as an ordinary, deterministic test:
//   * each seed from GaspFuzzSeeds(),
//   * then N inputs (default 200000, or argv[1], or GASP_FUZZ_ITERATIONS)
//     made from a fixed-seed PRNG: random bytes, bit flips, byte
//     overwrites with boundary values, truncations, splices of seeds.
// Any invariant the target checks aborts the process (the test fails);
// ASan/UBSan builds catch out-of-bounds accesses on top of that.
// Files named on the command line (not numbers) are replayed instead, to
// reproduce a crash found by the libFuzzer build.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
std::vector<std::vector<uint8_t>> GaspFuzzSeeds();

namespace {

void Run(const std::vector<uint8_t>& input) {
  // Copy into an exactly-sized heap block so ASan sees any overread.
  std::vector<uint8_t> exact(input);
  exact.shrink_to_fit();
  LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
}

std::vector<uint8_t> Mutate(const std::vector<std::vector<uint8_t>>& seeds, std::mt19937_64& rng) {
  const auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  std::vector<uint8_t> out;
  switch (pick(6)) {
    case 0: {  // random bytes
      out.resize(pick(200));
      for (auto& b : out) b = static_cast<uint8_t>(rng());
      return out;
    }
    case 1: {  // splice two seeds
      const auto& a = seeds[pick(seeds.size())];
      const auto& b = seeds[pick(seeds.size())];
      out.assign(a.begin(), a.begin() + static_cast<long>(a.empty() ? 0 : pick(a.size() + 1)));
      out.insert(out.end(), b.begin(), b.end());
      break;
    }
    default:
      out = seeds[pick(seeds.size())];
      break;
  }
  const int edits = 1 + static_cast<int>(pick(4));
  for (int i = 0; i < edits && !out.empty(); ++i) {
    const size_t at = pick(out.size());
    switch (pick(5)) {
      case 0: out[at] ^= static_cast<uint8_t>(1u << pick(8)); break;
      case 1: out[at] = static_cast<uint8_t>(rng()); break;
      case 2: {
        static const uint8_t kBoundary[] = {0x00, 0x01, 0x07, 0x08, 0x3f, 0x40,
                                            0x7f, 0x80, 0xfe, 0xff};
        out[at] = kBoundary[pick(sizeof(kBoundary))];
        break;
      }
      case 3: out.resize(at); break;  // truncate
      case 4: {                       // overwrite 4 bytes with a little-endian boundary value
        static const uint32_t kValues[] = {0, 1, 8, 0x40000000u, 0x40000001u, 0x04000000u,
                                           0x04000001u, 0xffffffffu};
        const uint32_t v = kValues[pick(sizeof(kValues) / sizeof(kValues[0]))];
        for (int k = 0; k < 4 && at + k < out.size(); ++k) out[at + k] = static_cast<uint8_t>(v >> (8 * k));
        break;
      }
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 200000;
  if (const char* env = std::getenv("GASP_FUZZ_ITERATIONS")) iterations = std::atol(env);
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    char* end = nullptr;
    const long n = std::strtol(argv[i], &end, 10);
    if (end != argv[i] && *end == '\0') {
      iterations = n;
    } else {
      files.push_back(argv[i]);
    }
  }
  if (!files.empty()) {
    for (const std::string& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "cannot read %s\n", f.c_str());
        return 2;
      }
      Run(std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {}));
    }
    std::printf("replayed %zu input(s)\n", files.size());
    return 0;
  }
  const std::vector<std::vector<uint8_t>> seeds = GaspFuzzSeeds();
  for (const auto& s : seeds) Run(s);
  std::mt19937_64 rng(0x6761737066757a7aull);  // fixed: failures reproduce
  for (long i = 0; i < iterations; ++i) Run(Mutate(seeds, rng));
  std::printf("fuzz driver: %zu seeds + %ld mutated inputs, no failure\n", seeds.size(), iterations);
  return 0;
}

// Standalone driver for libFuzzer-style targets, so that every fuzz target
// also runs in the normal test suite (no clang, no -fsanitize=fuzzer).
// Used by gasp_fuzz_target() in base/testing/fuzz.bzl for <name>_fuzz_test,
// and for <name>_fuzzer outside --config=fuzz.
//
//   fuzz_test                 seeds + GASP_FUZZ_ITERATIONS (default 200000)
//                             inputs mutated from them or random, fixed
//                             GASP_FUZZ_SEED (default below): reproducible
//   fuzz_test FILE|DIR...     runs exactly those inputs (crash reproduction,
//                             libFuzzer corpora); -flags are ignored
//
// The target defines LLVMFuzzerTestOneInput and may define
//
//   extern "C" void GaspFuzzSeeds(
//       void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx);
//
// calling add(ctx, data, size) once per well-formed seed input (mutations of
// valid frames reach much deeper than random bytes). A finding is a crash
// (sanitizer report or abort()), which fails the test. No coverage feedback:
// this is a regression net, the real exploration is
// `bazel build --config=fuzz` + libFuzzer (which ignores GaspFuzzSeeds).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);
// Optional: calls add(ctx, bytes, size) once per seed input.
extern "C" __attribute__((weak)) void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data,
                                                                size_t size),
                                                    void* ctx);

namespace {

using Bytes = std::vector<uint8_t>;

void Run(const Bytes& in) {
  // Copy into an exactly-sized heap buffer so that ASan catches reads past
  // the end (a vector's capacity may be larger than its size).
  uint8_t* buf = new uint8_t[in.size() == 0 ? 1 : in.size()];
  if (!in.empty()) std::memcpy(buf, in.data(), in.size());
  LLVMFuzzerTestOneInput(in.empty() ? nullptr : buf, in.size());
  delete[] buf;
}

bool ReadFile(const std::string& path, Bytes* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

int RunPaths(int argc, char** argv) {
  int n = 0;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;  // libFuzzer flags: ignored here
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      std::fprintf(stderr, "fuzz driver: cannot read %s\n", argv[i]);
      return 1;
    }
    std::vector<std::string> files;
    if (S_ISDIR(st.st_mode)) {
      DIR* d = opendir(argv[i]);
      if (d == nullptr) return 1;
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        files.push_back(std::string(argv[i]) + "/" + e->d_name);
      }
      closedir(d);
    } else {
      files.push_back(argv[i]);
    }
    for (const std::string& path : files) {
      Bytes in;
      if (!ReadFile(path, &in)) {
        std::fprintf(stderr, "fuzz driver: cannot read %s\n", path.c_str());
        return 1;
      }
      Run(in);
      ++n;
    }
  }
  std::printf("fuzz driver: ran %d inputs from the command line\n", n);
  return 0;
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t Below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  uint8_t Byte() { return static_cast<uint8_t>(rng_()); }

  Bytes Random() {
    Bytes b(Below(Below(8) == 0 ? 4096 : 256));
    for (uint8_t& x : b) x = Byte();
    return b;
  }

  void Mutate(Bytes* b, const std::vector<Bytes>& corpus) {
    int rounds = 1 + static_cast<int>(Below(4));
    for (int i = 0; i < rounds; ++i) MutateOnce(b, corpus);
  }

 private:
  void PutInteresting(Bytes* b) {
    static const uint64_t kValues[] = {0,
                                       1,
                                       2,
                                       0x7f,
                                       0x80,
                                       0xff,
                                       0x100,
                                       0x7fff,
                                       0x8000,
                                       0xffff,
                                       0x10000,
                                       0x7fffffff,
                                       0x80000000,
                                       0xffffffff,
                                       12,
                                       240,
                                       4096,
                                       1u << 20,
                                       (1u << 20) + 1,
                                       0xffffffffffffffffull,
                                       0x8000000000000000ull};
    if (b->empty()) return;
    uint64_t v = kValues[Below(sizeof(kValues) / sizeof(kValues[0]))];
    size_t width = size_t{1} << Below(4);  // 1, 2, 4, 8 bytes, little-endian
    size_t pos = Below(b->size());
    for (size_t k = 0; k < width && pos + k < b->size(); ++k) (*b)[pos + k] = (v >> (8 * k)) & 0xff;
  }

  void MutateOnce(Bytes* b, const std::vector<Bytes>& corpus) {
    switch (Below(10)) {
      case 0:  // flip a bit
        if (!b->empty()) (*b)[Below(b->size())] ^= static_cast<uint8_t>(1u << Below(8));
        break;
      case 1:  // random byte
        if (!b->empty()) (*b)[Below(b->size())] = Byte();
        break;
      case 2:
      case 3:  // interesting integer (lengths, counts, versions)
        PutInteresting(b);
        break;
      case 4: {  // insert random bytes
        size_t pos = Below(b->size() + 1);
        size_t n = 1 + Below(16);
        Bytes ins(n);
        for (uint8_t& x : ins) x = Byte();
        b->insert(b->begin() + pos, ins.begin(), ins.end());
        break;
      }
      case 5: {  // erase a range
        if (b->empty()) break;
        size_t pos = Below(b->size());
        size_t n = 1 + Below(std::min<size_t>(16, b->size() - pos));
        b->erase(b->begin() + pos, b->begin() + pos + n);
        break;
      }
      case 6:  // truncate
        b->resize(Below(b->size() + 1));
        break;
      case 7: {  // duplicate a range (repeated frames, repeated fields)
        if (b->empty()) break;
        size_t pos = Below(b->size());
        size_t n = 1 + Below(b->size() - pos);
        Bytes dup(b->begin() + pos, b->begin() + pos + n);
        b->insert(b->begin() + Below(b->size() + 1), dup.begin(), dup.end());
        break;
      }
      case 8: {  // splice with another corpus entry
        const Bytes& o = corpus[Below(corpus.size())];
        size_t cut = Below(b->size() + 1);
        size_t from = Below(o.size() + 1);
        b->resize(cut);
        b->insert(b->end(), o.begin() + from, o.end());
        break;
      }
      case 9: {  // append another corpus entry (frame streams)
        const Bytes& o = corpus[Below(corpus.size())];
        b->insert(b->end(), o.begin(), o.end());
        break;
      }
    }
    if (b->size() > (1u << 16)) b->resize(1u << 16);
  }

  std::mt19937_64 rng_;
};

void AddSeed(void* ctx, const uint8_t* data, size_t size) {
  auto* corpus = static_cast<std::vector<Bytes>*>(ctx);
  if (size == 0) {
    corpus->emplace_back();  // data may be null
  } else {
    corpus->emplace_back(data, data + size);
  }
}

uint64_t EnvU64(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return def;
  return std::strtoull(v, nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') return RunPaths(argc, argv);
  }
  const uint64_t iterations = EnvU64("GASP_FUZZ_ITERATIONS", 200000);
  const uint64_t seed = EnvU64("GASP_FUZZ_SEED", 0x6761737066757a7aull);
  auto start = std::chrono::steady_clock::now();

  std::vector<Bytes> corpus;
  corpus.emplace_back();
  if (GaspFuzzSeeds != nullptr) GaspFuzzSeeds(&AddSeed, &corpus);
  const size_t seeds = corpus.size();
  for (const Bytes& s : corpus) Run(s);

  Mutator m(seed);
  for (uint64_t i = 0; i < iterations; ++i) {
    Bytes in;
    if (m.Below(8) == 0) {
      in = m.Random();
    } else {
      in = corpus[m.Below(corpus.size())];
      m.Mutate(&in, corpus);
    }
    Run(in);
    // Keep a few mutants as new parents (diversity without coverage).
    if (m.Below(64) == 0 && corpus.size() < 1024 && in.size() <= 4096) corpus.push_back(in);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz driver: %zu seeds + %" PRIu64 " mutated/random inputs, GASP_FUZZ_SEED=%#" PRIx64
              ", %.1f s, no crash\n",
              seeds, iterations, seed, secs);
  return 0;
}

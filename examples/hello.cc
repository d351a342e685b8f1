// Every rank writes its greeting into a collectively allocated table, then
// every rank reads all of them after a barrier.
#include <cstdio>
#include <cstring>

#include "gasp/gasp.h"

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int me = rt->rank(), n = rt->size();
  struct Greeting {
    char text[64];
  };
  Greeting* table = gasp::CoNewArray<Greeting>(n);  // same address on every rank
  std::snprintf(table[me].text, sizeof(table[me].text), "hello from rank %d of %d", me, n);
  gasp::Barrier();
  int ok = 1;
  for (int r = 0; r < n; ++r) {
    char want[64];
    std::snprintf(want, sizeof(want), "hello from rank %d of %d", r, n);
    if (std::strcmp(table[r].text, want) != 0) ok = 0;
  }
  if (me == 0) {
    for (int r = 0; r < n; ++r) std::printf("%s\n", table[r].text);
  }
  std::printf("rank %d: %s\n", me, ok ? "verified" : "MISMATCH");
  int rc = rt->Finalize();
  return ok ? rc : 1;
}

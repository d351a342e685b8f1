// The check of the multi-rank probes (domain_probe, service_probe): a
// failed EXPECT prints the rank, place, condition and a printf-style
// message, and counts; the probe exits non-zero when ProbeFailures() > 0.
#ifndef GASP_TESTS_PROBE_EXPECT_H_
#define GASP_TESTS_PROBE_EXPECT_H_

#include <cstdio>

#include "gasp/gasp.h"

namespace gasp {
namespace tests {

// Failed EXPECTs so far in this process.
inline int& ProbeFailures() {
  static int failures = 0;
  return failures;
}

}  // namespace tests
}  // namespace gasp

#define EXPECT(cond, ...)                                                                     \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "rank %d: FAIL %s:%d: %s: ", gasp::Rank(), __FILE__, __LINE__,     \
                   #cond);                                                                    \
      std::fprintf(stderr, __VA_ARGS__);                                                      \
      std::fprintf(stderr, "\n");                                                             \
      ++gasp::tests::ProbeFailures();                                                         \
    }                                                                                         \
  } while (0)

#endif  // GASP_TESTS_PROBE_EXPECT_H_

// Test helpers: a fixture per backend, and Faults(), which runs a stray
// access and reports whether the violation callback saw it (the callback
// siglongjmps back).
#ifndef GASP_PROTECT_PROTECT_TEST_UTIL_H_
#define GASP_PROTECT_PROTECT_TEST_UTIL_H_

#include <setjmp.h>
#include <sys/mman.h>

#include <atomic>
#include <memory>

#include "gtest/gtest.h"
#include "protect/cpu_probe.h"
#include "protect/protection.h"

namespace gasp {
namespace protect {
namespace testing {

struct Seen {
  std::atomic<int> count{0};
  Violation last;
};

inline thread_local sigjmp_buf* t_jump = nullptr;

inline bool RecordAndJump(const Violation& v, void* context) {
  Seen* seen = static_cast<Seen*>(context);
  seen->last = v;
  seen->count.fetch_add(1);
  if (t_jump != nullptr) siglongjmp(*t_jump, 1);
  return false;
}

// Runs fn; true when it raised a protection violation (fn is cut short).
template <typename Fn>
bool Faults(Protection* p, Fn fn) {
  sigjmp_buf jb;
  t_jump = &jb;
  if (sigsetjmp(jb, 1) == 0) {
    fn();
    t_jump = nullptr;
    return false;
  }
  t_jump = nullptr;
  p->ResyncThread();  // the handler left the kernel's signal PKRU behind
  return true;
}

inline void Poke(void* addr, int value) { *static_cast<volatile int*>(addr) = value; }
inline int Peek(const void* addr) { return *static_cast<const volatile int*>(addr); }

class Pages {
 public:
  explicit Pages(size_t n) : len_(n * 4096) {
    p_ = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  ~Pages() { munmap(p_, len_); }
  char* at(size_t page) const { return static_cast<char*>(p_) + page * 4096; }
  void* data() const { return p_; }
  size_t size() const { return len_; }

 private:
  size_t len_;
  void* p_;
};

// Parameterized over the concrete backends; pkeys skips without PKU.
class BackendTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    if (GetParam() == BackendKind::kPkeys && !ProbePku().usable()) {
      GTEST_SKIP() << "pkeys backend not testable here: " << ProbePku().reason
                   << " (run tools/vmtest pkeys)";
    }
    ProtectionOptions o;
    o.backend = GetParam();
    o.on_violation = RecordAndJump;
    o.violation_context = &seen_;
    auto p = Protection::Create(o);
    ASSERT_TRUE(p.ok()) << p.status();
    p_ = std::move(p).value();
  }
  void TearDown() override { p_.reset(); }
  bool pkeys() const { return GetParam() == BackendKind::kPkeys; }

  Seen seen_;
  std::unique_ptr<Protection> p_;
};

inline std::string BackendParamName(const ::testing::TestParamInfo<BackendKind>& info) {
  return BackendName(info.param);
}

#define GASP_INSTANTIATE_BACKENDS(suite)                                                    \
  INSTANTIATE_TEST_SUITE_P(Backends, suite,                                                 \
                           ::testing::Values(::gasp::protect::BackendKind::kMprotect,       \
                                             ::gasp::protect::BackendKind::kPkeys),         \
                           ::gasp::protect::testing::BackendParamName)

}  // namespace testing
}  // namespace protect
}  // namespace gasp

#endif  // GASP_PROTECT_PROTECT_TEST_UTIL_H_

// The C API (include/gasp/gasp_c.h): thin calls into the C++ API. Errors of
// the gasp_try_* calls are kept per thread for gasp_error_message().
#include "gasp/gasp_c.h"

#include <atomic>
#include <string>

#include "gasp/gasp.h"

namespace {

thread_local std::string t_error;

int Fail(const gasp::Status& s) {
  t_error = s.ToString();
  return static_cast<int>(s.code());
}

gasp::Placement ToPlacement(gasp_placement placement, int arg) {
  switch (placement) {
    case GASP_PLACE_BLOCK: return gasp::Placement::Block();
    case GASP_PLACE_CYCLIC: return gasp::Placement::Cyclic(arg < 0 ? 0 : static_cast<uint32_t>(arg));
    case GASP_PLACE_RANK: return gasp::Placement::OnRank(arg);
    case GASP_PLACE_FIRST_TOUCH: return gasp::Placement::FirstTouch();
    case GASP_PLACE_DEFAULT: break;
  }
  return gasp::Placement();
}

gasp::ReduceOp ToOp(gasp_reduce_op op) {
  if (op == GASP_MIN) return gasp::ReduceOp::kMin;
  if (op == GASP_MAX) return gasp::ReduceOp::kMax;
  return gasp::ReduceOp::kSum;
}

}  // namespace

extern "C" {

int gasp_init(int* argc, char*** argv) {
  gasp::Result<gasp::Runtime> rt = gasp::Init(argc, argv);
  return rt.ok() ? 0 : Fail(rt.status());
}

int gasp_finalize(void) { return gasp::Runtime().Finalize(); }
const char* gasp_error_message(void) { return t_error.c_str(); }
const char* gasp_version(void) { return gasp::Version(); }
int gasp_rank(void) { return gasp::Rank(); }
int gasp_size(void) { return gasp::Size(); }

void* gasp_coalloc(size_t bytes) { return gasp::CoAlloc(bytes); }

void* gasp_coalloc_placed(size_t bytes, gasp_placement placement, int arg) {
  return gasp::CoAlloc(bytes, ToPlacement(placement, arg));
}

int gasp_try_coalloc(size_t bytes, gasp_placement placement, int arg, void** out) {
  gasp::Result<void*> p = gasp::TryCoAlloc(bytes, ToPlacement(placement, arg));
  *out = p.ok() ? *p : nullptr;
  return p.ok() ? 0 : Fail(p.status());
}

void* gasp_alloc(size_t bytes) { return gasp::Alloc(bytes); }

int gasp_try_alloc(size_t bytes, void** out) {
  gasp::Result<void*> p = gasp::TryAlloc(bytes);
  *out = p.ok() ? *p : nullptr;
  return p.ok() ? 0 : Fail(p.status());
}

void gasp_free(void* p) { gasp::Free(p); }
void gasp_barrier(void) { gasp::Barrier(); }
void gasp_release(void) { gasp::Release(); }
void gasp_acquire(void) { gasp::Acquire(); }

void gasp_allreduce(const double* in, double* out, size_t n, gasp_reduce_op op) {
  gasp::Allreduce(in, out, n, ToOp(op));
}

void* gasp_lock_new_all(void) { return gasp::CoNewLock().word(); }
void* gasp_lock_new(void) { return gasp::NewLock().word(); }
void gasp_lock(void* lock) { gasp::GlobalLock(static_cast<uint64_t*>(lock)).lock(); }
void gasp_unlock(void* lock) { gasp::GlobalLock(static_cast<uint64_t*>(lock)).unlock(); }
int gasp_trylock(void* lock) { return gasp::GlobalLock(static_cast<uint64_t*>(lock)).try_lock(); }

uint64_t gasp_atomic_fetch_add(uint64_t* p, uint64_t value) {
  return gasp::AtomicFetchAdd(p, value);
}
int gasp_atomic_compare_exchange(uint64_t* p, uint64_t* expected, uint64_t desired) {
  return gasp::AtomicCompareExchange(p, expected, desired);
}
uint64_t gasp_atomic_load(uint64_t* p) { return gasp::AtomicLoad(p); }
void gasp_atomic_store(uint64_t* p, uint64_t value) { gasp::AtomicStore(p, value); }

int gasp_is_global(const void* p) { return gasp::IsGlobal(p); }
int gasp_home_of(const void* p) { return gasp::HomeOf(p); }
void gasp_abort(int exit_code, const char* message) {
  gasp::Abort(exit_code, message == nullptr ? "" : message);
}

}  // extern "C"

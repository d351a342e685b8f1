/* The C API: every rank adds to a shared counter under a global lock and
 * with an atomic, and fills its block of a shared array; rank 0 checks all
 * three exactly after a barrier. Build: gaspcc counter_c.c (or link -lgasp). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gasp/gasp_c.h"

struct shared {
  long counter;      /* under the lock */
  uint64_t atomic;   /* by gasp_atomic_fetch_add */
};

int main(int argc, char** argv) {
  if (gasp_init(&argc, &argv) != 0) {
    fprintf(stderr, "gasp_init: %s\n", gasp_error_message());
    return 1;
  }
  const int me = gasp_rank(), n = gasp_size();
  const int iters = argc > 1 ? atoi(argv[1]) : 100;
  const size_t per_rank = 1000;
  struct shared* s = gasp_coalloc(sizeof(struct shared));
  double* x = gasp_coalloc_placed(per_rank * n * sizeof(double), GASP_PLACE_BLOCK, 0);
  void* lock = gasp_lock_new_all();
  for (int i = 0; i < iters; ++i) {
    gasp_lock(lock);
    s->counter += 1; /* plain load and store, made visible by the unlock */
    gasp_unlock(lock);
    gasp_atomic_fetch_add(&s->atomic, 1);
  }
  for (size_t i = 0; i < per_rank; ++i) x[me * per_rank + i] = me + 1.0;
  gasp_barrier();
  double mine = 0, total = 0;
  for (size_t i = 0; i < per_rank; ++i) mine += x[((me + 1) % n) * per_rank + i];
  gasp_allreduce(&mine, &total, 1, GASP_SUM);
  const long want = (long)iters * n;
  const double want_sum = (double)per_rank * n * (n + 1) / 2;
  int ok = s->counter == want && gasp_atomic_load(&s->atomic) == (uint64_t)want && total == want_sum;
  if (me == 0) {
    printf("C API, gasp %s: counter %ld (locked), %lu (atomic), expected %ld; sum %.0f, expected "
           "%.0f: %s\n", gasp_version(), s->counter, (unsigned long)gasp_atomic_load(&s->atomic),
           want, total, want_sum, ok ? "verified" : "MISMATCH");
  }
  int rc = gasp_finalize();
  return ok ? rc : 1;
}

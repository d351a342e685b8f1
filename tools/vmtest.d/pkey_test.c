/* vmtest selftest: x86 memory protection keys (PKU) in the guest.
 * Built on the host with "gcc -O2 -static" by tools/vmtest selftest.
 * Exit 0 = all checks passed, 1 = a check failed, 77 = no PKU (skip).
 * Do not run pkey_set() on a CPU without PKU: glibc executes RDPKRU/WRPKRU
 * unconditionally (SIGILL); pkey_alloc() failing first protects us. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static sigjmp_buf jb;
static volatile sig_atomic_t sig, code, pk;
static void *volatile addr;
static int fails;

static void on_segv(int s, siginfo_t *si, void *u) {
  (void)u;
  sig = s;
  code = si->si_code;
  pk = (int)si->si_pkey;
  addr = si->si_addr;
  siglongjmp(jb, 1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHECK(c, ...)                               \
  do {                                              \
    int ok_ = (c);                                  \
    printf(ok_ ? "PASS: " : "FAIL: ");              \
    printf(__VA_ARGS__);                            \
    printf("\n");                                   \
    if (!ok_) fails++;                              \
  } while (0)

/* Returns 1 if the access faulted. */
static int try_read(volatile int *p, int *out) {
  sig = code = 0;
  pk = -1;
  if (!sigsetjmp(jb, 1)) { *out = *p; return 0; }
  return 1;
}
static int try_write(volatile int *p, int v) {
  sig = code = 0;
  pk = -1;
  if (!sigsetjmp(jb, 1)) { *p = v; return 0; }
  return 1;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000, ps = sysconf(_SC_PAGESIZE);
  setvbuf(stdout, NULL, _IOLBF, 0);
  int key = pkey_alloc(0, 0);
  if (key < 0) {
    printf("SKIP: pkey_alloc: %s (no PKU/OSPKE)\n", strerror(errno));
    return 77;
  }
  printf("pkey_alloc -> %d\n", key);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, NULL);

  volatile int *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  p[0] = 42;
  int v = 0;
  CHECK(pkey_mprotect((void *)p, ps, PROT_READ | PROT_WRITE, key) == 0, "pkey_mprotect");
  CHECK(!try_read(p, &v) && v == 42, "read allowed with access enabled");
  CHECK(pkey_set(key, PKEY_DISABLE_ACCESS) == 0 && pkey_get(key) == PKEY_DISABLE_ACCESS,
        "pkey_set(PKEY_DISABLE_ACCESS)");
  int f = try_read(p, &v);
  CHECK(f && sig == SIGSEGV && code == SEGV_PKUERR && pk == key && addr == (void *)p,
        "read under PKEY_DISABLE_ACCESS faults: SIGSEGV si_code=%d (SEGV_PKUERR=%d) si_pkey=%d (key %d)",
        (int)code, SEGV_PKUERR, (int)pk, key);
  CHECK(pkey_set(key, PKEY_DISABLE_WRITE) == 0, "pkey_set(PKEY_DISABLE_WRITE)");
  CHECK(!try_read(p, &v) && v == 42, "read allowed under PKEY_DISABLE_WRITE");
  f = try_write(p, 7);
  CHECK(f && code == SEGV_PKUERR && pk == key, "write under PKEY_DISABLE_WRITE faults (si_code=%d si_pkey=%d)",
        (int)code, (int)pk);
  CHECK(pkey_set(key, 0) == 0 && !try_write(p, 43) && p[0] == 43, "write allowed after pkey_set(0)");

  /* Informational only: TCG flushes its soft TLB on every WRPKRU. */
  volatile int s = 0;
  double t0 = now();
  for (long i = 0; i < n; i++) { pkey_set(key, (i & 1) ? 0 : PKEY_DISABLE_WRITE); s += p[0]; }
  pkey_set(key, 0);
  double t1 = now();
  for (long i = 0; i < n; i++) { mprotect((void *)p, ps, (i & 1) ? PROT_READ | PROT_WRITE : PROT_READ); s += p[0]; }
  double t2 = now();
  printf("TIMING (emulated, not hardware): %ld WRPKRU toggles %.1f ns each; mprotect toggles %.1f ns each\n",
         n, (t1 - t0) * 1e9 / n, (t2 - t1) * 1e9 / n);

  CHECK(pkey_free(key) == 0, "pkey_free");
  int keys[32], nk = 0;
  while (nk < 32 && (keys[nk] = pkey_alloc(0, 0)) >= 0) nk++;
  CHECK(nk >= 14, "%d protection keys allocatable (want >= 14)", nk);
  while (nk > 0) pkey_free(keys[--nk]);
  return fails ? 1 : 0;
}

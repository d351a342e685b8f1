/* gasp's C API: the core of gasp/gasp.h for C programs, and for Fortran
 * through bind(C) (share/gasp/gasp.f90 declares the interfaces).
 *
 *   if (gasp_init(&argc, &argv) != 0) { fputs(gasp_error_message(), stderr); return 1; }
 *   double* x = gasp_coalloc(n * sizeof(double));    same pointer on every rank
 *   ... plain loads and stores ...
 *   gasp_barrier();                                  release + acquire
 *   return gasp_finalize();
 *
 * The memory model, threads and settings are those of gasp/gasp.h. Errors:
 * gasp_init and the gasp_try_* calls return a gasp status code (0: success;
 * the numbers of gasp::StatusCode) and leave the message for
 * gasp_error_message(); every other call ends the whole job with a message
 * naming the cause, like MPI_ERRORS_ARE_FATAL. */
#ifndef GASP_GASP_C_H_
#define GASP_GASP_C_H_

#include <stddef.h>
#include <stdint.h>

#include "gasp/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the home copies of a collective allocation's pages live (see
 * gasp::Placement). */
typedef enum gasp_placement {
  GASP_PLACE_DEFAULT = 0,     /* GASP_HOME_POLICY */
  GASP_PLACE_BLOCK = 1,       /* contiguous blocks, one per rank */
  GASP_PLACE_CYCLIC = 2,      /* round robin, `arg` pages per block (0: default) */
  GASP_PLACE_RANK = 3,        /* every page on rank `arg` */
  GASP_PLACE_FIRST_TOUCH = 4  /* the first rank that writes a page */
} gasp_placement;

/* How gasp_allreduce combines values. */
typedef enum gasp_reduce_op { GASP_SUM = 0, GASP_MIN = 1, GASP_MAX = 2 } gasp_reduce_op;

/* Initializes gasp (collective). argc/argv may be NULL (Fortran). Returns 0,
 * or a status code with the reason in gasp_error_message(). */
int gasp_init(int* argc, char*** argv);
/* Collective: releases, waits for every rank, shuts down. Returns 0 on
 * success, 1 otherwise (suitable as main's return value). */
int gasp_finalize(void);
/* The message of the last failed call of this thread ("" if none). */
const char* gasp_error_message(void);
/* The library's version, "1.0.0". */
const char* gasp_version(void);

/* This process's rank and the job size (REQUIRES: gasp_init). */
int gasp_rank(void);
int gasp_size(void);

/* Collective allocation: every rank calls with the same arguments in the
 * same order and gets the same address, zero-filled. Ends the job on
 * failure; gasp_try_coalloc returns a code and stores NULL instead. */
void* gasp_coalloc(size_t bytes);
void* gasp_coalloc_placed(size_t bytes, gasp_placement placement, int arg);
int gasp_try_coalloc(size_t bytes, gasp_placement placement, int arg, void** out);

/* Per-rank allocation from this rank's heap (any rank may read and write
 * it; only this rank frees it). gasp_alloc ends the job on failure. */
void* gasp_alloc(size_t bytes);
int gasp_try_alloc(size_t bytes, void** out);
void gasp_free(void* p);

/* Release, wait for all ranks, acquire. */
void gasp_barrier(void);
/* Make this rank's writes visible / see others' released writes. */
void gasp_release(void);
void gasp_acquire(void);
/* Collective: out[k] = in[0][k] op in[1][k] op ... over ranks, in rank order
 * (the same bits everywhere). 0 < n <= 64; in and out may alias. */
void gasp_allreduce(const double* in, double* out, size_t n, gasp_reduce_op op);

/* Locks: a handle is the address of the lock's global word. lock acquires,
 * unlock releases. gasp_lock_new_all is collective (the same handle on every
 * rank); gasp_lock_new makes one homed at this rank to hand out. */
void* gasp_lock_new_all(void);
void* gasp_lock_new(void);
void gasp_lock(void* lock);
void gasp_unlock(void* lock);
/* 1 if the lock was taken, 0 if someone holds it. */
int gasp_trylock(void* lock);

/* Sequentially consistent atomics on 8-byte aligned global words,
 * executed at the word's home. */
uint64_t gasp_atomic_fetch_add(uint64_t* p, uint64_t value);
/* 1 and *p = desired if *p == *expected; else 0 and *expected = *p. */
int gasp_atomic_compare_exchange(uint64_t* p, uint64_t* expected, uint64_t desired);
uint64_t gasp_atomic_load(uint64_t* p);
void gasp_atomic_store(uint64_t* p, uint64_t value);

/* 1 if p is in the global range. */
int gasp_is_global(const void* p);
/* Home rank of p's page; -1 if not allocated or not yet claimed. */
int gasp_home_of(const void* p);
/* Ends the whole job with `message`; every rank exits non-zero. */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void gasp_abort(int exit_code, const char* message);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* GASP_GASP_C_H_ */

/*
 * Locks around wasi-libc's malloc and stdio, which it builds single-threaded (no locks at all).
 * Green threads switch only at blocking calls and at migration points, but libc's own loops have
 * migration points, so a thread can be switched out in the middle of malloc or printf, and
 * another thread's call would then corrupt the heap or a FILE's buffer. roam cc links with
 * --wrap for each function below (src/build/cc.ts): every caller, libc's own included, comes
 * here. No lock is taken until a second thread exists.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "posix.h"

int roam_multithreaded;

/*
 * Weak references: they do not link pthread.c (and what it pulls in) into a program that never
 * starts a thread, where they are never called.
 */
#pragma weak pthread_mutex_lock
#pragma weak pthread_mutex_trylock
#pragma weak pthread_mutex_unlock

/* ---- the heap: one lock (malloc never calls back into itself) ---- */

static pthread_mutex_t heapLock = PTHREAD_MUTEX_INITIALIZER;

static void lockHeap(void) {
  if (roam_multithreaded) pthread_mutex_lock(&heapLock);
}

static void unlockHeap(void) {
  if (roam_multithreaded) pthread_mutex_unlock(&heapLock);
}

void *__real_malloc(size_t);
void __real_free(void *);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__real_aligned_alloc(size_t, size_t);
int __real_posix_memalign(void **, size_t, size_t);
size_t __real_malloc_usable_size(void *);

void *__wrap_malloc(size_t size) {
  lockHeap();
  void *p = __real_malloc(size);
  unlockHeap();
  return p;
}

void __wrap_free(void *p) {
  lockHeap();
  __real_free(p);
  unlockHeap();
}

void *__wrap_calloc(size_t n, size_t size) {
  lockHeap();
  void *p = __real_calloc(n, size);
  unlockHeap();
  return p;
}

void *__wrap_realloc(void *old, size_t size) {
  lockHeap();
  void *p = __real_realloc(old, size);
  unlockHeap();
  return p;
}

void *__wrap_aligned_alloc(size_t alignment, size_t size) {
  lockHeap();
  void *p = __real_aligned_alloc(alignment, size);
  unlockHeap();
  return p;
}

int __wrap_posix_memalign(void **out, size_t alignment, size_t size) {
  lockHeap();
  int r = __real_posix_memalign(out, alignment, size);
  unlockHeap();
  return r;
}

size_t __wrap_malloc_usable_size(void *p) {
  lockHeap();
  size_t n = __real_malloc_usable_size(p);
  unlockHeap();
  return n;
}

/*
 * ---- stdio: a recursive lock per FILE, as musl has (a thread blocked reading stdin must not
 * stop another from printing) ----
 * The standard streams have their own; other FILEs share 29 by address (no table to search: a
 * loop here would be a migration point where another thread could take the same entry). The list
 * of open FILEs has one more, for fopen, fclose and fflush(NULL).
 */
#define HASHED 29
#define R {{{PTHREAD_MUTEX_RECURSIVE}}}
static pthread_mutex_t fileLocks[3 + HASHED] = {[0 ... 3 + HASHED - 1] = R};
static pthread_mutex_t listLock = R;
#undef R

static pthread_mutex_t *lockOf(FILE *f) {
  if (f == stdin) return &fileLocks[0];
  if (f == stdout) return &fileLocks[1];
  if (f == stderr) return &fileLocks[2];
  return &fileLocks[3 + ((uintptr_t)f >> 4) % HASHED];
}

ROAM_WEAK void flockfile(FILE *f) {
  if (roam_multithreaded) pthread_mutex_lock(lockOf(f));
}

ROAM_WEAK int ftrylockfile(FILE *f) { return roam_multithreaded ? pthread_mutex_trylock(lockOf(f)) : 0; }

ROAM_WEAK void funlockfile(FILE *f) {
  if (roam_multithreaded) pthread_mutex_unlock(lockOf(f));
}

static void lockList(void) {
  if (roam_multithreaded) pthread_mutex_lock(&listLock);
}

static void unlockList(void) {
  if (roam_multithreaded) pthread_mutex_unlock(&listLock);
}

/* A wrapper that holds f's lock around the real call. */
#define LOCKED(type, name, f, params, args)                                                                            \
  type __real_##name params;                                                                                           \
  type __wrap_##name params {                                                                                          \
    flockfile(f);                                                                                                      \
    type r = __real_##name args;                                                                                       \
    funlockfile(f);                                                                                                    \
    return r;                                                                                                          \
  }

LOCKED(int, fgetc, f, (FILE * f), (f))
LOCKED(int, getc, f, (FILE * f), (f))
LOCKED(int, getchar, stdin, (void), ())
LOCKED(char *, fgets, f, (char *s, int n, FILE *f), (s, n, f))
LOCKED(char *, fgetln, f, (FILE * f, size_t *n), (f, n))
LOCKED(size_t, fread, f, (void *p, size_t size, size_t n, FILE *f), (p, size, n, f))
LOCKED(ssize_t, getdelim, f, (char **s, size_t *n, int delim, FILE *f), (s, n, delim, f))
LOCKED(ssize_t, getline, f, (char **s, size_t *n, FILE *f), (s, n, f))
LOCKED(int, ungetc, f, (int c, FILE *f), (c, f))
LOCKED(int, fputc, f, (int c, FILE *f), (c, f))
LOCKED(int, putc, f, (int c, FILE *f), (c, f))
LOCKED(int, putchar, stdout, (int c), (c))
LOCKED(int, fputs, f, (const char *s, FILE *f), (s, f))
LOCKED(int, puts, stdout, (const char *s), (s))
LOCKED(size_t, fwrite, f, (const void *p, size_t size, size_t n, FILE *f), (p, size, n, f))
LOCKED(int, vfprintf, f, (FILE * f, const char *format, va_list ap), (f, format, ap))
LOCKED(int, vfscanf, f, (FILE * f, const char *format, va_list ap), (f, format, ap))
LOCKED(int, fseek, f, (FILE * f, long offset, int whence), (f, offset, whence))
LOCKED(int, fseeko, f, (FILE * f, off_t offset, int whence), (f, offset, whence))
LOCKED(long, ftell, f, (FILE * f), (f))
LOCKED(off_t, ftello, f, (FILE * f), (f))
LOCKED(int, fgetpos, f, (FILE * f, fpos_t *pos), (f, pos))
LOCKED(int, fsetpos, f, (FILE * f, const fpos_t *pos), (f, pos))
LOCKED(int, setvbuf, f, (FILE * f, char *buf, int mode, size_t size), (f, buf, mode, size))
#undef LOCKED

void __real_rewind(FILE *);
void __wrap_rewind(FILE *f) {
  flockfile(f);
  __real_rewind(f);
  funlockfile(f);
}

void __real_perror(const char *);
void __wrap_perror(const char *s) {
  flockfile(stderr);
  __real_perror(s);
  funlockfile(stderr);
}

int __wrap_vfprintf(FILE *, const char *, va_list);
int __wrap_vfscanf(FILE *, const char *, va_list);

int __wrap_vprintf(const char *format, va_list ap) { return __wrap_vfprintf(stdout, format, ap); }
int __wrap_vscanf(const char *format, va_list ap) { return __wrap_vfscanf(stdin, format, ap); }

int __wrap_printf(const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int r = __wrap_vfprintf(stdout, format, ap);
  va_end(ap);
  return r;
}

int __wrap_fprintf(FILE *f, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int r = __wrap_vfprintf(f, format, ap);
  va_end(ap);
  return r;
}

int __wrap_scanf(const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int r = __wrap_vfscanf(stdin, format, ap);
  va_end(ap);
  return r;
}

int __wrap_fscanf(FILE *f, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int r = __wrap_vfscanf(f, format, ap);
  va_end(ap);
  return r;
}

/* The list of open FILEs. */

FILE *__real_fopen(const char *, const char *);
FILE *__wrap_fopen(const char *path, const char *mode) {
  lockList();
  FILE *f = __real_fopen(path, mode);
  unlockList();
  return f;
}

FILE *__real_fdopen(int, const char *);
FILE *__wrap_fdopen(int fd, const char *mode) {
  lockList();
  FILE *f = __real_fdopen(fd, mode);
  unlockList();
  return f;
}

int __real_fclose(FILE *);
int __wrap_fclose(FILE *f) {
  flockfile(f);
  lockList();
  pthread_mutex_t *lock = lockOf(f); /* f is freed by the call */
  int r = __real_fclose(f);
  unlockList();
  if (roam_multithreaded) pthread_mutex_unlock(lock);
  return r;
}

int __real_fflush(FILE *);
int __wrap_fflush(FILE *f) {
  if (f) flockfile(f);
  else lockList();
  int r = __real_fflush(f);
  if (f) funlockfile(f);
  else unlockList();
  return r;
}

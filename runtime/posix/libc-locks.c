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

/* A lock taken only once a program has threads. */
static void hold(pthread_mutex_t *lock) {
  if (roam_multithreaded) pthread_mutex_lock(lock);
}

static void release(pthread_mutex_t *lock) {
  if (roam_multithreaded) pthread_mutex_unlock(lock);
}

/* A wrapper that holds `lock` around the real call. */
#define LOCKED(type, name, lock, params, args)                                                                         \
  type __real_##name params;                                                                                           \
  type __wrap_##name params {                                                                                          \
    hold(lock);                                                                                                        \
    type r = __real_##name args;                                                                                       \
    release(lock);                                                                                                     \
    return r;                                                                                                          \
  }

/* ---- the heap: one lock (malloc never calls back into itself) ---- */

static pthread_mutex_t heapLock = PTHREAD_MUTEX_INITIALIZER;

LOCKED(void *, malloc, &heapLock, (size_t size), (size))
LOCKED(void *, calloc, &heapLock, (size_t n, size_t size), (n, size))
LOCKED(void *, realloc, &heapLock, (void *old, size_t size), (old, size))
LOCKED(void *, aligned_alloc, &heapLock, (size_t alignment, size_t size), (alignment, size))
LOCKED(int, posix_memalign, &heapLock, (void **out, size_t alignment, size_t size), (out, alignment, size))
LOCKED(size_t, malloc_usable_size, &heapLock, (void *p), (p))

void __real_free(void *);
void __wrap_free(void *p) {
  hold(&heapLock);
  __real_free(p);
  release(&heapLock);
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

ROAM_WEAK void flockfile(FILE *f) { hold(lockOf(f)); }

ROAM_WEAK int ftrylockfile(FILE *f) { return roam_multithreaded ? pthread_mutex_trylock(lockOf(f)) : 0; }

ROAM_WEAK void funlockfile(FILE *f) { release(lockOf(f)); }

LOCKED(int, fgetc, lockOf(f), (FILE * f), (f))
LOCKED(int, getc, lockOf(f), (FILE * f), (f))
LOCKED(int, getchar, lockOf(stdin), (void), ())
LOCKED(char *, fgets, lockOf(f), (char *s, int n, FILE *f), (s, n, f))
LOCKED(char *, fgetln, lockOf(f), (FILE * f, size_t *n), (f, n))
LOCKED(size_t, fread, lockOf(f), (void *p, size_t size, size_t n, FILE *f), (p, size, n, f))
LOCKED(ssize_t, getdelim, lockOf(f), (char **s, size_t *n, int delim, FILE *f), (s, n, delim, f))
LOCKED(ssize_t, getline, lockOf(f), (char **s, size_t *n, FILE *f), (s, n, f))
LOCKED(int, ungetc, lockOf(f), (int c, FILE *f), (c, f))
LOCKED(int, fputc, lockOf(f), (int c, FILE *f), (c, f))
LOCKED(int, putc, lockOf(f), (int c, FILE *f), (c, f))
LOCKED(int, putchar, lockOf(stdout), (int c), (c))
LOCKED(int, fputs, lockOf(f), (const char *s, FILE *f), (s, f))
LOCKED(int, puts, lockOf(stdout), (const char *s), (s))
LOCKED(size_t, fwrite, lockOf(f), (const void *p, size_t size, size_t n, FILE *f), (p, size, n, f))
LOCKED(int, vfprintf, lockOf(f), (FILE * f, const char *format, va_list ap), (f, format, ap))
LOCKED(int, vfscanf, lockOf(f), (FILE * f, const char *format, va_list ap), (f, format, ap))
LOCKED(int, fseek, lockOf(f), (FILE * f, long offset, int whence), (f, offset, whence))
LOCKED(int, fseeko, lockOf(f), (FILE * f, off_t offset, int whence), (f, offset, whence))
LOCKED(long, ftell, lockOf(f), (FILE * f), (f))
LOCKED(off_t, ftello, lockOf(f), (FILE * f), (f))
LOCKED(int, fgetpos, lockOf(f), (FILE * f, fpos_t *pos), (f, pos))
LOCKED(int, fsetpos, lockOf(f), (FILE * f, const fpos_t *pos), (f, pos))
LOCKED(int, setvbuf, lockOf(f), (FILE * f, char *buf, int mode, size_t size), (f, buf, mode, size))

void __real_rewind(FILE *);
void __wrap_rewind(FILE *f) {
  hold(lockOf(f));
  __real_rewind(f);
  release(lockOf(f));
}

void __real_perror(const char *);
void __wrap_perror(const char *s) {
  hold(lockOf(stderr));
  __real_perror(s);
  release(lockOf(stderr));
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

/* The list of open FILEs; fflush(NULL) flushes them all. */

LOCKED(FILE *, fopen, &listLock, (const char *path, const char *mode), (path, mode))
LOCKED(FILE *, fdopen, &listLock, (int fd, const char *mode), (fd, mode))
LOCKED(int, fflush, f ? lockOf(f) : &listLock, (FILE * f), (f))

int __real_fclose(FILE *);
int __wrap_fclose(FILE *f) {
  pthread_mutex_t *lock = lockOf(f); /* f is freed by the call */
  hold(lock);
  hold(&listLock);
  int r = __real_fclose(f);
  release(&listLock);
  release(lock);
  return r;
}

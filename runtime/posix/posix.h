/*
 * Internal to runtime/posix/: the POSIX layer `roam cc` links into every program (libroam-posix.a).
 * Every definition is weak, so a program's own fallback of the same name wins at link time.
 */
#ifndef ROAM_POSIX_INTERNAL_H
#define ROAM_POSIX_INTERNAL_H

#define ROAM_WEAK __attribute__((weak))

/*
 * A call the layer cannot provide: sets errno to `error` and, the first time `function` is
 * reported, writes one line to stderr:
 *   roam: <function>() is not available in WebAssembly (<why>); returning -1 with errno <NAME>
 * roam_unsupported returns -1, roam_unsupported_null returns NULL (and says so).
 */
int roam_unsupported(const char *function, const char *why, int error);
void *roam_unsupported_null(const char *function, const char *why, int error);

/* A one-time notice for a call that returns no status (tzset): "roam: <function>() <message>". */
void roam_notice(const char *function, const char *message);

/* Why the calls of a kind fail, one wording for the notices and docs/posix.md. */
#define ROAM_NO_PROCESSES "a WASI guest is one process and cannot start others"
#define ROAM_NO_DYNAMIC_LOADING "there are no shared objects to load"

/* 0 if fd is an open descriptor; otherwise errno is EBADF and the result -1. */
int roam_check_fd(int fd);

/* Set by the first pthread_create and never cleared: until then libc-locks.c takes no locks. */
extern int roam_multithreaded;

#endif

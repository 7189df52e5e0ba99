/*
 * Definitions for the POSIX calls declared in wasi-compat.h, include/pthread.h and
 * include/pwd.h (see there). All are weak: a program's own fallback (jq's mkstemp...) wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "wasi-compat.h"
#include "include/pthread.h"
#include "include/pwd.h"

#define COMPAT __attribute__((weak))

/* ---- what WASI preview 1 cannot do: ENOSYS ---- */

COMPAT int system(const char *command) {
  if (command == NULL) return 0; /* no command processor */
  errno = ENOSYS;
  return -1;
}

COMPAT FILE *popen(const char *command, const char *mode) {
  (void)command;
  (void)mode;
  errno = ENOSYS;
  return NULL;
}

COMPAT int pclose(FILE *stream) {
  (void)stream;
  errno = ENOSYS;
  return -1;
}

/* No temp directory is known to exist. */
COMPAT FILE *tmpfile(void) {
  errno = ENOSYS;
  return NULL;
}

COMPAT char *tmpnam(char *buffer) {
  (void)buffer;
  errno = ENOSYS;
  return NULL;
}

/* ---- what works as in POSIX ---- */

/*
 * realpath over wasi-libc's view of paths: relative to its emulated cwd ("/" at start), absolute
 * ones resolved against the preopened directories. "." and ".." are folded lexically (WASI
 * sandboxes rarely hold symlinks; they are not followed here), then the result must exist.
 */
COMPAT char *realpath(const char *__restrict path, char *__restrict resolved) {
  if (path == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (*path == '\0') {
    errno = ENOENT;
    return NULL;
  }
  char full[PATH_MAX];
  size_t length = 0;
  if (path[0] != '/') {
    if (getcwd(full, sizeof full) == NULL) strcpy(full, "/");
    length = strlen(full);
  }
  /* Append path's components to full, folding "." and "..". */
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 0 || (n == 1 && p[0] == '.')) {
      /* nothing */
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      while (length > 0 && full[length - 1] == '/') length--;
      while (length > 0 && full[length - 1] != '/') length--;
    } else {
      while (length > 0 && full[length - 1] == '/') length--;
      if (length + 1 + n + 1 > sizeof full) {
        errno = ENAMETOOLONG;
        return NULL;
      }
      full[length++] = '/';
      memcpy(full + length, p, n);
      length += n;
    }
    p += n;
  }
  while (length > 1 && full[length - 1] == '/') length--;
  if (length == 0) full[length++] = '/';
  full[length] = '\0';
  struct stat st;
  if (stat(full, &st) != 0) return NULL;
  if (resolved == NULL) return strdup(full);
  return strcpy(resolved, full);
}

/* The template's XXXXXX become random letters; the file is created exclusively, mode 0600. */
COMPAT int mkstemp(char *template_) {
  static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  size_t length = strlen(template_);
  if (length < 6 || memcmp(template_ + length - 6, "XXXXXX", 6) != 0) {
    errno = EINVAL;
    return -1;
  }
  char *x = template_ + length - 6;
  for (int attempt = 0; attempt < 100; attempt++) {
    for (int i = 0; i < 6; i++) x[i] = letters[arc4random_uniform(sizeof letters - 1)];
    int fd = open(template_, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  memcpy(x, "XXXXXX", 6);
  errno = EEXIST;
  return -1;
}

/* ---- what WASI has no notion of: success without effect ---- */

COMPAT int chmod(const char *path, mode_t mode) {
  (void)path;
  (void)mode;
  return 0;
}

COMPAT int fchmod(int fd, mode_t mode) {
  (void)fd;
  (void)mode;
  return 0;
}

COMPAT int fchown(int fd, uid_t owner, gid_t group) {
  (void)fd;
  (void)owner;
  (void)group;
  return 0;
}

COMPAT uid_t geteuid(void) { return 0; }
COMPAT uid_t getuid(void) { return 0; }

COMPAT struct passwd *getpwuid(uid_t uid) {
  (void)uid;
  errno = 0;
  return NULL;
}

COMPAT struct passwd *getpwnam(const char *name) {
  (void)name;
  errno = 0;
  return NULL;
}

/* No timer signal is ever delivered. */
COMPAT unsigned alarm(unsigned seconds) {
  (void)seconds;
  return 0;
}

/* ---- signals over wasi-libc's emulated signal()/raise() ---- */

static int bad_signal(int sig) {
  if (sig <= 0 || sig >= _NSIG) {
    errno = EINVAL;
    return 1;
  }
  return 0;
}

COMPAT int sigemptyset(sigset_t *set) {
  memset(set, 0, sizeof *set);
  return 0;
}

COMPAT int sigfillset(sigset_t *set) {
  memset(set, 0xff, sizeof *set);
  return 0;
}

/* wasi-libc's sigset_t is a single byte: membership is kept modulo 8. Nothing here reads it
 * back to decide anything (sigprocmask and sigaction ignore masks). */
#define SIG_BIT(sig) ((sigset_t)(1u << (((sig) - 1) % 8)))

COMPAT int sigaddset(sigset_t *set, int sig) {
  if (bad_signal(sig)) return -1;
  *set |= SIG_BIT(sig);
  return 0;
}

COMPAT int sigdelset(sigset_t *set, int sig) {
  if (bad_signal(sig)) return -1;
  *set &= (sigset_t)~SIG_BIT(sig);
  return 0;
}

COMPAT int sigismember(const sigset_t *set, int sig) {
  if (bad_signal(sig)) return -1;
  return (*set & SIG_BIT(sig)) != 0;
}

/* No signal arrives asynchronously under WASI, so there is nothing to block. */
COMPAT int sigprocmask(int how, const sigset_t *__restrict set, sigset_t *__restrict old) {
  (void)how;
  (void)set;
  if (old) sigemptyset(old);
  return 0;
}

COMPAT int sigaction(int sig, const struct sigaction *__restrict act, struct sigaction *__restrict old) {
  if (bad_signal(sig)) return -1;
  void (*previous)(int);
  if (act) {
    previous = signal(sig, act->sa_handler);
  } else {
    /* signal() is the only way to read the handler: set and put it back. */
    previous = signal(sig, SIG_DFL);
    if (previous != SIG_ERR) signal(sig, previous);
  }
  if (previous == SIG_ERR) return -1;
  if (old) {
    memset(old, 0, sizeof *old);
    old->sa_handler = previous;
  }
  return 0;
}

/* ---- a single thread's pthreads ---- */

COMPAT int pthread_once(pthread_once_t *once, void (*routine)(void)) {
  if (*once == PTHREAD_ONCE_INIT) {
    *once = 1;
    routine();
  }
  return 0;
}

#define KEYS 64
static const void *key_values[KEYS];
static unsigned char key_used[KEYS];

COMPAT int pthread_key_create(pthread_key_t *key, void (*destructor)(void *)) {
  (void)destructor; /* the only thread ends with the process */
  for (unsigned i = 0; i < KEYS; i++) {
    if (!key_used[i]) {
      key_used[i] = 1;
      key_values[i] = NULL;
      *key = i;
      return 0;
    }
  }
  return EAGAIN;
}

COMPAT int pthread_key_delete(pthread_key_t key) {
  if (key >= KEYS || !key_used[key]) return EINVAL;
  key_used[key] = 0;
  return 0;
}

COMPAT void *pthread_getspecific(pthread_key_t key) {
  return key < KEYS && key_used[key] ? (void *)key_values[key] : NULL;
}

COMPAT int pthread_setspecific(pthread_key_t key, const void *value) {
  if (key >= KEYS || !key_used[key]) return EINVAL;
  key_values[key] = value;
  return 0;
}

#define LOCKED(mutex) ((mutex)->__u.__i[0])

COMPAT int pthread_mutex_init(pthread_mutex_t *mutex, const pthread_mutexattr_t *attr) {
  (void)attr;
  LOCKED(mutex) = 0;
  return 0;
}

COMPAT int pthread_mutex_destroy(pthread_mutex_t *mutex) {
  (void)mutex;
  return 0;
}

COMPAT int pthread_mutex_lock(pthread_mutex_t *mutex) {
  if (LOCKED(mutex)) return EDEADLK; /* one thread: waiting would never end */
  LOCKED(mutex) = 1;
  return 0;
}

COMPAT int pthread_mutex_trylock(pthread_mutex_t *mutex) {
  if (LOCKED(mutex)) return EBUSY;
  LOCKED(mutex) = 1;
  return 0;
}

COMPAT int pthread_mutex_unlock(pthread_mutex_t *mutex) {
  LOCKED(mutex) = 0;
  return 0;
}

/*
 * POSIX functions that programs call and wasi-libc (2022) lacks. Recipes force this header into
 * wasm compiles (-include) so the calls are declared, and link wasi-compat.o, which defines them:
 * - what WASI preview 1 cannot do (processes, tmpfile/tmpnam) fails with ENOSYS, which programs
 *   report as an ordinary error;
 * - mkstemp and realpath work (in preopened directories);
 * - what WASI has no notion of (file owners and modes, user ids, a signal mask, timers that
 *   deliver signals) succeeds without effect, as on a file system that ignores permissions.
 *   sigaction() maps to the emulated signal() (raise() still runs handlers).
 */
#ifndef ROAM_RECIPES_WASI_COMPAT_H
#define ROAM_RECIPES_WASI_COMPAT_H
#ifdef __wasi__
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>

int system(const char *command);
FILE *popen(const char *command, const char *mode);
int pclose(FILE *stream);
int mkstemp(char *template_);
char *realpath(const char *__restrict path, char *__restrict resolved);
int chmod(const char *path, mode_t mode);
int fchmod(int fd, mode_t mode);
int fchown(int fd, uid_t owner, gid_t group);
uid_t geteuid(void);
uid_t getuid(void);
unsigned alarm(unsigned seconds);

/* The POSIX signal API over wasi-libc's emulated signal()/raise(). */
#ifndef SIG_BLOCK
#define __NEED_sigset_t
#include <bits/alltypes.h>
#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2
#define SA_RESTART 0x10000000
struct sigaction {
  void (*sa_handler)(int);
  sigset_t sa_mask;
  int sa_flags;
};
int sigemptyset(sigset_t *set);
int sigfillset(sigset_t *set);
int sigaddset(sigset_t *set, int sig);
int sigdelset(sigset_t *set, int sig);
int sigismember(const sigset_t *set, int sig);
int sigprocmask(int how, const sigset_t *__restrict set, sigset_t *__restrict old);
int sigaction(int sig, const struct sigaction *__restrict act, struct sigaction *__restrict old);
#endif

/* tmpnam() is declared (deprecated) but its buffer size is not. */
#ifndef L_tmpnam
#define L_tmpnam 20
#endif

#endif
#endif

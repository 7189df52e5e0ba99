/*
 * wasi-libc's <signal.h> (signal() and raise() of -lwasi-emulated-signal) plus the POSIX signal
 * API of runtime/posix/signals.c over them: sigaction, masks, pending signals, kill() of itself,
 * alarm/setitimer. Nothing delivers a signal asynchronously yet: raise(), kill(getpid(), ...)
 * and timers expiring in pause()/sigsuspend() do (docs/posix.md).
 */
#include_next <signal.h>

#if defined(_WASI_EMULATED_SIGNAL) && !defined(ROAM_SIGNAL_H)
#define ROAM_SIGNAL_H

#define __NEED_size_t
#define __NEED_pid_t
#define __NEED_uid_t
#define __NEED_sigset_t
#include <bits/alltypes.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2

#define SA_NOCLDSTOP 1
#define SA_NOCLDWAIT 2
#define SA_SIGINFO 4
#define SA_ONSTACK 0x08000000
#define SA_RESTART 0x10000000
#define SA_NODEFER 0x40000000
#define SA_RESETHAND 0x80000000

#define SI_USER 0
#define SI_TIMER (-2)

union sigval {
  int sival_int;
  void *sival_ptr;
};

/* What a SA_SIGINFO handler is told: the signal, SI_USER (raise/kill) or SI_TIMER, and our pid. */
typedef struct {
  int si_signo;
  int si_errno;
  int si_code;
  pid_t si_pid;
  uid_t si_uid;
  int si_status;
  void *si_addr;
  union sigval si_value;
} siginfo_t;

struct sigaction {
  union {
    void (*sa_handler)(int);
    void (*sa_sigaction)(int, siginfo_t *, void *);
  } __sa_handler;
  sigset_t sa_mask;
  int sa_flags;
};
#define sa_handler __sa_handler.sa_handler
#define sa_sigaction __sa_handler.sa_sigaction

int kill(pid_t, int);

int sigemptyset(sigset_t *);
int sigfillset(sigset_t *);
int sigaddset(sigset_t *, int);
int sigdelset(sigset_t *, int);
int sigismember(const sigset_t *, int);

int sigprocmask(int, const sigset_t *__restrict, sigset_t *__restrict);
int pthread_sigmask(int, const sigset_t *__restrict, sigset_t *__restrict);
int sigsuspend(const sigset_t *);
int sigaction(int, const struct sigaction *__restrict, struct sigaction *__restrict);
int sigpending(sigset_t *);

#if defined(_XOPEN_SOURCE) || defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
int siginterrupt(int, int);
#endif

#ifdef __cplusplus
}
#endif

#endif

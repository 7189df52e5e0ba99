/*
 * The POSIX signal API over wasi-libc's emulated signal() and raise() (-lwasi-emulated-signal),
 * which keep one handler per signal and run it, or the default action, when raise() is called.
 *
 * Handlers set with sigaction() are reached through one trampoline registered with signal(); it
 * honours the mask (a blocked signal becomes pending and is delivered when unblocked), sa_mask,
 * SA_NODEFER, SA_RESETHAND and SA_SIGINFO. Signals come from raise(), kill(getpid(), sig) and
 * the real-time interval timer (setitimer, alarm): the host is told its deadline (timer_deadline)
 * and, at the guest's first migration point past it, calls roam_timer_expired, which raises
 * SIGALRM there; in pause() and sigsuspend() the guest waits for it. A plain module (not built
 * by roam build) has no migration points, so there the timer expires only in those two calls.
 * Signals sent from outside are for the host to add.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "posix.h"

#define BIT(sig) (1ULL << ((sig) - 1))
#define UNBLOCKABLE (BIT(SIGKILL) | BIT(SIGSTOP))

static int validSignal(int sig) { return sig >= 1 && sig < _NSIG; }

ROAM_WEAK int sigemptyset(sigset_t *set) {
  *set = 0;
  return 0;
}

ROAM_WEAK int sigfillset(sigset_t *set) {
  *set = ~0ULL;
  return 0;
}

ROAM_WEAK int sigaddset(sigset_t *set, int sig) {
  if (!validSignal(sig)) return errno = EINVAL, -1;
  *set |= BIT(sig);
  return 0;
}

ROAM_WEAK int sigdelset(sigset_t *set, int sig) {
  if (!validSignal(sig)) return errno = EINVAL, -1;
  *set &= ~BIT(sig);
  return 0;
}

ROAM_WEAK int sigismember(const sigset_t *set, int sig) {
  if (!validSignal(sig)) return errno = EINVAL, -1;
  return (*set & BIT(sig)) != 0;
}

/* Per thread once threads exist (pthread.c makes it so); pending signals are per process. */
sigset_t roam_blocked_signals;
static sigset_t pending;
static struct sigaction actions[_NSIG];
/* si_code of the signal being raised: SI_USER, or SI_TIMER while a timer fires. */
static int deliveryCode = SI_USER;

static void trampoline(int sig);

/* The handler in wasi-libc's table; signal() is the only way to read it. */
static void (*installed(int sig))(int) {
  void (*handler)(int) = signal(sig, SIG_DFL);
  if (handler != SIG_ERR) signal(sig, handler);
  return handler;
}

static void deliverPending(void) {
  sigset_t ready;
  while ((ready = pending & ~roam_blocked_signals) != 0) {
    int sig = __builtin_ctzll(ready) + 1;
    pending &= ~BIT(sig);
    raise(sig);
  }
}

static void trampoline(int sig) {
  int code = deliveryCode;
  deliveryCode = SI_USER;
  if (roam_blocked_signals & BIT(sig)) {
    pending |= BIT(sig);
    return;
  }
  struct sigaction action = actions[sig];
  if (action.sa_handler == SIG_DFL) {
    /* The default action is wasi-libc's: terminate, or ignore (SIGCHLD, SIGURG, SIGWINCH...). */
    signal(sig, SIG_DFL);
    raise(sig);
    signal(sig, trampoline);
    return;
  }
  if (action.sa_handler == SIG_IGN) return;
  if (action.sa_flags & SA_RESETHAND) {
    actions[sig].sa_handler = SIG_DFL;
    actions[sig].sa_flags &= ~SA_SIGINFO;
  }
  sigset_t saved = roam_blocked_signals;
  roam_blocked_signals |= action.sa_mask;
  if (!(action.sa_flags & SA_NODEFER)) roam_blocked_signals |= BIT(sig);
  roam_blocked_signals &= ~UNBLOCKABLE;
  if (action.sa_flags & SA_SIGINFO) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = sig;
    info.si_code = code;
    info.si_pid = getpid();
    action.sa_sigaction(sig, &info, NULL);
  } else {
    action.sa_handler(sig);
  }
  roam_blocked_signals = saved;
  deliverPending();
}

/* Raises sig now, or leaves it pending while it is blocked. */
static void deliver(int sig, int code) {
  if (roam_blocked_signals & BIT(sig)) {
    pending |= BIT(sig);
    return;
  }
  deliveryCode = code;
  raise(sig);
  deliveryCode = SI_USER;
}

ROAM_WEAK int sigaction(int sig, const struct sigaction *__restrict act, struct sigaction *__restrict old) {
  if (!validSignal(sig) || (act && (sig == SIGKILL || sig == SIGSTOP))) return errno = EINVAL, -1;
  void (*current)(int) = installed(sig);
  if (old) {
    if (current == trampoline) {
      *old = actions[sig];
    } else {
      memset(old, 0, sizeof *old);
      old->sa_handler = current == SIG_ERR ? SIG_DFL : current;
    }
  }
  if (act) {
    actions[sig] = *act;
    if (act->sa_handler == SIG_IGN) {
      signal(sig, SIG_IGN);
      pending &= ~BIT(sig);
    } else if (act->sa_handler == SIG_DFL && !(roam_blocked_signals & BIT(sig))) {
      signal(sig, SIG_DFL); /* what signal() reports stays SIG_DFL */
    } else {
      signal(sig, trampoline);
    }
  }
  return 0;
}

static int changeMask(int how, const sigset_t *set, sigset_t *old) {
  sigset_t previous = roam_blocked_signals;
  if (set) {
    sigset_t next;
    switch (how) {
    case SIG_BLOCK: next = roam_blocked_signals | *set; break;
    case SIG_UNBLOCK: next = roam_blocked_signals & ~*set; break;
    case SIG_SETMASK: next = *set; break;
    default: return EINVAL;
    }
    next &= ~UNBLOCKABLE;
    /* A newly blocked signal at its default action goes through the trampoline, which defers it. */
    for (int sig = 1; sig < _NSIG; sig++) {
      if ((next & ~roam_blocked_signals & BIT(sig)) && installed(sig) == SIG_DFL) {
        memset(&actions[sig], 0, sizeof actions[sig]);
        actions[sig].sa_handler = SIG_DFL;
        signal(sig, trampoline);
      }
    }
    roam_blocked_signals = next;
  }
  if (old) *old = previous;
  if (set) deliverPending();
  return 0;
}

ROAM_WEAK int sigprocmask(int how, const sigset_t *__restrict set, sigset_t *__restrict old) {
  int error = changeMask(how, set, old);
  return error ? (errno = error, -1) : 0;
}

ROAM_WEAK int pthread_sigmask(int how, const sigset_t *__restrict set, sigset_t *__restrict old) {
  return changeMask(how, set, old);
}

ROAM_WEAK int sigpending(sigset_t *set) {
  *set = pending;
  return 0;
}

ROAM_WEAK int siginterrupt(int sig, int flag) {
  if (!validSignal(sig)) return errno = EINVAL, -1;
  if (flag)
    actions[sig].sa_flags &= ~SA_RESTART;
  else
    actions[sig].sa_flags |= SA_RESTART;
  return 0;
}

/* kill() reaches the guest itself only: it sees no other process. */
ROAM_WEAK int kill(pid_t pid, int sig) {
  if (sig < 0 || sig >= _NSIG) return errno = EINVAL, -1;
  pid_t self = getpid();
  if (pid != self && pid != 0 && pid != -self)
    return roam_unsupported("kill", "a WASI guest sees no other process to signal", ENOSYS);
  if (sig != 0) deliver(sig, SI_USER);
  return 0;
}

/* ---- interval timers, on the guest's monotonic clock ---- */

typedef long long nanoseconds;

static struct {
  int armed;
  nanoseconds deadline;
  nanoseconds interval;
} timers[3];

static const int timerSignals[3] = {SIGALRM, SIGVTALRM, SIGPROF};

__attribute__((import_module("roam_posix"), import_name("timer_deadline"))) uint16_t roam_timer_deadline(int64_t ns);

/* Tells the host when the real-time timer expires next (0: not armed). */
static void announceRealTimer(void) {
  roam_timer_deadline(timers[ITIMER_REAL].armed ? timers[ITIMER_REAL].deadline : 0);
}

static nanoseconds now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (nanoseconds)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static nanoseconds fromTimeval(struct timeval tv) {
  return (nanoseconds)tv.tv_sec * 1000000000LL + (nanoseconds)tv.tv_usec * 1000;
}

static struct timeval toTimeval(nanoseconds ns) {
  struct timeval tv;
  nanoseconds us = (ns + 999) / 1000; /* round up: a running timer never reads as 0 */
  tv.tv_sec = (time_t)(us / 1000000);
  tv.tv_usec = (suseconds_t)(us % 1000000);
  return tv;
}

ROAM_WEAK int getitimer(int which, struct itimerval *value) {
  if (which < 0 || which > 2) return errno = EINVAL, -1;
  nanoseconds left = timers[which].armed ? timers[which].deadline - now() : 0;
  value->it_value = toTimeval(left > 0 ? left : 0); /* overdue: delivery pending, shown as 0 */
  value->it_interval = toTimeval(timers[which].interval);
  return 0;
}

ROAM_WEAK int setitimer(int which, const struct itimerval *__restrict value, struct itimerval *__restrict old) {
  if (which < 0 || which > 2) return errno = EINVAL, -1;
  if (value && (value->it_value.tv_usec < 0 || value->it_value.tv_usec >= 1000000 ||
                value->it_interval.tv_usec < 0 || value->it_interval.tv_usec >= 1000000 ||
                value->it_value.tv_sec < 0 || value->it_interval.tv_sec < 0))
    return errno = EINVAL, -1;
  if (old) getitimer(which, old);
  if (value) {
    nanoseconds first = fromTimeval(value->it_value);
    timers[which].armed = first > 0;
    timers[which].deadline = now() + first;
    timers[which].interval = first > 0 ? fromTimeval(value->it_interval) : 0;
    if (which == ITIMER_REAL) announceRealTimer();
  }
  return 0;
}

ROAM_WEAK unsigned alarm(unsigned seconds) {
  struct itimerval value = {{0, 0}, {(time_t)seconds, 0}};
  struct itimerval old;
  setitimer(ITIMER_REAL, &value, &old);
  return (unsigned)old.it_value.tv_sec + (old.it_value.tv_usec > 0);
}

/* Fires the real-time timer once: re-arms a periodic one, raises SIGALRM. */
static void fireRealTimer(void) {
  if (timers[ITIMER_REAL].interval > 0) {
    nanoseconds t = now();
    while (timers[ITIMER_REAL].deadline <= t) timers[ITIMER_REAL].deadline += timers[ITIMER_REAL].interval;
  } else {
    timers[ITIMER_REAL].armed = 0;
  }
  announceRealTimer();
  deliver(timerSignals[ITIMER_REAL], SI_TIMER);
}

/* Called by the host at a migration point once the announced deadline has passed. */
__attribute__((export_name("roam_timer_expired"))) void roam_timer_expired(void) {
  if (timers[ITIMER_REAL].armed && timers[ITIMER_REAL].deadline <= now()) fireRealTimer();
}

static void sleepUntil(nanoseconds deadline) {
  nanoseconds left;
  while ((left = deadline - now()) > 0) {
    struct timespec ts = {(time_t)(left / 1000000000LL), (long)(left % 1000000000LL)};
    nanosleep(&ts, NULL);
  }
}

/*
 * Waits with `mask` blocked until a signal is handled: a pending one, or SIGALRM from the
 * real-time timer. With neither possible no signal could ever come: fail instead of hanging.
 */
static int waitForSignal(const char *function, sigset_t mask) {
  sigset_t saved = roam_blocked_signals;
  roam_blocked_signals = mask & ~UNBLOCKABLE;
  for (;;) {
    if (pending & ~roam_blocked_signals) {
      deliverPending();
      break;
    }
    if (!timers[ITIMER_REAL].armed || (roam_blocked_signals & BIT(SIGALRM))) {
      roam_blocked_signals = saved;
      return roam_unsupported(function, "no signal can arrive: nothing sends signals to a WebAssembly guest yet",
                              ENOSYS);
    }
    sleepUntil(timers[ITIMER_REAL].deadline);
    int ignored = installed(SIGALRM) == SIG_IGN;
    fireRealTimer(); /* the default action ends the guest here */
    if (!ignored) break;
  }
  roam_blocked_signals = saved;
  deliverPending();
  errno = EINTR;
  return -1;
}

ROAM_WEAK int sigsuspend(const sigset_t *mask) { return waitForSignal("sigsuspend", *mask); }

ROAM_WEAK int pause(void) { return waitForSignal("pause", roam_blocked_signals); }

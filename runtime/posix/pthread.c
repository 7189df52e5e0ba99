/*
 * Green threads (see runtime/include/pthread.h): the engine runs one thread at a time and
 * switches only inside the roam_thread imports below or at a migration point (a loop header,
 * a function's entry or exit). So a load followed by a store with no call or loop between them is
 * atomic here, which is all the synchronisation below relies on; blocking is Drepper's futex
 * scheme over roam_thread.futex_wait/futex_wake, as musl's on Linux.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "posix.h"

#ifndef SEM_VALUE_MAX
#define SEM_VALUE_MAX 0x7fffffff
#endif

#define IMPORT(name) __attribute__((import_module("roam_thread"), import_name(#name)))
/* A new thread that enters roam_thread_start(start) on the stack below stackTop; its frames unwind
 * into buffer. Returns its id, -1 at the thread limit, -2 in a module roam build did not make
 * migratable (which cannot switch threads). */
IMPORT(spawn) int roam_thread_spawn(void *start, void *buffer, unsigned bufferBytes, void *stackTop);
IMPORT(exit) _Noreturn void roam_thread_exit(void);
/* Makes a range of memory per thread: the engine swaps its contents at every switch. */
IMPORT(thread_local) void roam_thread_local(void *address, unsigned bytes);
/* Waits while *address == expected, at most timeoutNs (negative: no limit). */
IMPORT(futex_wait) int roam_futex_wait(volatile int *address, int expected, long long timeoutNs);
IMPORT(futex_wake) int roam_futex_wake(volatile int *address, int count);
IMPORT(yield) void roam_thread_yield(void);

enum { FUTEX_WOKEN = 0, FUTEX_VALUE_CHANGED = 1, FUTEX_TIMED_OUT = 2 };
enum { SPAWN_LIMIT = -1, SPAWN_NOT_MIGRATABLE = -2 };

#define DEFAULT_STACK (256 * 1024)
#define MIN_BUFFER (32 * 1024)
#define MAX_BUFFER (1024 * 1024)

struct __pthread {
  volatile int done; /* futex word: 1 once the thread has ended */
  int detached;
  void *(*start)(void *);
  void *arg;
  void *result;
  void *block; /* what pthread_create allocated (NULL for the main thread and caller-given stacks) */
  size_t stackSize;
  int cancelDisabled;
  volatile int cancelPending;
  volatile int *waitingOn; /* the futex word a cancellation point waits on */
  struct __ptcb *cleanup;
  const void *keys[PTHREAD_KEYS_MAX];
  char name[16];
  struct __pthread *nextDead;
};

static struct __pthread mainThread = {.stackSize = DEFAULT_STACK};
static int liveThreads = 1;
static struct __pthread *dead; /* detached threads that ended: their stacks are freed by others */

static inline int exchange(volatile int *word, int value) { return __atomic_exchange_n(word, value, __ATOMIC_SEQ_CST); }

/* The running thread's record (NULL on the main thread): a per-thread range, so no host call. */
static struct __pthread *currentThread;

ROAM_WEAK pthread_t pthread_self(void) { return currentThread ? currentThread : &mainThread; }

ROAM_WEAK int(pthread_equal)(pthread_t a, pthread_t b) { return a == b; }

static void reapDead(void) {
  while (dead) {
    struct __pthread *thread = dead;
    dead = thread->nextDead;
    free(thread->block);
  }
}

/* Nanoseconds until abstime on clock (at least 0), or -1 for no abstime. */
static long long timeoutNs(const struct timespec *abstime, clockid_t clock) {
  if (!abstime) return -1;
  struct timespec now;
  clock_gettime(clock, &now);
  long long ns = (long long)(abstime->tv_sec - now.tv_sec) * 1000000000LL + (abstime->tv_nsec - now.tv_nsec);
  return ns > 0 ? ns : 0;
}

/* A futex wait at a cancellation point: pthread_cancel wakes it. */
static int cancellableWait(volatile int *word, int expected, long long timeout) {
  struct __pthread *self = pthread_self();
  if (self->cancelPending && !self->cancelDisabled) pthread_exit(PTHREAD_CANCELED);
  self->waitingOn = word;
  int result = roam_futex_wait(word, expected, timeout);
  self->waitingOn = NULL;
  return result;
}

static void actOnCancel(void) {
  struct __pthread *self = pthread_self();
  if (self->cancelPending && !self->cancelDisabled) pthread_exit(PTHREAD_CANCELED);
}

__attribute__((export_name("roam_thread_start"))) void roam_thread_start(struct __pthread *self) {
  currentThread = self;
  pthread_exit(self->start(self->arg));
}

ROAM_WEAK int pthread_create(pthread_t *__restrict thread, const pthread_attr_t *__restrict attr,
                             void *(*start)(void *), void *__restrict arg) {
  static int localsKnown;
  if (!localsKnown) {
    /* wasi-libc has one errno, signals.c one mask: with threads, each gets its own. */
    extern sigset_t roam_blocked_signals;
    roam_thread_local(&errno, sizeof errno);
    roam_thread_local(&roam_blocked_signals, sizeof roam_blocked_signals);
    roam_thread_local(&currentThread, sizeof currentThread);
    localsKnown = 1;
    roam_multithreaded = 1;
  }
  reapDead();
  size_t stackSize = attr && attr->__u.__s[0] ? attr->__u.__s[0] : DEFAULT_STACK;
  void *userStack = attr ? (void *)attr->__u.__s[2] : NULL;
  size_t bufferBytes = stackSize / 2;
  if (bufferBytes < MIN_BUFFER) bufferBytes = MIN_BUFFER;
  if (bufferBytes > MAX_BUFFER) bufferBytes = MAX_BUFFER;
  size_t recordBytes = (sizeof(struct __pthread) + 15) & ~(size_t)15;
  size_t blockBytes = recordBytes + bufferBytes + (userStack ? 0 : stackSize);
  char *block = aligned_alloc(16, (blockBytes + 15) & ~(size_t)15);
  if (!block) return EAGAIN;
  struct __pthread *self = (struct __pthread *)block;
  memset(self, 0, sizeof *self);
  self->start = start;
  self->arg = arg;
  self->block = block;
  self->stackSize = stackSize;
  self->detached = attr && attr->__u.__i[1] == PTHREAD_CREATE_DETACHED;
  char *buffer = block + recordBytes;
  char *stackTop = userStack ? (char *)userStack + stackSize : buffer + bufferBytes + stackSize;
  int id = roam_thread_spawn(self, buffer, bufferBytes, (void *)((uintptr_t)stackTop & ~(uintptr_t)15));
  if (id < 0) {
    free(block);
    if (id == SPAWN_NOT_MIGRATABLE)
      roam_notice("pthread_create", "cannot start a thread: only a module built by roam build can switch threads");
    return EAGAIN;
  }
  liveThreads++;
  *thread = self;
  return 0;
}

ROAM_WEAK _Noreturn void pthread_exit(void *result) {
  struct __pthread *self = pthread_self();
  self->cancelDisabled = 1;
  while (self->cleanup) {
    struct __ptcb *cb = self->cleanup;
    self->cleanup = cb->__next;
    cb->__f(cb->__x);
  }
  extern void roam_run_key_destructors(struct __pthread *);
  roam_run_key_destructors(self);
  if (--liveThreads == 0) exit(0); /* the last thread ends the process as main returning would */
  self->result = result;
  self->done = 1;
  if (self->detached && self->block) {
    self->nextDead = dead;
    dead = self;
  }
  roam_futex_wake(&self->done, INT_MAX);
  roam_thread_exit();
}

static int join(pthread_t thread, void **result, const struct timespec *abstime, int cancellable) {
  if (thread == pthread_self()) return EDEADLK;
  if (thread->detached) return EINVAL;
  while (!thread->done) {
    int ended = cancellable ? cancellableWait(&thread->done, 0, timeoutNs(abstime, CLOCK_REALTIME))
                            : roam_futex_wait(&thread->done, 0, timeoutNs(abstime, CLOCK_REALTIME));
    if (ended == FUTEX_TIMED_OUT && !thread->done) return ETIMEDOUT;
  }
  if (result) *result = thread->result;
  free(thread->block);
  return 0;
}

ROAM_WEAK int pthread_join(pthread_t thread, void **result) { return join(thread, result, NULL, 1); }

ROAM_WEAK int pthread_tryjoin_np(pthread_t thread, void **result) {
  return thread->done ? join(thread, result, NULL, 0) : EBUSY;
}

ROAM_WEAK int pthread_timedjoin_np(pthread_t thread, void **result, const struct timespec *abstime) {
  return join(thread, result, abstime, 1);
}

ROAM_WEAK int pthread_detach(pthread_t thread) {
  if (thread->detached) return EINVAL;
  if (thread->done) {
    free(thread->block);
    return 0;
  }
  thread->detached = 1;
  return 0;
}

ROAM_WEAK int pthread_setcancelstate(int state, int *old) {
  if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE) return EINVAL;
  struct __pthread *self = pthread_self();
  if (old) *old = self->cancelDisabled;
  self->cancelDisabled = state;
  return 0;
}

ROAM_WEAK int pthread_setcanceltype(int type, int *old) {
  /* Cancellation is always deferred: a green thread is only ever stopped at a known point. */
  if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS) return EINVAL;
  if (old) *old = PTHREAD_CANCEL_DEFERRED;
  return 0;
}

ROAM_WEAK void pthread_testcancel(void) { actOnCancel(); }

ROAM_WEAK int pthread_cancel(pthread_t thread) {
  thread->cancelPending = 1;
  if (thread == pthread_self()) actOnCancel();
  else if (thread->waitingOn) roam_futex_wake(thread->waitingOn, INT_MAX);
  return 0;
}

ROAM_WEAK void _pthread_cleanup_push(struct __ptcb *cb, void (*f)(void *), void *x) {
  struct __pthread *self = pthread_self();
  cb->__f = f;
  cb->__x = x;
  cb->__next = self->cleanup;
  self->cleanup = cb;
}

ROAM_WEAK void _pthread_cleanup_pop(struct __ptcb *cb, int run) {
  pthread_self()->cleanup = cb->__next;
  if (run) cb->__f(cb->__x);
}

ROAM_WEAK int pthread_kill(pthread_t thread, int sig) {
  (void)thread;
  /* Signals have no per-thread delivery here: the signal runs its handler on the calling thread. */
  return sig == 0 ? 0 : (raise(sig) == 0 ? 0 : errno);
}

ROAM_WEAK int pthread_getschedparam(pthread_t thread, int *__restrict policy, struct sched_param *__restrict param) {
  (void)thread;
  *policy = SCHED_OTHER;
  param->sched_priority = 0;
  return 0;
}

ROAM_WEAK int pthread_setschedparam(pthread_t thread, int policy, const struct sched_param *param) {
  (void)thread;
  return policy == SCHED_OTHER && param->sched_priority == 0 ? 0 : EPERM;
}

ROAM_WEAK int pthread_setschedprio(pthread_t thread, int priority) {
  (void)thread;
  return priority == 0 ? 0 : EPERM;
}

/* One priority for every policy: all threads get equal turns. */
ROAM_WEAK int sched_get_priority_max(int policy) {
  (void)policy;
  return 0;
}
ROAM_WEAK int sched_get_priority_min(int policy) {
  (void)policy;
  return 0;
}

ROAM_WEAK int sched_yield(void) {
  roam_thread_yield();
  return 0;
}

ROAM_WEAK int pthread_getconcurrency(void) { return 0; }
ROAM_WEAK int pthread_setconcurrency(int level) { return level < 0 ? EINVAL : 0; }
ROAM_WEAK int pthread_getcpuclockid(pthread_t thread, clockid_t *clock) {
  (void)thread;
  (void)clock;
  return ENOENT;
}

ROAM_WEAK int pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  (void)prepare;
  (void)parent;
  (void)child;
  return 0; /* fork() always fails here, so the handlers never run */
}

ROAM_WEAK int pthread_setname_np(pthread_t thread, const char *name) {
  if (strlen(name) >= sizeof thread->name) return ERANGE;
  strcpy(thread->name, name);
  return 0;
}

ROAM_WEAK int pthread_getname_np(pthread_t thread, char *name, size_t size) {
  if (strlen(thread->name) >= size) return ERANGE;
  strcpy(name, thread->name);
  return 0;
}

ROAM_WEAK int pthread_getattr_np(pthread_t thread, pthread_attr_t *attr) {
  memset(attr, 0, sizeof *attr);
  attr->__u.__s[0] = thread->stackSize;
  attr->__u.__i[1] = thread->detached;
  return 0;
}

/* Once: 0 not run, 1 running, 2 done. */
ROAM_WEAK int pthread_once(pthread_once_t *once, void (*routine)(void)) {
  volatile int *state = (volatile int *)once;
  for (;;) {
    int seen = *state;
    if (seen == 2) return 0;
    if (seen == 0) {
      *state = 1;
      routine();
      *state = 2;
      roam_futex_wake(state, INT_MAX);
      return 0;
    }
    roam_futex_wait(state, 1, -1);
  }
}

/* Keys: which are in use and their destructors here; each thread holds its own values. */
static unsigned char keyUsed[PTHREAD_KEYS_MAX];
static void (*keyDestructors[PTHREAD_KEYS_MAX])(void *);

ROAM_WEAK int pthread_key_create(pthread_key_t *key, void (*destructor)(void *)) {
  for (unsigned i = 0; i < PTHREAD_KEYS_MAX; i++) {
    if (!keyUsed[i]) {
      keyUsed[i] = 1;
      keyDestructors[i] = destructor;
      *key = i;
      return 0;
    }
  }
  return EAGAIN;
}

ROAM_WEAK int pthread_key_delete(pthread_key_t key) {
  if (key >= PTHREAD_KEYS_MAX || !keyUsed[key]) return EINVAL;
  keyUsed[key] = 0;
  keyDestructors[key] = NULL;
  return 0;
}

ROAM_WEAK void *pthread_getspecific(pthread_key_t key) {
  return key < PTHREAD_KEYS_MAX ? (void *)pthread_self()->keys[key] : NULL;
}

ROAM_WEAK int pthread_setspecific(pthread_key_t key, const void *value) {
  if (key >= PTHREAD_KEYS_MAX || !keyUsed[key]) return EINVAL;
  pthread_self()->keys[key] = value;
  return 0;
}

void roam_run_key_destructors(struct __pthread *self) {
  for (int round = 0; round < PTHREAD_DESTRUCTOR_ITERATIONS; round++) {
    int ran = 0;
    for (unsigned i = 0; i < PTHREAD_KEYS_MAX; i++) {
      void *value = (void *)self->keys[i];
      if (!value || !keyUsed[i] || !keyDestructors[i]) continue;
      self->keys[i] = NULL;
      keyDestructors[i](value);
      ran = 1;
    }
    if (!ran) return;
  }
}

/* Mutexes: __i[0] type, __vi[1] lock word (0 free, 1 locked, 2 locked with waiters), __i[2] owner, __i[3] depth. */
#define M_TYPE(m) ((m)->__u.__i[0])
#define M_LOCK(m) ((m)->__u.__vi[1])
#define M_OWNER(m) ((m)->__u.__i[2])
#define M_DEPTH(m) ((m)->__u.__i[3])

static int ownerId(void) { return (int)(uintptr_t)pthread_self(); }

ROAM_WEAK int pthread_mutex_init(pthread_mutex_t *__restrict mutex, const pthread_mutexattr_t *__restrict attr) {
  memset(mutex, 0, sizeof *mutex);
  if (attr) M_TYPE(mutex) = attr->__attr & 3;
  return 0;
}

ROAM_WEAK int pthread_mutex_destroy(pthread_mutex_t *mutex) { return M_LOCK(mutex) ? EBUSY : 0; }

ROAM_WEAK int pthread_mutex_trylock(pthread_mutex_t *mutex) {
  int self = ownerId();
  if (M_LOCK(mutex) == 0) {
    M_LOCK(mutex) = 1;
    M_OWNER(mutex) = self;
    M_DEPTH(mutex) = 1;
    return 0;
  }
  if (M_TYPE(mutex) == PTHREAD_MUTEX_RECURSIVE && M_OWNER(mutex) == self) {
    if (M_DEPTH(mutex) == INT_MAX) return EAGAIN;
    M_DEPTH(mutex)++;
    return 0;
  }
  return EBUSY;
}

ROAM_WEAK int pthread_mutex_timedlock(pthread_mutex_t *__restrict mutex, const struct timespec *__restrict abstime) {
  int busy = pthread_mutex_trylock(mutex);
  if (busy != EBUSY) return busy;
  if (M_TYPE(mutex) == PTHREAD_MUTEX_ERRORCHECK && M_OWNER(mutex) == ownerId()) return EDEADLK;
  /* A normal mutex relocked by its owner waits for ever, as on Linux. */
  while (exchange(&M_LOCK(mutex), 2) != 0) {
    if (roam_futex_wait(&M_LOCK(mutex), 2, timeoutNs(abstime, CLOCK_REALTIME)) == FUTEX_TIMED_OUT &&
        M_LOCK(mutex) != 0)
      return ETIMEDOUT;
  }
  M_OWNER(mutex) = ownerId();
  M_DEPTH(mutex) = 1;
  return 0;
}

ROAM_WEAK int pthread_mutex_lock(pthread_mutex_t *mutex) { return pthread_mutex_timedlock(mutex, NULL); }

ROAM_WEAK int pthread_mutex_unlock(pthread_mutex_t *mutex) {
  if (M_TYPE(mutex) != PTHREAD_MUTEX_NORMAL) {
    if (M_LOCK(mutex) == 0 || M_OWNER(mutex) != ownerId()) return EPERM;
    if (--M_DEPTH(mutex) > 0) return 0;
  }
  M_OWNER(mutex) = 0;
  if (exchange(&M_LOCK(mutex), 0) == 2) roam_futex_wake(&M_LOCK(mutex), 1);
  return 0;
}

ROAM_WEAK int pthread_mutex_consistent(pthread_mutex_t *mutex) {
  (void)mutex;
  return EINVAL; /* robust mutexes never see an owner die mid-hold: threads end only by exiting */
}

ROAM_WEAK int pthread_mutexattr_init(pthread_mutexattr_t *attr) {
  attr->__attr = 0;
  return 0;
}
ROAM_WEAK int pthread_mutexattr_destroy(pthread_mutexattr_t *attr) {
  (void)attr;
  return 0;
}
ROAM_WEAK int pthread_mutexattr_settype(pthread_mutexattr_t *attr, int type) {
  if (type < PTHREAD_MUTEX_NORMAL || type > PTHREAD_MUTEX_ERRORCHECK) return EINVAL;
  attr->__attr = (attr->__attr & ~3u) | (unsigned)type;
  return 0;
}
ROAM_WEAK int pthread_mutexattr_gettype(const pthread_mutexattr_t *__restrict attr, int *__restrict type) {
  *type = (int)(attr->__attr & 3);
  return 0;
}
ROAM_WEAK int pthread_mutexattr_setpshared(pthread_mutexattr_t *attr, int pshared) {
  (void)attr;
  return pshared == PTHREAD_PROCESS_PRIVATE || pshared == PTHREAD_PROCESS_SHARED ? 0 : EINVAL;
}
ROAM_WEAK int pthread_mutexattr_getpshared(const pthread_mutexattr_t *__restrict attr, int *__restrict pshared) {
  (void)attr;
  *pshared = PTHREAD_PROCESS_PRIVATE;
  return 0;
}
ROAM_WEAK int pthread_mutexattr_setrobust(pthread_mutexattr_t *attr, int robust) {
  (void)attr;
  return robust == PTHREAD_MUTEX_STALLED || robust == PTHREAD_MUTEX_ROBUST ? 0 : EINVAL;
}
ROAM_WEAK int pthread_mutexattr_getrobust(const pthread_mutexattr_t *__restrict attr, int *__restrict robust) {
  (void)attr;
  *robust = PTHREAD_MUTEX_STALLED;
  return 0;
}
ROAM_WEAK int pthread_mutexattr_setprotocol(pthread_mutexattr_t *attr, int protocol) {
  (void)attr;
  return protocol == PTHREAD_PRIO_NONE ? 0 : ENOTSUP;
}
ROAM_WEAK int pthread_mutexattr_getprotocol(const pthread_mutexattr_t *__restrict attr, int *__restrict protocol) {
  (void)attr;
  *protocol = PTHREAD_PRIO_NONE;
  return 0;
}
ROAM_WEAK int pthread_mutexattr_setprioceiling(pthread_mutexattr_t *attr, int ceiling) {
  (void)attr;
  (void)ceiling;
  return EINVAL;
}
ROAM_WEAK int pthread_mutexattr_getprioceiling(const pthread_mutexattr_t *__restrict attr, int *__restrict ceiling) {
  (void)attr;
  (void)ceiling;
  return EINVAL;
}

/* Condition variables: __vi[0] a sequence number bumped by every signal, __i[1] the clock. */
#define C_SEQ(c) ((c)->__u.__vi[0])
#define C_MONOTONIC(c) ((c)->__u.__i[1])
#define C_CLOCK(c) (C_MONOTONIC(c) ? CLOCK_MONOTONIC : CLOCK_REALTIME)

ROAM_WEAK int pthread_cond_init(pthread_cond_t *__restrict cond, const pthread_condattr_t *__restrict attr) {
  memset(cond, 0, sizeof *cond);
  if (attr && attr->__attr & 1) C_MONOTONIC(cond) = 1;
  return 0;
}

ROAM_WEAK int pthread_cond_destroy(pthread_cond_t *cond) {
  (void)cond;
  return 0;
}

ROAM_WEAK int pthread_cond_timedwait(pthread_cond_t *__restrict cond, pthread_mutex_t *__restrict mutex,
                                     const struct timespec *__restrict abstime) {
  int seq = C_SEQ(cond);
  int unlocked = pthread_mutex_unlock(mutex);
  if (unlocked) return unlocked;
  /* A signal between the unlock and the wait changes the sequence: the wait then returns at once. */
  int ended = cancellableWait(&C_SEQ(cond), seq, timeoutNs(abstime, C_CLOCK(cond)));
  pthread_mutex_lock(mutex);
  actOnCancel();
  return ended == FUTEX_TIMED_OUT && C_SEQ(cond) == seq ? ETIMEDOUT : 0;
}

ROAM_WEAK int pthread_cond_wait(pthread_cond_t *__restrict cond, pthread_mutex_t *__restrict mutex) {
  return pthread_cond_timedwait(cond, mutex, NULL);
}

ROAM_WEAK int pthread_cond_signal(pthread_cond_t *cond) {
  C_SEQ(cond)++;
  roam_futex_wake(&C_SEQ(cond), 1);
  return 0;
}

ROAM_WEAK int pthread_cond_broadcast(pthread_cond_t *cond) {
  C_SEQ(cond)++;
  roam_futex_wake(&C_SEQ(cond), INT_MAX);
  return 0;
}

ROAM_WEAK int pthread_condattr_init(pthread_condattr_t *attr) {
  attr->__attr = 0; /* CLOCK_REALTIME */
  return 0;
}
ROAM_WEAK int pthread_condattr_destroy(pthread_condattr_t *attr) {
  (void)attr;
  return 0;
}
ROAM_WEAK int pthread_condattr_setclock(pthread_condattr_t *attr, clockid_t clock) {
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  attr->__attr = clock == CLOCK_MONOTONIC ? 1 : 0;
  return 0;
}
ROAM_WEAK int pthread_condattr_getclock(const pthread_condattr_t *__restrict attr, clockid_t *__restrict clock) {
  *clock = attr->__attr & 1 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
  return 0;
}
ROAM_WEAK int pthread_condattr_setpshared(pthread_condattr_t *attr, int pshared) {
  (void)attr;
  return pshared == PTHREAD_PROCESS_PRIVATE || pshared == PTHREAD_PROCESS_SHARED ? 0 : EINVAL;
}
ROAM_WEAK int pthread_condattr_getpshared(const pthread_condattr_t *__restrict attr, int *__restrict pshared) {
  (void)attr;
  *pshared = PTHREAD_PROCESS_PRIVATE;
  return 0;
}

/* Read-write locks: __vi[0] readers, __vi[1] the writer's owner id, __vi[2] a sequence waiters sleep on. */
#define R_READERS(r) ((r)->__u.__vi[0])
#define R_WRITER(r) ((r)->__u.__vi[1])
#define R_SEQ(r) ((r)->__u.__vi[2])

ROAM_WEAK int pthread_rwlock_init(pthread_rwlock_t *__restrict rw, const pthread_rwlockattr_t *__restrict attr) {
  (void)attr;
  memset(rw, 0, sizeof *rw);
  return 0;
}
ROAM_WEAK int pthread_rwlock_destroy(pthread_rwlock_t *rw) { return R_READERS(rw) || R_WRITER(rw) ? EBUSY : 0; }

ROAM_WEAK int pthread_rwlock_tryrdlock(pthread_rwlock_t *rw) {
  if (R_WRITER(rw)) return EBUSY;
  R_READERS(rw)++;
  return 0;
}

ROAM_WEAK int pthread_rwlock_trywrlock(pthread_rwlock_t *rw) {
  if (R_WRITER(rw) || R_READERS(rw)) return EBUSY;
  R_WRITER(rw) = ownerId();
  return 0;
}

static int rwlockWait(pthread_rwlock_t *rw, int writer, const struct timespec *abstime) {
  if (R_WRITER(rw) == ownerId()) return EDEADLK;
  for (;;) {
    int seq = R_SEQ(rw);
    if (writer ? pthread_rwlock_trywrlock(rw) == 0 : pthread_rwlock_tryrdlock(rw) == 0) return 0;
    if (roam_futex_wait(&R_SEQ(rw), seq, timeoutNs(abstime, CLOCK_REALTIME)) == FUTEX_TIMED_OUT) {
      if (writer ? pthread_rwlock_trywrlock(rw) == 0 : pthread_rwlock_tryrdlock(rw) == 0) return 0;
      return ETIMEDOUT;
    }
  }
}

ROAM_WEAK int pthread_rwlock_rdlock(pthread_rwlock_t *rw) { return rwlockWait(rw, 0, NULL); }
ROAM_WEAK int pthread_rwlock_wrlock(pthread_rwlock_t *rw) { return rwlockWait(rw, 1, NULL); }
ROAM_WEAK int pthread_rwlock_timedrdlock(pthread_rwlock_t *__restrict rw, const struct timespec *__restrict at) {
  return rwlockWait(rw, 0, at);
}
ROAM_WEAK int pthread_rwlock_timedwrlock(pthread_rwlock_t *__restrict rw, const struct timespec *__restrict at) {
  return rwlockWait(rw, 1, at);
}

ROAM_WEAK int pthread_rwlock_unlock(pthread_rwlock_t *rw) {
  if (R_WRITER(rw)) {
    if (R_WRITER(rw) != ownerId()) return EPERM;
    R_WRITER(rw) = 0;
  } else if (R_READERS(rw) > 0) {
    R_READERS(rw)--;
  } else {
    return EPERM;
  }
  R_SEQ(rw)++;
  roam_futex_wake(&R_SEQ(rw), INT_MAX);
  return 0;
}

ROAM_WEAK int pthread_rwlockattr_init(pthread_rwlockattr_t *attr) {
  memset(attr, 0, sizeof *attr);
  return 0;
}
ROAM_WEAK int pthread_rwlockattr_destroy(pthread_rwlockattr_t *attr) {
  (void)attr;
  return 0;
}
ROAM_WEAK int pthread_rwlockattr_setpshared(pthread_rwlockattr_t *attr, int pshared) {
  (void)attr;
  return pshared == PTHREAD_PROCESS_PRIVATE || pshared == PTHREAD_PROCESS_SHARED ? 0 : EINVAL;
}
ROAM_WEAK int pthread_rwlockattr_getpshared(const pthread_rwlockattr_t *__restrict attr, int *__restrict pshared) {
  (void)attr;
  *pshared = PTHREAD_PROCESS_PRIVATE;
  return 0;
}

/* Spinlocks: spinning would only burn the slice of the thread holding it, so a busy lock yields. */
ROAM_WEAK int pthread_spin_init(pthread_spinlock_t *lock, int pshared) {
  (void)pshared;
  *lock = 0;
  return 0;
}
ROAM_WEAK int pthread_spin_destroy(pthread_spinlock_t *lock) {
  (void)lock;
  return 0;
}
ROAM_WEAK int pthread_spin_trylock(pthread_spinlock_t *lock) { return exchange(lock, 1) ? EBUSY : 0; }
ROAM_WEAK int pthread_spin_lock(pthread_spinlock_t *lock) {
  while (exchange(lock, 1)) roam_thread_yield();
  return 0;
}
ROAM_WEAK int pthread_spin_unlock(pthread_spinlock_t *lock) {
  *lock = 0;
  return 0;
}

/* Barriers: __i[0] how many, __i[1] arrived so far, __vi[2] the generation waiters sleep on. */
#define B_COUNT(b) ((b)->__u.__i[0])
#define B_ARRIVED(b) ((b)->__u.__i[1])
#define B_GENERATION(b) ((b)->__u.__vi[2])

ROAM_WEAK int pthread_barrier_init(pthread_barrier_t *__restrict barrier, const pthread_barrierattr_t *__restrict attr,
                                   unsigned count) {
  (void)attr;
  if (count == 0 || count > INT_MAX) return EINVAL;
  memset(barrier, 0, sizeof *barrier);
  B_COUNT(barrier) = (int)count;
  return 0;
}
ROAM_WEAK int pthread_barrier_destroy(pthread_barrier_t *barrier) { return B_ARRIVED(barrier) ? EBUSY : 0; }

ROAM_WEAK int pthread_barrier_wait(pthread_barrier_t *barrier) {
  int generation = B_GENERATION(barrier);
  if (++B_ARRIVED(barrier) == B_COUNT(barrier)) {
    B_ARRIVED(barrier) = 0;
    B_GENERATION(barrier)++;
    roam_futex_wake(&B_GENERATION(barrier), INT_MAX);
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  while (B_GENERATION(barrier) == generation) roam_futex_wait(&B_GENERATION(barrier), generation, -1);
  return 0;
}

ROAM_WEAK int pthread_barrierattr_init(pthread_barrierattr_t *attr) {
  attr->__attr = 0;
  return 0;
}
ROAM_WEAK int pthread_barrierattr_destroy(pthread_barrierattr_t *attr) {
  (void)attr;
  return 0;
}
ROAM_WEAK int pthread_barrierattr_setpshared(pthread_barrierattr_t *attr, int pshared) {
  (void)attr;
  return pshared == PTHREAD_PROCESS_PRIVATE || pshared == PTHREAD_PROCESS_SHARED ? 0 : EINVAL;
}
ROAM_WEAK int pthread_barrierattr_getpshared(const pthread_barrierattr_t *__restrict attr, int *__restrict pshared) {
  (void)attr;
  *pshared = PTHREAD_PROCESS_PRIVATE;
  return 0;
}

/* Thread attributes: __s[0] stack size, __i[1] detach state, __s[2] a caller-given stack, __s[3] guard size. */
ROAM_WEAK int pthread_attr_init(pthread_attr_t *attr) {
  memset(attr, 0, sizeof *attr);
  return 0;
}
ROAM_WEAK int pthread_attr_destroy(pthread_attr_t *attr) {
  (void)attr;
  return 0;
}
ROAM_WEAK int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size) {
  if (size < PTHREAD_STACK_MIN) return EINVAL;
  attr->__u.__s[0] = size;
  return 0;
}
ROAM_WEAK int pthread_attr_getstacksize(const pthread_attr_t *__restrict attr, size_t *__restrict size) {
  *size = attr->__u.__s[0] ? attr->__u.__s[0] : DEFAULT_STACK;
  return 0;
}
ROAM_WEAK int pthread_attr_setstack(pthread_attr_t *attr, void *stack, size_t size) {
  if (size < PTHREAD_STACK_MIN) return EINVAL;
  attr->__u.__s[0] = size;
  attr->__u.__s[2] = (unsigned long)(uintptr_t)stack;
  return 0;
}
ROAM_WEAK int pthread_attr_getstack(const pthread_attr_t *__restrict attr, void **__restrict stack,
                                    size_t *__restrict size) {
  *stack = (void *)(uintptr_t)attr->__u.__s[2];
  *size = attr->__u.__s[0] ? attr->__u.__s[0] : DEFAULT_STACK;
  return 0;
}
ROAM_WEAK int pthread_attr_setdetachstate(pthread_attr_t *attr, int state) {
  if (state != PTHREAD_CREATE_JOINABLE && state != PTHREAD_CREATE_DETACHED) return EINVAL;
  attr->__u.__i[1] = state;
  return 0;
}
ROAM_WEAK int pthread_attr_getdetachstate(const pthread_attr_t *attr, int *state) {
  *state = attr->__u.__i[1];
  return 0;
}
ROAM_WEAK int pthread_attr_setguardsize(pthread_attr_t *attr, size_t size) {
  attr->__u.__s[3] = size;
  return 0;
}
ROAM_WEAK int pthread_attr_getguardsize(const pthread_attr_t *__restrict attr, size_t *__restrict size) {
  *size = attr->__u.__s[3];
  return 0;
}
ROAM_WEAK int pthread_attr_setscope(pthread_attr_t *attr, int scope) {
  (void)attr;
  return scope == PTHREAD_SCOPE_SYSTEM ? 0 : ENOTSUP;
}
ROAM_WEAK int pthread_attr_getscope(const pthread_attr_t *__restrict attr, int *__restrict scope) {
  (void)attr;
  *scope = PTHREAD_SCOPE_SYSTEM;
  return 0;
}
ROAM_WEAK int pthread_attr_setschedpolicy(pthread_attr_t *attr, int policy) {
  (void)attr;
  return policy == SCHED_OTHER ? 0 : ENOTSUP;
}
ROAM_WEAK int pthread_attr_getschedpolicy(const pthread_attr_t *__restrict attr, int *__restrict policy) {
  (void)attr;
  *policy = SCHED_OTHER;
  return 0;
}
ROAM_WEAK int pthread_attr_setschedparam(pthread_attr_t *__restrict attr, const struct sched_param *__restrict param) {
  (void)attr;
  return param->sched_priority == 0 ? 0 : ENOTSUP;
}
ROAM_WEAK int pthread_attr_getschedparam(const pthread_attr_t *__restrict attr, struct sched_param *__restrict param) {
  (void)attr;
  param->sched_priority = 0;
  return 0;
}
ROAM_WEAK int pthread_attr_setinheritsched(pthread_attr_t *attr, int inherit) {
  (void)attr;
  return inherit == PTHREAD_INHERIT_SCHED || inherit == PTHREAD_EXPLICIT_SCHED ? 0 : EINVAL;
}
ROAM_WEAK int pthread_attr_getinheritsched(const pthread_attr_t *__restrict attr, int *__restrict inherit) {
  (void)attr;
  *inherit = PTHREAD_INHERIT_SCHED;
  return 0;
}

/* Unnamed semaphores: __val[0] the count, waiters sleep on it while it is 0. */
#define S_VALUE(s) ((s)->__val[0])

ROAM_WEAK int sem_init(sem_t *sem, int pshared, unsigned value) {
  (void)pshared;
  if (value > SEM_VALUE_MAX) {
    errno = EINVAL;
    return -1;
  }
  memset(sem, 0, sizeof *sem);
  S_VALUE(sem) = (int)value;
  return 0;
}
ROAM_WEAK int sem_destroy(sem_t *sem) {
  (void)sem;
  return 0;
}
ROAM_WEAK int sem_getvalue(sem_t *__restrict sem, int *__restrict value) {
  *value = S_VALUE(sem);
  return 0;
}
ROAM_WEAK int sem_trywait(sem_t *sem) {
  if (S_VALUE(sem) > 0) {
    S_VALUE(sem)--;
    return 0;
  }
  errno = EAGAIN;
  return -1;
}
ROAM_WEAK int sem_timedwait(sem_t *__restrict sem, const struct timespec *__restrict abstime) {
  while (S_VALUE(sem) == 0) {
    if (cancellableWait(&S_VALUE(sem), 0, timeoutNs(abstime, CLOCK_REALTIME)) == FUTEX_TIMED_OUT &&
        S_VALUE(sem) == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
  }
  S_VALUE(sem)--;
  return 0;
}
ROAM_WEAK int sem_wait(sem_t *sem) { return sem_timedwait(sem, NULL); }
ROAM_WEAK int sem_post(sem_t *sem) {
  if (S_VALUE(sem) == SEM_VALUE_MAX) {
    errno = EOVERFLOW;
    return -1;
  }
  S_VALUE(sem)++;
  roam_futex_wake(&S_VALUE(sem), 1);
  return 0;
}
ROAM_WEAK sem_t *sem_open(const char *name, int flags, ...) {
  (void)name;
  (void)flags;
  return roam_unsupported_null("sem_open", "named semaphores need a file system shared between processes", ENOSYS);
}
ROAM_WEAK int sem_close(sem_t *sem) {
  (void)sem;
  errno = EINVAL;
  return -1;
}
ROAM_WEAK int sem_unlink(const char *name) {
  (void)name;
  return roam_unsupported("sem_unlink", "named semaphores need a file system shared between processes", ENOSYS);
}

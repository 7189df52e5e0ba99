/*
 * A single-threaded <pthread.h> (wasi-libc 2022 ships none): enough for programs that only guard
 * one-time initialisation and per-thread data. pthread_once runs the routine once, keys hold one
 * value each, mutexes never block (locking a locked one is EDEADLK: the only thread would wait
 * forever). Thread creation is absent on purpose, so configure finds no threads. Definitions in
 * runtime/posix/pthread.c; green threads replace this later.
 */
#ifndef ROAM_PTHREAD_H
#define ROAM_PTHREAD_H

#include <sys/types.h> /* wasi-libc defines the pthread_*_t types (musl's layouts) */

#ifdef __cplusplus
extern "C" {
#endif

#define PTHREAD_ONCE_INIT 0
int pthread_once(pthread_once_t *, void (*)(void));

int pthread_key_create(pthread_key_t *, void (*)(void *));
int pthread_key_delete(pthread_key_t);
void *pthread_getspecific(pthread_key_t);
int pthread_setspecific(pthread_key_t, const void *);

#define PTHREAD_MUTEX_INITIALIZER {{{0}}}
int pthread_mutex_init(pthread_mutex_t *, const pthread_mutexattr_t *);
int pthread_mutex_destroy(pthread_mutex_t *);
int pthread_mutex_lock(pthread_mutex_t *);
int pthread_mutex_trylock(pthread_mutex_t *);
int pthread_mutex_unlock(pthread_mutex_t *);

#ifdef __cplusplus
}
#endif

#endif

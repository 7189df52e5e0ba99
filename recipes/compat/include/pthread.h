/*
 * A single-threaded <pthread.h> for wasm32-wasi, which has no threads and whose wasi-libc
 * (2022) ships no pthread.h. Enough for programs that only guard one-time initialisation and
 * per-thread data (jq): once runs the routine once, keys hold one value each, mutexes never
 * block. Thread creation is absent on purpose. Definitions in wasi-compat.c. Recipes add
 * -I compat/include only to builds that need it.
 */
#ifndef ROAM_RECIPES_PTHREAD_H
#define ROAM_RECIPES_PTHREAD_H

#include <sys/types.h> /* wasi-libc defines the pthread_*_t types (musl's layouts) */

#define PTHREAD_ONCE_INIT 0
int pthread_once(pthread_once_t *once, void (*routine)(void));

int pthread_key_create(pthread_key_t *key, void (*destructor)(void *));
int pthread_key_delete(pthread_key_t key);
void *pthread_getspecific(pthread_key_t key);
int pthread_setspecific(pthread_key_t key, const void *value);

#define PTHREAD_MUTEX_INITIALIZER {{{0}}}
int pthread_mutex_init(pthread_mutex_t *mutex, const pthread_mutexattr_t *attr);
int pthread_mutex_destroy(pthread_mutex_t *mutex);
int pthread_mutex_lock(pthread_mutex_t *mutex);
int pthread_mutex_trylock(pthread_mutex_t *mutex);
int pthread_mutex_unlock(pthread_mutex_t *mutex);

#endif

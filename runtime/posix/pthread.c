/* A single thread's pthreads (see runtime/include/pthread.h). */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include "posix.h"

ROAM_WEAK int pthread_once(pthread_once_t *once, void (*routine)(void)) {
  if (*once == PTHREAD_ONCE_INIT) {
    *once = 1;
    routine();
  }
  return 0;
}

#define KEYS 128
static const void *keyValues[KEYS];
static unsigned char keyUsed[KEYS];

ROAM_WEAK int pthread_key_create(pthread_key_t *key, void (*destructor)(void *)) {
  (void)destructor; /* the only thread ends with the process */
  for (unsigned i = 0; i < KEYS; i++) {
    if (!keyUsed[i]) {
      keyUsed[i] = 1;
      keyValues[i] = NULL;
      *key = i;
      return 0;
    }
  }
  return EAGAIN;
}

ROAM_WEAK int pthread_key_delete(pthread_key_t key) {
  if (key >= KEYS || !keyUsed[key]) return EINVAL;
  keyUsed[key] = 0;
  return 0;
}

ROAM_WEAK void *pthread_getspecific(pthread_key_t key) {
  return key < KEYS && keyUsed[key] ? (void *)keyValues[key] : NULL;
}

ROAM_WEAK int pthread_setspecific(pthread_key_t key, const void *value) {
  if (key >= KEYS || !keyUsed[key]) return EINVAL;
  keyValues[key] = value;
  return 0;
}

#define LOCKED(mutex) ((mutex)->__u.__i[0])

ROAM_WEAK int pthread_mutex_init(pthread_mutex_t *mutex, const pthread_mutexattr_t *attr) {
  (void)attr;
  LOCKED(mutex) = 0;
  return 0;
}

ROAM_WEAK int pthread_mutex_destroy(pthread_mutex_t *mutex) {
  (void)mutex;
  return 0;
}

ROAM_WEAK int pthread_mutex_lock(pthread_mutex_t *mutex) {
  if (LOCKED(mutex)) return EDEADLK;
  LOCKED(mutex) = 1;
  return 0;
}

ROAM_WEAK int pthread_mutex_trylock(pthread_mutex_t *mutex) {
  if (LOCKED(mutex)) return EBUSY;
  LOCKED(mutex) = 1;
  return 0;
}

ROAM_WEAK int pthread_mutex_unlock(pthread_mutex_t *mutex) {
  LOCKED(mutex) = 0;
  return 0;
}

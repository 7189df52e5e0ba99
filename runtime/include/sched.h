/*
 * wasi-libc's <sched.h> has sched_yield() only (WASI schedules nothing); green threads
 * (runtime/posix/pthread.c) add what pthread programs name: struct sched_param, the policies and
 * their priority range (one priority: every thread gets equal turns).
 */
#include_next <sched.h>

#ifndef ROAM_SCHED_H
#define ROAM_SCHED_H

#ifdef __cplusplus
extern "C" {
#endif

struct sched_param {
  int sched_priority;
};

#define SCHED_OTHER 0
#define SCHED_FIFO 1
#define SCHED_RR 2
#define SCHED_BATCH 3
#define SCHED_IDLE 5

int sched_get_priority_max(int);
int sched_get_priority_min(int);

#ifdef __cplusplus
}
#endif

#endif

/*
 * wasi-libc's <sys/resource.h> (getrusage) plus resource limits (runtime/posix/identity.c):
 * recorded and reported, not enforced. Constants are Linux's.
 */
#include_next <sys/resource.h>

#ifndef ROAM_SYS_RESOURCE_H
#define ROAM_SYS_RESOURCE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef unsigned long long rlim_t;

struct rlimit {
  rlim_t rlim_cur;
  rlim_t rlim_max;
};

#define RLIM_INFINITY (~0ULL)
#define RLIM_SAVED_CUR RLIM_INFINITY
#define RLIM_SAVED_MAX RLIM_INFINITY

#define RLIMIT_CPU 0
#define RLIMIT_FSIZE 1
#define RLIMIT_DATA 2
#define RLIMIT_STACK 3
#define RLIMIT_CORE 4
#define RLIMIT_RSS 5
#define RLIMIT_NPROC 6
#define RLIMIT_NOFILE 7
#define RLIMIT_MEMLOCK 8
#define RLIMIT_AS 9
#define RLIMIT_LOCKS 10
#define RLIMIT_SIGPENDING 11
#define RLIMIT_MSGQUEUE 12
#define RLIMIT_NICE 13
#define RLIMIT_RTPRIO 14
#define RLIMIT_RTTIME 15
#define RLIMIT_NLIMITS 16
#define RLIM_NLIMITS RLIMIT_NLIMITS

int getrlimit(int, struct rlimit *);
int setrlimit(int, const struct rlimit *);

/* Scheduling priority (the niceness nice() keeps): this process only. */
#define PRIO_MIN (-20)
#define PRIO_MAX 20
#define PRIO_PROCESS 0
#define PRIO_PGRP 1
#define PRIO_USER 2

int getpriority(int, unsigned int);
int setpriority(int, unsigned int, int);

#ifdef __cplusplus
}
#endif

#endif

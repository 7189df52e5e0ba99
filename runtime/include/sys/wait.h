/*
 * <sys/wait.h>, which wasi-libc lacks. A guest cannot start processes (fork fails), so it never
 * has children: wait() and waitpid() fail with ECHILD, as on Linux for a process without
 * children (runtime/posix/process.c).
 */
#ifndef ROAM_SYS_WAIT_H
#define ROAM_SYS_WAIT_H

#include <stdlib.h> /* the W* status macros */
#include <sys/resource.h>

#define __NEED_pid_t
#include <bits/alltypes.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WSTOPPED 2
#define WEXITED 4
#define WCONTINUED 8
#define WNOWAIT 0x1000000
#ifndef WCOREDUMP
#define WCOREDUMP(s) ((s) & 0x80)
#define WIFCONTINUED(s) ((s) == 0xffff)
#endif

pid_t wait(int *);
pid_t waitpid(pid_t, int *, int);

#if defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
pid_t wait3(int *, int, struct rusage *);
pid_t wait4(pid_t, int *, int, struct rusage *);
#endif

#ifdef __cplusplus
}
#endif

#endif

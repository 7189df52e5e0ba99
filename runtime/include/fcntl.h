/*
 * wasi-libc's <fcntl.h> plus F_DUPFD, F_DUPFD_CLOEXEC and F_GETLK/F_SETLK/F_SETLKW with Linux's
 * values. The layer's
 * fcntl() (runtime/posix/descriptors.c) sends them to the dup path, which fails with ENOSYS
 * until the host can copy descriptors.
 */
#include_next <fcntl.h>

#ifndef ROAM_FCNTL_H
#define ROAM_FCNTL_H

#ifndef F_DUPFD
#define F_DUPFD 0
#endif
#ifndef F_DUPFD_CLOEXEC
#define F_DUPFD_CLOEXEC 1030
#endif
/* Record locks, Linux's values: one process holds them all, so every lock is granted (fcntl). */
#ifndef F_GETLK
#define F_GETLK 5
#define F_SETLK 6
#define F_SETLKW 7
#endif
#ifndef F_RDLCK
#define F_RDLCK 0
#define F_WRLCK 1
#define F_UNLCK 2
#endif

#endif

/* wasi-libc's <sys/stat.h> plus what the POSIX layer defines (runtime/posix/files.c). */
#include_next <sys/stat.h>

#ifndef ROAM_SYS_STAT_H
#define ROAM_SYS_STAT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Modes are not kept by WASI: these succeed on existing files without effect. */
int chmod(const char *, mode_t);
int fchmod(int, mode_t);
int fchmodat(int, const char *, mode_t, int);
/* Recorded, returned by the next call; WASI creates files without modes. */
mode_t umask(mode_t);
/* WASI has no FIFOs or device nodes. */
int mkfifo(const char *, mode_t);
int mkfifoat(int, const char *, mode_t);
#if defined(_XOPEN_SOURCE) || defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
int mknod(const char *, mode_t, dev_t);
int mknodat(int, const char *, mode_t, dev_t);
#endif

#ifdef __cplusplus
}
#endif

#endif

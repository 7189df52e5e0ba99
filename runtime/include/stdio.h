/*
 * wasi-libc's <stdio.h> plus what the POSIX layer defines (runtime/posix/, docs/posix.md).
 * wasi-libc declares tmpfile and tmpnam deprecated ("not defined on WASI"); the layer defines
 * them, so that attribute is dropped while its header is read.
 */
#pragma push_macro("__deprecated__")
#define __deprecated__(message)
#include_next <stdio.h>
#pragma pop_macro("__deprecated__")

#ifndef ROAM_STDIO_H
#define ROAM_STDIO_H

#ifdef __cplusplus
extern "C" {
#endif

/* process.c: no command processor (ENOSYS). */
FILE *popen(const char *, const char *);
int pclose(FILE *);

/* tempfiles.c: in $TMPDIR, else /tmp. */
FILE *tmpfile(void);
char *tmpnam(char *);
#ifndef L_tmpnam
#define L_tmpnam 20
#endif
#ifndef TMP_MAX
#define TMP_MAX 10000
#endif
#if defined(_XOPEN_SOURCE) || defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
#ifndef P_tmpdir
#define P_tmpdir "/tmp"
#endif
char *tempnam(const char *, const char *);
#endif

#ifdef __cplusplus
}
#endif

#endif

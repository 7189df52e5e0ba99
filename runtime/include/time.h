/*
 * wasi-libc's <time.h> plus tzset() and its variables (runtime/posix/time.c). WASI has no time
 * zone database: local time is UTC, whatever TZ says.
 */
#include_next <time.h>

#ifndef ROAM_TIME_H
#define ROAM_TIME_H

#ifdef __cplusplus
extern "C" {
#endif

void tzset(void);
#if defined(_XOPEN_SOURCE) || defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
extern char *tzname[2];
extern int daylight;
extern long timezone;
#endif

#ifdef __cplusplus
}
#endif

#endif

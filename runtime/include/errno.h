/*
 * wasi-libc's <errno.h> plus the socket errors Linux has and WASI lacks. No call of the layer sets
 * them; programs name them when they sort a failed socket() (Redis: server.c).
 */
#include_next <errno.h>

#ifndef ROAM_ERRNO_H
#define ROAM_ERRNO_H

/* Linux's values: above every WASI errno (0-76), so they never equal one a call returns. */
#ifndef ESOCKTNOSUPPORT
#define ESOCKTNOSUPPORT 94
#endif
#ifndef EPFNOSUPPORT
#define EPFNOSUPPORT 96
#endif

#endif

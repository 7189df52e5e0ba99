/*
 * Shadows wasi-libc's <__struct_sockaddr_un.h>, which has no `sun_path`: Linux's layout, so that
 * programs with Unix-domain code paths (Redis's unixsocket) build. socket(AF_UNIX) itself fails
 * with EAFNOSUPPORT (runtime/posix/sockets.c): WASI has no socket files.
 */
#ifndef __wasilibc___struct_sockaddr_un_h
#define __wasilibc___struct_sockaddr_un_h

#define __need_STDDEF_H_misc
#include <stddef.h>
/* clang's <stddef.h> gives max_align_t to C11 and later only; -std=c99 code (hiredis) needs it too. */
#include <__stddef_max_align_t.h>
#include <__typedef_sa_family_t.h>

struct sockaddr_un {
  _Alignas(max_align_t) sa_family_t sun_family;
  char sun_path[108];
};

#endif

/*
 * Shadows wasi-libc's <__struct_sockaddr.h>: the same size and alignment (16 bytes), with
 * Linux's `sa_data[14]` where wasi-libc has a zero-length array, for programs that name it.
 */
#ifndef __wasilibc___struct_sockaddr_h
#define __wasilibc___struct_sockaddr_h

#define __need_STDDEF_H_misc
#include <stddef.h>
/* clang's <stddef.h> gives max_align_t to C11 and later only; -std=c99 code (hiredis) needs it too. */
#include <__stddef_max_align_t.h>
#include <__typedef_sa_family_t.h>

struct sockaddr {
  _Alignas(max_align_t) sa_family_t sa_family;
  char sa_data[14];
};

#endif

/*
 * Shadows wasi-libc's <__struct_sockaddr_in.h>: the same layout and size (16 bytes), plus Linux's
 * `sin_zero` padding, which programs clear by name.
 */
#ifndef __wasilibc___struct_sockaddr_in_h
#define __wasilibc___struct_sockaddr_in_h

#define __need_STDDEF_H_misc
#include <stddef.h>
/* clang's <stddef.h> gives max_align_t to C11 and later only; -std=c99 code (hiredis) needs it too. */
#include <__stddef_max_align_t.h>
#include <__typedef_sa_family_t.h>
#include <__typedef_in_port_t.h>
#include <__struct_in_addr.h>

struct sockaddr_in {
  _Alignas(max_align_t) sa_family_t sin_family;
  in_port_t sin_port;
  struct in_addr sin_addr;
  unsigned char sin_zero[8];
};

#endif

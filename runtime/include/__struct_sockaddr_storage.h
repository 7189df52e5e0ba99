/*
 * Shadows wasi-libc's <__struct_sockaddr_storage.h> (48 bytes): Linux's 128 bytes, so that it
 * holds every sockaddr a program may copy into it, struct sockaddr_un included. No part of
 * wasi-libc that the POSIX layer leaves in use takes one.
 */
#ifndef __wasilibc___struct_sockaddr_storage_h
#define __wasilibc___struct_sockaddr_storage_h

#define __need_STDDEF_H_misc
#include <stddef.h>
/* clang's <stddef.h> gives max_align_t to C11 and later only; -std=c99 code (hiredis) needs it too. */
#include <__stddef_max_align_t.h>
#include <__typedef_sa_family_t.h>

struct sockaddr_storage {
  _Alignas(max_align_t) sa_family_t ss_family;
  char __ss_data[128 - sizeof(sa_family_t)];
};

#endif

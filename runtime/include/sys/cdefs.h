/*
 * <sys/cdefs.h>, which wasi-libc (musl) lacks: the glibc/BSD declaration macros programs use in
 * their own headers (figlet's utf8.h: __BEGIN_DECLS ... __END_DECLS). glibc's <sys/types.h>
 * brings them in, so runtime/include/sys/types.h does too.
 */
#ifndef ROAM_SYS_CDEFS_H
#define ROAM_SYS_CDEFS_H

#ifdef __cplusplus
#define __BEGIN_DECLS extern "C" {
#define __END_DECLS }
#define __THROW throw()
#else
#define __BEGIN_DECLS
#define __END_DECLS
#define __THROW
#endif
#define __P(args) args
#define __PMT(args) args
#define __CONCAT(x, y) x##y
#define __STRING(x) #x

#endif

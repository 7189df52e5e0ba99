/*
 * Shadows wasi-libc's <__typedef_sigset_t.h>, whose sigset_t is one byte: signals 1-64 (_NSIG is
 * 65, as on Linux) did not fit, so sets aliased signals 8 apart and gnulib's checks of
 * sigaddset/sigismember failed. One bit per signal here. wasi-libc itself never reads a
 * sigset_t (pselect only takes a pointer), so the size is ours to choose.
 */
#ifndef __wasilibc___typedef_sigset_t_h
#define __wasilibc___typedef_sigset_t_h

typedef unsigned long long sigset_t;

#endif

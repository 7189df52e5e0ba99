/* wasi-libc's <stdlib.h> plus what the POSIX layer defines (runtime/posix/, docs/posix.md). */
#include_next <stdlib.h>

#ifndef ROAM_STDLIB_H
#define ROAM_STDLIB_H

#ifdef __cplusplus
extern "C" {
#endif

/* tempfiles.c: in $TMPDIR, else /tmp. */
int mkstemp(char *);
int mkostemp(char *, int);
char *mkdtemp(char *);

/* files.c */
char *realpath(const char *__restrict, char *__restrict);

/* wasi-libc defines these (from WASI's random_get) but its header hides them; glibc 2.36 declares
   them, and configure finds them by linking (mawk then calls arc4random undeclared). uint32_t
   by the compiler's name: <stdlib.h> does not define it. */
__UINT32_TYPE__ arc4random(void);
void arc4random_buf(void *, size_t);
__UINT32_TYPE__ arc4random_uniform(__UINT32_TYPE__);

/* For system()'s status, as glibc's <stdlib.h> defines them (also in <sys/wait.h>). */
#ifndef WEXITSTATUS
#define WNOHANG 1
#define WUNTRACED 2
#define WEXITSTATUS(s) (((s) & 0xff00) >> 8)
#define WTERMSIG(s) ((s) & 0x7f)
#define WSTOPSIG(s) WEXITSTATUS(s)
#define WIFEXITED(s) (!WTERMSIG(s))
#define WIFSTOPPED(s) ((short)((((s) & 0xffff) * 0x10001) >> 8) > 0x7f00)
#define WIFSIGNALED(s) (((s) & 0xffff) - 1U < 0xffu)
#endif

#ifdef __cplusplus
}
#endif

#endif

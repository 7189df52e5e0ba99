/*
 * wasi-libc's <sys/types.h> plus <sys/cdefs.h>, as glibc's: programs written on glibc use
 * __BEGIN_DECLS after including only <sys/types.h> (figlet).
 */
#include_next <sys/types.h>
#include <sys/cdefs.h>

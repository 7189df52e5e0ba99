/*
 * <dlfcn.h>, which wasi-libc lacks. A WebAssembly module is linked whole: dlopen fails and
 * dlerror says why (runtime/posix/dlfcn.c).
 */
#ifndef ROAM_DLFCN_H
#define ROAM_DLFCN_H

#ifdef __cplusplus
extern "C" {
#endif

#define RTLD_LAZY 1
#define RTLD_NOW 2
#define RTLD_NOLOAD 4
#define RTLD_NODELETE 4096
#define RTLD_GLOBAL 256
#define RTLD_LOCAL 0

#define RTLD_NEXT ((void *)-1)
#define RTLD_DEFAULT ((void *)0)

void *dlopen(const char *, int);
void *dlsym(void *__restrict, const char *__restrict);
int dlclose(void *);
char *dlerror(void);

#if defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
typedef struct {
  const char *dli_fname;
  void *dli_fbase;
  const char *dli_sname;
  void *dli_saddr;
} Dl_info;
/* Always 0 (no object holds the address): there are no shared objects. */
int dladdr(const void *, Dl_info *);
#endif

#ifdef __cplusplus
}
#endif

#endif

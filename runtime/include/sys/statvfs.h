/*
 * <sys/statvfs.h>, which wasi-libc lacks (Linux's layout). WASI cannot tell a file system's size
 * or free space: statvfs and fstatvfs check their argument, then fail with ENOSYS
 * (runtime/posix/files.c).
 */
#ifndef ROAM_SYS_STATVFS_H
#define ROAM_SYS_STATVFS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef unsigned long long fsblkcnt_t;
typedef unsigned long long fsfilcnt_t;

struct statvfs {
  unsigned long f_bsize, f_frsize;
  fsblkcnt_t f_blocks, f_bfree, f_bavail;
  fsfilcnt_t f_files, f_ffree, f_favail;
  unsigned long f_fsid;
  unsigned long f_flag;
  unsigned long f_namemax;
  int __reserved[6];
};

#define ST_RDONLY 1
#define ST_NOSUID 2

int statvfs(const char *__restrict, struct statvfs *__restrict);
int fstatvfs(int, struct statvfs *);

#ifdef __cplusplus
}
#endif

#endif

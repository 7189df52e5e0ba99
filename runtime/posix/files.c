/*
 * Files: owners, modes, special files, file-system statistics, realpath. WASI keeps no owners or
 * modes (stat reports uid 0 and no permission bits), so the guest acts as root without
 * capabilities: chmod succeeds without effect, chown succeeds only towards root.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>
#include "posix.h"

/* ---- modes: not kept by WASI, so a change succeeds on an existing file, without effect ---- */

ROAM_WEAK int chmod(const char *path, mode_t mode) {
  (void)mode;
  struct stat st;
  return stat(path, &st);
}

ROAM_WEAK int fchmod(int fd, mode_t mode) {
  (void)mode;
  return roam_check_fd(fd);
}

ROAM_WEAK int fchmodat(int dirfd, const char *path, mode_t mode, int flags) {
  (void)mode;
  struct stat st;
  return fstatat(dirfd, path, &st, flags & AT_SYMLINK_NOFOLLOW);
}

static mode_t currentUmask = 022;

ROAM_WEAK mode_t umask(mode_t mask) {
  mode_t previous = currentUmask;
  currentUmask = mask & 0777;
  return previous;
}

/* ---- owners: everything belongs to root; giving a file away needs CAP_CHOWN, which we lack ---- */

static int ownerAllowed(uid_t owner, gid_t group) {
  if ((owner == (uid_t)-1 || owner == 0) && (group == (gid_t)-1 || group == 0)) return 0;
  errno = EPERM;
  return -1;
}

ROAM_WEAK int chown(const char *path, uid_t owner, gid_t group) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return ownerAllowed(owner, group);
}

ROAM_WEAK int lchown(const char *path, uid_t owner, gid_t group) {
  struct stat st;
  if (lstat(path, &st) != 0) return -1;
  return ownerAllowed(owner, group);
}

ROAM_WEAK int fchown(int fd, uid_t owner, gid_t group) {
  if (roam_check_fd(fd) != 0) return -1;
  return ownerAllowed(owner, group);
}

ROAM_WEAK int fchownat(int dirfd, const char *path, uid_t owner, gid_t group, int flags) {
  struct stat st;
  if (fstatat(dirfd, path, &st, flags & AT_SYMLINK_NOFOLLOW) != 0) return -1;
  return ownerAllowed(owner, group);
}

/* ---- times: over futimens/utimensat, which WASI has ---- */

static const struct timespec *toTimespecs(const struct timeval tv[2], struct timespec ts[2]) {
  if (tv == NULL) return NULL;
  for (int i = 0; i < 2; i++) {
    ts[i].tv_sec = tv[i].tv_sec;
    ts[i].tv_nsec = (long)tv[i].tv_usec * 1000;
  }
  return ts;
}

ROAM_WEAK int futimes(int fd, const struct timeval tv[2]) {
  struct timespec ts[2];
  return futimens(fd, toTimespecs(tv, ts));
}

ROAM_WEAK int lutimes(const char *path, const struct timeval tv[2]) {
  struct timespec ts[2];
  return utimensat(AT_FDCWD, path, toTimespecs(tv, ts), AT_SYMLINK_NOFOLLOW);
}

/* ---- special files: WASI has regular files, directories and symlinks only ---- */

static int existsAt(int dirfd, const char *path) {
  struct stat st;
  return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

ROAM_WEAK int mkfifoat(int dirfd, const char *path, mode_t mode) {
  (void)mode;
  if (existsAt(dirfd, path)) {
    errno = EEXIST;
    return -1;
  }
  return roam_unsupported("mkfifo", "WASI file systems have no FIFOs", ENOSYS);
}

ROAM_WEAK int mkfifo(const char *path, mode_t mode) { return mkfifoat(AT_FDCWD, path, mode); }

/* A regular file is created (as on Linux); a device needs CAP_MKNOD (EPERM, as in a container). */
ROAM_WEAK int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev) {
  (void)dev;
  switch (mode & S_IFMT) {
  case 0:
  case S_IFREG: {
    int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL, mode & 07777);
    if (fd < 0) return -1;
    close(fd);
    return 0;
  }
  case S_IFCHR:
  case S_IFBLK:
    errno = EPERM;
    return -1;
  case S_IFIFO:
    return mkfifoat(dirfd, path, mode);
  case S_IFSOCK:
    if (existsAt(dirfd, path)) {
      errno = EEXIST;
      return -1;
    }
    return roam_unsupported("mknod", "WASI file systems have no socket files", ENOSYS);
  default:
    errno = EINVAL;
    return -1;
  }
}

ROAM_WEAK int mknod(const char *path, mode_t mode, dev_t dev) { return mknodat(AT_FDCWD, path, mode, dev); }

/* ---- file-system statistics: WASI cannot tell a file system's size or free space ---- */

#define NO_FS_STATS "WASI cannot tell a file system's size or free space"

ROAM_WEAK int statvfs(const char *__restrict path, struct statvfs *__restrict buf) {
  (void)buf;
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return roam_unsupported("statvfs", NO_FS_STATS, ENOSYS);
}

ROAM_WEAK int fstatvfs(int fd, struct statvfs *buf) {
  (void)buf;
  if (roam_check_fd(fd) != 0) return -1;
  return roam_unsupported("fstatvfs", NO_FS_STATS, ENOSYS);
}

/*
 * realpath over wasi-libc's view of paths: relative to its emulated cwd ("/" at start), absolute
 * ones resolved against the preopened directories. "." and ".." are folded lexically (WASI
 * sandboxes rarely hold symlinks; they are not followed here), then the result must exist.
 */
ROAM_WEAK char *realpath(const char *__restrict path, char *__restrict resolved) {
  if (path == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (*path == '\0') {
    errno = ENOENT;
    return NULL;
  }
  char full[PATH_MAX];
  size_t length = 0;
  if (path[0] != '/') {
    if (getcwd(full, sizeof full) == NULL) strcpy(full, "/");
    length = strlen(full);
  }
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 0 || (n == 1 && p[0] == '.')) {
      /* nothing */
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      while (length > 0 && full[length - 1] == '/') length--;
      while (length > 0 && full[length - 1] != '/') length--;
    } else {
      while (length > 0 && full[length - 1] == '/') length--;
      if (length + 1 + n + 1 > sizeof full) {
        errno = ENAMETOOLONG;
        return NULL;
      }
      full[length++] = '/';
      memcpy(full + length, p, n);
      length += n;
    }
    p += n;
  }
  while (length > 1 && full[length - 1] == '/') length--;
  if (length == 0) full[length++] = '/';
  full[length] = '\0';
  struct stat st;
  if (stat(full, &st) != 0) return NULL;
  if (resolved == NULL) return strdup(full);
  return strcpy(resolved, full);
}

/* glibc's: the working directory in memory of its own (wasi-libc keeps it in __wasilibc_cwd). */
ROAM_WEAK char *get_current_dir_name(void) { return getcwd(NULL, 0); }

/*
 * Temporary files in $TMPDIR, else /tmp: directories the guest reaches only if they are
 * preopened (roam run --dir HOST:/tmp). When neither is there, the calls that pick the directory
 * fail with ENOENT and say how to provide one. mkstemp, mkostemp and mkdtemp use the caller's
 * template wherever it points.
 *
 * tmpfile()'s file keeps its name until exit (then it is removed): a descriptor is restored by
 * path after a migration, so an unlinked file could not move with the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "posix.h"

#define NO_TEMP_DIR "neither $TMPDIR nor /tmp is a directory the guest can reach: preopen one, roam run --dir HOST:/tmp"

static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

static void randomize(char *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = letters[arc4random_uniform(sizeof letters - 1)];
}

/* Replaces the XXXXXX before `suffix` characters and calls create until it does not say EEXIST. */
static int withUniqueName(char *template_, size_t suffix, int (*create)(const char *, int), int flags) {
  size_t length = strlen(template_);
  if (length < 6 + suffix || memcmp(template_ + length - suffix - 6, "XXXXXX", 6) != 0) return errno = EINVAL, -1;
  char *x = template_ + length - suffix - 6;
  for (int attempt = 0; attempt < 100; attempt++) {
    randomize(x, 6);
    int result = create(template_, flags);
    if (result >= 0 || errno != EEXIST) return result;
  }
  memcpy(x, "XXXXXX", 6);
  return errno = EEXIST, -1;
}

static int createFile(const char *path, int flags) {
  return open(path, O_RDWR | O_CREAT | O_EXCL | (flags & ~O_ACCMODE), 0600);
}

static int createDirectory(const char *path, int flags) {
  (void)flags;
  return mkdir(path, 0700);
}

ROAM_WEAK int mkostemp(char *template_, int flags) { return withUniqueName(template_, 0, createFile, flags); }
ROAM_WEAK int mkstemp(char *template_) { return mkostemp(template_, 0); }

ROAM_WEAK char *mkdtemp(char *template_) {
  return withUniqueName(template_, 0, createDirectory, 0) == 0 ? template_ : NULL;
}

static int isDirectory(const char *path) {
  struct stat st;
  return path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* $TMPDIR, else /tmp; NULL (ENOENT, with a notice naming `function`) when neither exists. */
static const char *tempDirectory(const char *function, const char *preferred) {
  const char *candidates[] = {getenv("TMPDIR"), preferred, "/tmp"};
  for (size_t i = 0; i < 3; i++)
    if (isDirectory(candidates[i])) return candidates[i];
  return roam_unsupported_null(function, NO_TEMP_DIR, ENOENT);
}

static char *tmpfileNames[64];
static int tmpfileCount;

static void removeTmpfiles(void) {
  for (int i = 0; i < tmpfileCount; i++) unlink(tmpfileNames[i]);
}

ROAM_WEAK FILE *tmpfile(void) {
  const char *dir = tempDirectory("tmpfile", NULL);
  if (dir == NULL) return NULL;
  size_t n = strlen(dir) + sizeof "/tmpfile-XXXXXX";
  char *path = malloc(n);
  if (path == NULL) return NULL;
  strcpy(path, dir);
  strcat(path, "/tmpfile-XXXXXX");
  int fd = mkstemp(path);
  FILE *file = fd < 0 ? NULL : fdopen(fd, "w+");
  if (file == NULL) {
    if (fd >= 0) {
      close(fd);
      unlink(path);
    }
    free(path);
    return NULL;
  }
  if (tmpfileCount < (int)(sizeof tmpfileNames / sizeof tmpfileNames[0])) {
    if (tmpfileCount == 0) atexit(removeTmpfiles);
    tmpfileNames[tmpfileCount++] = path;
  } else {
    unlink(path); /* past the bookkeeping: unnamed, as POSIX has it (cannot migrate) */
    free(path);
  }
  return file;
}

/* A name under /tmp (P_tmpdir, as POSIX says; L_tmpnam is 20) that does not exist yet. */
ROAM_WEAK char *tmpnam(char *buffer) {
  static char own[L_tmpnam];
  if (!isDirectory("/tmp")) return roam_unsupported_null("tmpnam", NO_TEMP_DIR, ENOENT);
  char *name = buffer ? buffer : own;
  struct stat st;
  for (int attempt = 0; attempt < 100; attempt++) {
    strcpy(name, "/tmp/tmp.");
    randomize(name + 9, 6);
    name[15] = '\0';
    if (lstat(name, &st) != 0 && errno == ENOENT) return name;
  }
  return errno = EEXIST, NULL;
}

/* $TMPDIR, else dir, else /tmp; prefix (up to 5 characters) then random letters; malloc'd. */
ROAM_WEAK char *tempnam(const char *dir, const char *prefix) {
  const char *base = tempDirectory("tempnam", dir);
  if (base == NULL) return NULL;
  if (prefix == NULL) prefix = "file";
  size_t prefixLength = strnlen(prefix, 5);
  size_t baseLength = strlen(base);
  char *name = malloc(baseLength + 1 + prefixLength + 6 + 1);
  if (name == NULL) return NULL;
  struct stat st;
  for (int attempt = 0; attempt < 100; attempt++) {
    memcpy(name, base, baseLength);
    name[baseLength] = '/';
    memcpy(name + baseLength + 1, prefix, prefixLength);
    randomize(name + baseLength + 1 + prefixLength, 6);
    name[baseLength + 1 + prefixLength + 6] = '\0';
    if (lstat(name, &st) != 0 && errno == ENOENT) return name;
  }
  free(name);
  return errno = EEXIST, NULL;
}

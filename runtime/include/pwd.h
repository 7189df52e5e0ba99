/*
 * <pwd.h>, which wasi-libc lacks. The user database has one entry, root (uid 0, gid 0): WASI
 * files have no owners and stat reports uid 0, so the guest is the owner of what it sees. Its
 * home is $HOME, else "/"; its shell /bin/sh (runtime/posix/identity.c).
 */
#ifndef ROAM_PWD_H
#define ROAM_PWD_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct passwd {
  char *pw_name;
  char *pw_passwd;
  uid_t pw_uid;
  gid_t pw_gid;
  char *pw_gecos;
  char *pw_dir;
  char *pw_shell;
};

struct passwd *getpwuid(uid_t);
struct passwd *getpwnam(const char *);
int getpwuid_r(uid_t, struct passwd *, char *, size_t, struct passwd **);
int getpwnam_r(const char *, struct passwd *, char *, size_t, struct passwd **);
void setpwent(void);
void endpwent(void);
struct passwd *getpwent(void);

#ifdef __cplusplus
}
#endif

#endif

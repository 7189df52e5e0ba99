/*
 * <pwd.h> for wasm32-wasi, which has no user database and whose wasi-libc (2022) ships no
 * pwd.h: lookups find no one (NULL, errno 0), so programs fall back to $HOME and the like.
 * Definitions in wasi-compat.c. Recipes add -I compat/include only to builds that need it.
 */
#ifndef ROAM_RECIPES_PWD_H
#define ROAM_RECIPES_PWD_H

#include <sys/types.h>

struct passwd {
  char *pw_name;
  char *pw_passwd;
  uid_t pw_uid;
  gid_t pw_gid;
  char *pw_gecos;
  char *pw_dir;
  char *pw_shell;
};

struct passwd *getpwuid(uid_t uid);
struct passwd *getpwnam(const char *name);

#endif

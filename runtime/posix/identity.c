/*
 * Who the guest is and what it may use. One user: root (uid 0, gid 0), because WASI keeps no
 * owners and stat reports uid 0 for every file, so the guest owns what it sees; it holds no
 * capabilities, so changing identity fails with EPERM (as for root in a container without
 * CAP_SETUID). The host's identity, name and limits are never shown: the guest moves between
 * nodes and must see the same answers everywhere.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "posix.h"

/* ---- ids ---- */

ROAM_WEAK uid_t getuid(void) { return 0; }
ROAM_WEAK uid_t geteuid(void) { return 0; }
ROAM_WEAK gid_t getgid(void) { return 0; }
ROAM_WEAK gid_t getegid(void) { return 0; }

/* No supplementary groups. */
ROAM_WEAK int getgroups(int size, gid_t list[]) {
  (void)list;
  if (size < 0) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* -1 (leave as is) or the current id 0 succeed; anything else needs a capability. */
static int sameIds(long a, long b, long c) {
  long ids[3] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    if (ids[i] != -1 && ids[i] != 0) {
      errno = EPERM;
      return -1;
    }
  }
  return 0;
}

#define ID(x) ((x) == (__typeof__(x))-1 ? -1L : (long)(x))

ROAM_WEAK int setuid(uid_t uid) { return uid == (uid_t)-1 ? (errno = EINVAL, -1) : sameIds(ID(uid), -1, -1); }
ROAM_WEAK int seteuid(uid_t uid) { return uid == (uid_t)-1 ? (errno = EINVAL, -1) : sameIds(ID(uid), -1, -1); }
ROAM_WEAK int setgid(gid_t gid) { return gid == (gid_t)-1 ? (errno = EINVAL, -1) : sameIds(ID(gid), -1, -1); }
ROAM_WEAK int setegid(gid_t gid) { return gid == (gid_t)-1 ? (errno = EINVAL, -1) : sameIds(ID(gid), -1, -1); }
ROAM_WEAK int setreuid(uid_t r, uid_t e) { return sameIds(ID(r), ID(e), -1); }
ROAM_WEAK int setregid(gid_t r, gid_t e) { return sameIds(ID(r), ID(e), -1); }
ROAM_WEAK int setresuid(uid_t r, uid_t e, uid_t s) { return sameIds(ID(r), ID(e), ID(s)); }
ROAM_WEAK int setresgid(gid_t r, gid_t e, gid_t s) { return sameIds(ID(r), ID(e), ID(s)); }

ROAM_WEAK int getresuid(uid_t *r, uid_t *e, uid_t *s) {
  *r = *e = *s = 0;
  return 0;
}

ROAM_WEAK int getresgid(gid_t *r, gid_t *e, gid_t *s) {
  *r = *e = *s = 0;
  return 0;
}

/* ---- the user and group databases: root alone ---- */

static const char *home(void) {
  const char *value = getenv("HOME");
  return value && *value ? value : "/";
}

/* Copies the strings of the entry into buffer; ERANGE if it is too small. */
static int fillPasswd(struct passwd *pw, char *buffer, size_t size) {
  const char *strings[] = {"root", "x", "root", home(), "/bin/sh"};
  char **fields[] = {&pw->pw_name, &pw->pw_passwd, &pw->pw_gecos, &pw->pw_dir, &pw->pw_shell};
  size_t used = 0;
  for (int i = 0; i < 5; i++) {
    size_t n = strlen(strings[i]) + 1;
    if (used + n > size) return ERANGE;
    memcpy(buffer + used, strings[i], n);
    *fields[i] = buffer + used;
    used += n;
  }
  pw->pw_uid = 0;
  pw->pw_gid = 0;
  return 0;
}

static int lookupPasswd(int found, struct passwd *pw, char *buffer, size_t size, struct passwd **result) {
  *result = NULL;
  if (!found) return 0;
  int error = fillPasswd(pw, buffer, size);
  if (error == 0) *result = pw;
  return error;
}

ROAM_WEAK int getpwuid_r(uid_t uid, struct passwd *pw, char *buffer, size_t size, struct passwd **result) {
  return lookupPasswd(uid == 0, pw, buffer, size, result);
}

ROAM_WEAK int getpwnam_r(const char *name, struct passwd *pw, char *buffer, size_t size, struct passwd **result) {
  return lookupPasswd(strcmp(name, "root") == 0, pw, buffer, size, result);
}

static struct passwd staticPasswd;
static char staticPasswdBuffer[4096 + 64];

static struct passwd *staticLookup(int found) {
  struct passwd *result;
  int error = lookupPasswd(found, &staticPasswd, staticPasswdBuffer, sizeof staticPasswdBuffer, &result);
  errno = error; /* 0 when no one matches, as POSIX asks */
  return result;
}

ROAM_WEAK struct passwd *getpwuid(uid_t uid) { return staticLookup(uid == 0); }
ROAM_WEAK struct passwd *getpwnam(const char *name) { return staticLookup(strcmp(name, "root") == 0); }

static int passwdCursor;
ROAM_WEAK void setpwent(void) { passwdCursor = 0; }
ROAM_WEAK void endpwent(void) { passwdCursor = 0; }
ROAM_WEAK struct passwd *getpwent(void) { return staticLookup(passwdCursor++ == 0); }

static char *noMembers[] = {NULL};

static int lookupGroup(int found, struct group *gr, char *buffer, size_t size, struct group **result) {
  *result = NULL;
  if (!found) return 0;
  if (size < sizeof "root" + sizeof "x") return ERANGE;
  memcpy(buffer, "root", sizeof "root");
  memcpy(buffer + sizeof "root", "x", sizeof "x");
  gr->gr_name = buffer;
  gr->gr_passwd = buffer + sizeof "root";
  gr->gr_gid = 0;
  gr->gr_mem = noMembers;
  *result = gr;
  return 0;
}

ROAM_WEAK int getgrgid_r(gid_t gid, struct group *gr, char *buffer, size_t size, struct group **result) {
  return lookupGroup(gid == 0, gr, buffer, size, result);
}

ROAM_WEAK int getgrnam_r(const char *name, struct group *gr, char *buffer, size_t size, struct group **result) {
  return lookupGroup(strcmp(name, "root") == 0, gr, buffer, size, result);
}

static struct group staticGroup;
static char staticGroupBuffer[16];

static struct group *staticGroupLookup(int found) {
  struct group *result;
  errno = lookupGroup(found, &staticGroup, staticGroupBuffer, sizeof staticGroupBuffer, &result);
  return result;
}

ROAM_WEAK struct group *getgrgid(gid_t gid) { return staticGroupLookup(gid == 0); }
ROAM_WEAK struct group *getgrnam(const char *name) { return staticGroupLookup(strcmp(name, "root") == 0); }

static int groupCursor;
ROAM_WEAK void setgrent(void) { groupCursor = 0; }
ROAM_WEAK void endgrent(void) { groupCursor = 0; }
ROAM_WEAK struct group *getgrent(void) { return staticGroupLookup(groupCursor++ == 0); }

/* The login name is the one user's. */
ROAM_WEAK char *getlogin(void) { return "root"; }

ROAM_WEAK int getlogin_r(char *name, size_t size) {
  if (size < sizeof "root") return ERANGE;
  memcpy(name, "root", sizeof "root");
  return 0;
}

/* ---- the machine: a node-neutral view, the same on every node the guest moves to ---- */

static const char *nodename(void) {
  const char *value = getenv("HOSTNAME");
  return value && *value ? value : "roam";
}

ROAM_WEAK int gethostname(char *name, size_t size) {
  const char *value = nodename();
  size_t n = strlen(value) + 1;
  if (n > size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(name, value, n);
  return 0;
}

static void field(char *to, const char *value) {
  strncpy(to, value, 64);
  to[64] = '\0';
}

/* sysname "WASI": the guest runs on no particular kernel, and no program should take Linux-only
 * paths (/proc, epoll) because of what it reads here. */
ROAM_WEAK int uname(struct utsname *u) {
  memset(u, 0, sizeof *u);
  field(u->sysname, "WASI");
  field(u->nodename, nodename());
  field(u->release, "preview1");
  field(u->version, "roam");
  field(u->machine, "wasm32");
  return 0;
}

ROAM_WEAK int getpagesize(void) { return (int)sysconf(_SC_PAGESIZE); }

/* ---- limits: recorded and reported, not enforced ---- */

#define MiB (1024ULL * 1024)

static struct rlimit limits[RLIMIT_NLIMITS] = {
    [RLIMIT_CPU] = {RLIM_INFINITY, RLIM_INFINITY},
    [RLIMIT_FSIZE] = {RLIM_INFINITY, RLIM_INFINITY},
    [RLIMIT_DATA] = {RLIM_INFINITY, RLIM_INFINITY},
    [RLIMIT_STACK] = {8 * MiB, 8 * MiB}, /* roam cc's default stack (wasm-ld -z stack-size) */
    [RLIMIT_CORE] = {0, 0},
    [RLIMIT_RSS] = {RLIM_INFINITY, RLIM_INFINITY},
    [RLIMIT_NPROC] = {1, 1}, /* itself: no process can be started */
    [RLIMIT_NOFILE] = {1024, 1024},
    [RLIMIT_MEMLOCK] = {RLIM_INFINITY, RLIM_INFINITY},
    [RLIMIT_AS] = {4096 * MiB, 4096 * MiB}, /* wasm32's whole address space */
    [RLIMIT_LOCKS] = {RLIM_INFINITY, RLIM_INFINITY},
    [RLIMIT_SIGPENDING] = {64, 64},
    [RLIMIT_MSGQUEUE] = {0, 0},
    [RLIMIT_NICE] = {0, 0},
    [RLIMIT_RTPRIO] = {0, 0},
    [RLIMIT_RTTIME] = {RLIM_INFINITY, RLIM_INFINITY},
};

ROAM_WEAK int getrlimit(int resource, struct rlimit *limit) {
  if (resource < 0 || resource >= RLIMIT_NLIMITS) {
    errno = EINVAL;
    return -1;
  }
  *limit = limits[resource];
  return 0;
}

ROAM_WEAK int setrlimit(int resource, const struct rlimit *limit) {
  if (resource < 0 || resource >= RLIMIT_NLIMITS || limit->rlim_cur > limit->rlim_max) {
    errno = EINVAL;
    return -1;
  }
  if (limit->rlim_max > limits[resource].rlim_max) {
    errno = EPERM; /* raising a hard limit needs CAP_SYS_RESOURCE */
    return -1;
  }
  limits[resource] = *limit;
  return 0;
}

ROAM_WEAK int getdtablesize(void) { return (int)limits[RLIMIT_NOFILE].rlim_cur; }

static int niceness;

/* Lowering niceness needs CAP_SYS_NICE; raising it is recorded (one process: nothing to yield to). */
ROAM_WEAK int nice(int increment) {
  if (increment < 0) {
    errno = EPERM;
    return -1;
  }
  niceness = niceness + increment > 19 ? 19 : niceness + increment;
  return niceness;
}

/* The same niceness, for this process (who 0 or its pid), its group or its user (0: root). */
static int ownTarget(int which, unsigned int who) {
  if (which != PRIO_PROCESS && which != PRIO_PGRP && which != PRIO_USER) return errno = EINVAL, 0;
  if (who != 0 && who != (which == PRIO_USER ? 0u : (unsigned int)getpid())) return errno = ESRCH, 0;
  return 1;
}

ROAM_WEAK int getpriority(int which, unsigned int who) {
  if (!ownTarget(which, who)) return -1;
  errno = 0;
  return niceness;
}

/* Raising niceness is recorded; lowering it needs CAP_SYS_NICE (EPERM), as nice(). */
ROAM_WEAK int setpriority(int which, unsigned int who, int value) {
  if (!ownTarget(which, who)) return -1;
  if (value < niceness) return errno = EPERM, -1;
  niceness = value > 19 ? 19 : value;
  return 0;
}

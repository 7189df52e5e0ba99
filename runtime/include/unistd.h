/*
 * wasi-libc's <unistd.h> plus what the POSIX layer (runtime/posix/, docs/posix.md) defines and
 * wasi-libc hides or lacks. Only what the layer defines is declared, so configure checks find
 * exactly what links.
 */
#include_next <unistd.h>

#ifndef ROAM_UNISTD_H
#define ROAM_UNISTD_H

#ifdef __cplusplus
extern "C" {
#endif

/* descriptors.c: WASI preview 1 has no dup or pipe (ENOSYS until the host provides them). */
int pipe(int[2]);
int dup(int);
int dup2(int, int);

/* files.c */
int chown(const char *, uid_t, gid_t);
int fchown(int, uid_t, gid_t);
int lchown(const char *, uid_t, gid_t);
int fchownat(int, const char *, uid_t, gid_t, int);

/* signals.c */
unsigned alarm(unsigned);
int pause(void);

/* process.c: no other process can be started (ENOSYS). */
pid_t fork(void);
int execve(const char *, char *const[], char *const[]);
int execv(const char *, char *const[]);
int execle(const char *, const char *, ...);
int execl(const char *, const char *, ...);
int execvp(const char *, char *const[]);
int execlp(const char *, const char *, ...);
int fexecve(int, char *const[], char *const[]);
/* process.c: the guest leads its own session and group; its parent is outside (0). */
pid_t getppid(void);
pid_t getpgrp(void);
pid_t getpgid(pid_t);
pid_t getsid(pid_t);
pid_t setsid(void);
int setpgid(pid_t, pid_t);

/* descriptors.c: stdio is never a terminal a guest can reach. */
char *ttyname(int);
int ttyname_r(int, char *, size_t);

/* identity.c: one user, root (uid 0, gid 0), which owns every file as WASI reports them. */
uid_t getuid(void);
uid_t geteuid(void);
gid_t getgid(void);
gid_t getegid(void);
int getgroups(int, gid_t[]);
int setuid(uid_t);
int seteuid(uid_t);
int setgid(gid_t);
int setegid(gid_t);

#if defined(_XOPEN_SOURCE) || defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
int setreuid(uid_t, uid_t);
int setregid(gid_t, gid_t);
int lockf(int, int, off_t);
int nice(int);
void sync(void);
#endif

#if defined(_GNU_SOURCE) || defined(_BSD_SOURCE)
pid_t vfork(void);
int chroot(const char *);
int getpagesize(void);
int getdtablesize(void);
char *getpass(const char *);
#endif

#ifdef _GNU_SOURCE
char *get_current_dir_name(void);
int pipe2(int[2], int);
int dup3(int, int, int);
int execvpe(const char *, char *const[], char *const[]);
int setresuid(uid_t, uid_t, uid_t);
int setresgid(gid_t, gid_t, gid_t);
int getresuid(uid_t *, uid_t *, uid_t *);
int getresgid(gid_t *, gid_t *, gid_t *);
#endif

#ifdef __cplusplus
}
#endif

#endif

/*
 * Processes. A WASI guest is one process and cannot start others: fork, exec, system and popen
 * fail with ENOSYS and say so once. It therefore never has children, so the wait family fails
 * with ECHILD exactly as on Linux for a process without children (no notice: that answer is
 * true). kill() of another pid is in signals.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "posix.h"

ROAM_WEAK pid_t fork(void) { return roam_unsupported("fork", ROAM_NO_PROCESSES, ENOSYS); }
ROAM_WEAK pid_t vfork(void) { return roam_unsupported("vfork", ROAM_NO_PROCESSES, ENOSYS); }

ROAM_WEAK int execve(const char *path, char *const argv[], char *const envp[]) {
  (void)path, (void)argv, (void)envp;
  return roam_unsupported("execve", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK int execv(const char *path, char *const argv[]) {
  (void)path, (void)argv;
  return roam_unsupported("execv", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK int execvp(const char *file, char *const argv[]) {
  (void)file, (void)argv;
  return roam_unsupported("execvp", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK int execvpe(const char *file, char *const argv[], char *const envp[]) {
  (void)file, (void)argv, (void)envp;
  return roam_unsupported("execvpe", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK int fexecve(int fd, char *const argv[], char *const envp[]) {
  (void)fd, (void)argv, (void)envp;
  return roam_unsupported("fexecve", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK int execl(const char *path, const char *arg, ...) {
  (void)path, (void)arg;
  return roam_unsupported("execl", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK int execlp(const char *file, const char *arg, ...) {
  (void)file, (void)arg;
  return roam_unsupported("execlp", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK int execle(const char *path, const char *arg, ...) {
  (void)path, (void)arg;
  return roam_unsupported("execle", ROAM_NO_PROCESSES, ENOSYS);
}

/* system(NULL) asks whether a command processor exists: there is none (0). */
ROAM_WEAK int system(const char *command) {
  if (command == NULL) return 0;
  return roam_unsupported("system", ROAM_NO_PROCESSES, ENOSYS);
}

ROAM_WEAK FILE *popen(const char *command, const char *mode) {
  (void)command, (void)mode;
  return roam_unsupported_null("popen", ROAM_NO_PROCESSES, ENOSYS);
}

/* No stream ever came from popen. */
ROAM_WEAK int pclose(FILE *stream) {
  (void)stream;
  errno = ECHILD;
  return -1;
}

static pid_t noChildren(int *status) {
  (void)status;
  errno = ECHILD;
  return -1;
}

ROAM_WEAK pid_t wait(int *status) { return noChildren(status); }

ROAM_WEAK pid_t waitpid(pid_t pid, int *status, int options) {
  (void)pid, (void)options;
  return noChildren(status);
}

ROAM_WEAK pid_t wait3(int *status, int options, struct rusage *usage) {
  (void)options, (void)usage;
  return noChildren(status);
}

ROAM_WEAK pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage) {
  (void)pid, (void)options, (void)usage;
  return noChildren(status);
}

/*
 * ---- Process groups and sessions: the guest is the only process of its own session and group
 * (their leader), and its parent is outside its world, as for a PID namespace's first process.
 */
ROAM_WEAK pid_t getppid(void) { return 0; }
ROAM_WEAK pid_t getpgrp(void) { return getpid(); }

static pid_t ownGroup(pid_t pid) {
  if (pid != 0 && pid != getpid()) return errno = ESRCH, -1;
  return getpid();
}

ROAM_WEAK pid_t getpgid(pid_t pid) { return ownGroup(pid); }
ROAM_WEAK pid_t getsid(pid_t pid) { return ownGroup(pid); }

/* Already a group leader: Linux's EPERM. */
ROAM_WEAK pid_t setsid(void) { return errno = EPERM, -1; }

ROAM_WEAK int setpgid(pid_t pid, pid_t group) {
  if (ownGroup(pid) < 0) return -1;
  if (group != 0 && group != getpid()) return errno = EPERM, -1;
  return 0;
}

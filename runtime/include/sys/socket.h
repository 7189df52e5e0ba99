/*
 * wasi-libc's <sys/socket.h> plus the sockets of the POSIX layer (runtime/posix/sockets.c,
 * docs/posix.md). wasi-libc's own values stay (AF_INET 1, AF_INET6 2, AF_UNIX 3, SOCK_STREAM 6,
 * SOL_SOCKET 0x7fffffff, SO_TYPE 3): its compiled inet_pton, inet_ntop, shutdown and poll use
 * them. Options take Linux's numbers.
 */
#include_next <sys/socket.h>

#ifndef ROAM_SYS_SOCKET_H
#define ROAM_SYS_SOCKET_H

#ifdef __cplusplus
extern "C" {
#endif

#define AF_LOCAL AF_UNIX
#define AF_FILE AF_UNIX
#define PF_UNSPEC AF_UNSPEC
#define PF_INET AF_INET
#define PF_INET6 AF_INET6
#define PF_UNIX AF_UNIX
#define PF_LOCAL AF_UNIX
#define PF_FILE AF_UNIX

/* Options (Linux's numbers; SO_TYPE is wasi-libc's, and the same). */
#define SO_REUSEADDR 2
#define SO_ERROR 4
#define SO_SNDBUF 7
#define SO_RCVBUF 8
#define SO_KEEPALIVE 9
#define SO_LINGER 13
#define SO_REUSEPORT 15
/* A struct timeval: recv, send, accept (not read and write) fail with EAGAIN after that long. */
#define SO_RCVTIMEO 20
#define SO_SNDTIMEO 21
#define SO_ACCEPTCONN 30
#define SO_PROTOCOL 38
#define SO_DOMAIN 39

/* listen()'s backlog is not limited: any value is accepted. */
#define SOMAXCONN 4096

/* send and recv flags beyond wasi-libc's MSG_PEEK and MSG_WAITALL. */
#define MSG_DONTWAIT 0x0040
#define MSG_NOSIGNAL 0x4000
#define MSG_MORE 0x8000

int socket(int, int, int);
int socketpair(int, int, int, int[2]);
int bind(int, const struct sockaddr *, socklen_t);
int connect(int, const struct sockaddr *, socklen_t);
int listen(int, int);
int getsockname(int, struct sockaddr *__restrict, socklen_t *__restrict);
int getpeername(int, struct sockaddr *__restrict, socklen_t *__restrict);
ssize_t sendto(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
ssize_t recvfrom(int, void *__restrict, size_t, int, struct sockaddr *__restrict, socklen_t *__restrict);
ssize_t sendmsg(int, const struct msghdr *, int);
ssize_t recvmsg(int, struct msghdr *, int);
int setsockopt(int, int, int, const void *, socklen_t);

#ifdef __cplusplus
}
#endif

#endif

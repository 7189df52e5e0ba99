/*
 * Sockets. WASI preview 1 can accept, read, write and shut down a socket it was handed, no more;
 * Roam's host adds the rest in its `roam_posix` module (src/wasi/host.ts, descriptors/socket.ts):
 * a socket of the guest's own binds a port of its container, listens (on a port the container
 * publishes, the gateway's clients arrive there too), and connects to a listener of the same
 * container over loopback. Blocking calls (accept, recv, send) go through WASI's sock_accept,
 * sock_recv and sock_send, which the host suspends; every roam_posix call answers at once.
 *
 * Addresses cross to the host as a roam_sockaddr: family (wasi-libc's AF_*), port in host order,
 * 16 address bytes in network order (IPv4 in the first 4). Numeric addresses, "localhost" and the
 * container's own name (gethostname) resolve here; other names are looked up by the gateway's node,
 * where the container's outgoing connections come from (sock_resolve, which waits for it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>
#include <wasi/api.h>
#include "posix.h"

struct roam_sockaddr {
  uint16_t family;
  uint16_t port;
  uint8_t addr[16];
};

#define ROAM_POSIX(name) __attribute__((import_module("roam_posix"), import_name(#name)))
ROAM_POSIX(sock_open) uint16_t roam_sock_open(int32_t family, int32_t fdflags, int32_t *fd);
ROAM_POSIX(sock_pair) uint16_t roam_sock_pair(int32_t *fds);
ROAM_POSIX(sock_bind) uint16_t roam_sock_bind(int32_t fd, const struct roam_sockaddr *addr);
ROAM_POSIX(sock_listen) uint16_t roam_sock_listen(int32_t fd, int32_t backlog);
ROAM_POSIX(sock_connect) uint16_t roam_sock_connect(int32_t fd, const struct roam_sockaddr *addr);
ROAM_POSIX(sock_addr) uint16_t roam_sock_addr(int32_t fd, int32_t peer, struct roam_sockaddr *addr);
ROAM_POSIX(sock_getopt) uint16_t roam_sock_getopt(int32_t fd, int32_t option, int32_t *value);
ROAM_POSIX(sock_setopt) uint16_t roam_sock_setopt(int32_t fd, int32_t option, int32_t value);
/* One answer of sock_resolve: family 4 or 6, then the address (IPv4 in the first 4 bytes). */
struct roam_resolved {
  uint8_t family;
  uint8_t unused[3];
  uint8_t addr[16];
};
ROAM_POSIX(sock_resolve)
uint16_t roam_sock_resolve(const char *name, size_t length, struct roam_resolved *out, size_t max, uint32_t *count);

/* The host's option numbers (SockOpt in src/wasi/descriptors/socket.ts); 0: not an option it knows. */
enum {
  OPT_UNKNOWN = 0,
  OPT_TYPE = 1,
  OPT_ERROR,
  OPT_ACCEPTCONN,
  OPT_DOMAIN,
  OPT_REUSEADDR,
  OPT_REUSEPORT,
  OPT_KEEPALIVE,
  OPT_RCVBUF,
  OPT_SNDBUF,
  OPT_LINGER,
  OPT_NODELAY,
  OPT_KEEPIDLE,
  OPT_KEEPINTVL,
  OPT_KEEPCNT,
  OPT_V6ONLY,
  OPT_RCVTIMEO,
  OPT_SNDTIMEO,
};

static int fail(uint16_t error) { return errno = error, -1; }
static int awaitReady(int fd, int option, short events);

/* ---- addresses ---- */

static int fromSockaddr(const struct sockaddr *sa, socklen_t len, struct roam_sockaddr *out) {
  if (sa == NULL) return fail(EFAULT);
  if (len < sizeof(sa_family_t)) return fail(EINVAL);
  memset(out, 0, sizeof *out);
  out->family = sa->sa_family;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    if (len < offsetof(struct sockaddr_in, sin_addr) + sizeof in->sin_addr) return fail(EINVAL);
    out->port = ntohs(in->sin_port);
    memcpy(out->addr, &in->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (len < offsetof(struct sockaddr_in6, sin6_scope_id) + sizeof in6->sin6_scope_id) return fail(EINVAL);
    out->port = ntohs(in6->sin6_port);
    memcpy(out->addr, &in6->sin6_addr, 16);
    return 0;
  }
  return fail(EAFNOSUPPORT);
}

/* Writes the address as a sockaddr of its family; truncated to *len, which then holds its size. */
static void toSockaddr(const struct roam_sockaddr *in, struct sockaddr *sa, socklen_t *len) {
  struct sockaddr_storage full;
  socklen_t size;
  memset(&full, 0, sizeof full);
  if (in->family == AF_INET) {
    struct sockaddr_in *out = (struct sockaddr_in *)&full;
    out->sin_family = AF_INET;
    out->sin_port = htons(in->port);
    memcpy(&out->sin_addr, in->addr, 4);
    size = sizeof *out;
  } else if (in->family == AF_INET6) {
    struct sockaddr_in6 *out = (struct sockaddr_in6 *)&full;
    out->sin6_family = AF_INET6;
    out->sin6_port = htons(in->port);
    memcpy(&out->sin6_addr, in->addr, 16);
    size = sizeof *out;
  } else {
    full.ss_family = in->family;
    size = sizeof(sa_family_t);
  }
  if (sa != NULL && len != NULL) memcpy(sa, &full, *len < size ? *len : size);
  if (len != NULL) *len = size;
}

static int socketAddress(int fd, int peer, struct sockaddr *sa, socklen_t *len) {
  if (len == NULL) return fail(EFAULT);
  struct roam_sockaddr addr;
  uint16_t error = roam_sock_addr(fd, peer, &addr);
  if (error != 0) return fail(error);
  toSockaddr(&addr, sa, len);
  return 0;
}

/* ---- sockets ---- */

ROAM_WEAK int socket(int domain, int type, int protocol) {
  int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
  type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (domain == AF_UNIX)
    return roam_unsupported("socket(AF_UNIX)", "WASI has no socket files; use TCP on 127.0.0.1", EAFNOSUPPORT);
  if (domain != AF_INET && domain != AF_INET6) return fail(EAFNOSUPPORT);
  if (type == SOCK_DGRAM)
    return roam_unsupported("socket(SOCK_DGRAM)", "only stream sockets are provided", EPROTONOSUPPORT);
  if (type != SOCK_STREAM) return fail(EINVAL);
  if (protocol != 0 && protocol != IPPROTO_TCP) return fail(EPROTONOSUPPORT);
  int32_t fd;
  uint16_t error = roam_sock_open(domain, (flags & SOCK_NONBLOCK) ? __WASI_FDFLAGS_NONBLOCK : 0, &fd);
  return error != 0 ? fail(error) : fd;
}

/* A connected pair of AF_UNIX stream sockets: in-container, like a two-way pipe. */
ROAM_WEAK int socketpair(int domain, int type, int protocol, int fds[2]) {
  int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
  type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (domain != AF_UNIX) return fail(domain == AF_INET || domain == AF_INET6 ? EOPNOTSUPP : EAFNOSUPPORT);
  if (type != SOCK_STREAM)
    return roam_unsupported("socketpair(SOCK_DGRAM)", "only stream sockets are provided", EPROTONOSUPPORT);
  if (protocol != 0) return fail(EPROTONOSUPPORT);
  int32_t ends[2];
  uint16_t error = roam_sock_pair(ends);
  if (error != 0) return fail(error);
  if (flags & SOCK_NONBLOCK)
    for (int i = 0; i < 2; i++) (void)__wasi_fd_fdstat_set_flags((__wasi_fd_t)ends[i], __WASI_FDFLAGS_NONBLOCK);
  fds[0] = ends[0];
  fds[1] = ends[1];
  return 0;
}

ROAM_WEAK int bind(int fd, const struct sockaddr *sa, socklen_t len) {
  struct roam_sockaddr addr;
  if (fromSockaddr(sa, len, &addr) != 0) return -1;
  uint16_t error = roam_sock_bind(fd, &addr);
  return error != 0 ? fail(error) : 0;
}

ROAM_WEAK int listen(int fd, int backlog) {
  uint16_t error = roam_sock_listen(fd, backlog);
  return error != 0 ? fail(error) : 0;
}

/*
 * In-container connections complete at once. One to another host goes out through the cluster's
 * gateway and answers EINPROGRESS: a non-blocking connect returns it, as Linux does; a blocking one
 * waits until the socket is writable and returns how the connection ended (SO_ERROR).
 */
ROAM_WEAK int connect(int fd, const struct sockaddr *sa, socklen_t len) {
  struct roam_sockaddr addr;
  if (fromSockaddr(sa, len, &addr) != 0) return -1;
  uint16_t error = roam_sock_connect(fd, &addr);
  if (error == ENETUNREACH)
    return roam_unsupported("connect(to another host)",
                            "outgoing connections go through a cluster's gateway, and this container has none "
                            "(roam up, then roam run)",
                            ENETUNREACH);
  if (error != EINPROGRESS) return error != 0 ? fail(error) : 0;
  __wasi_fdstat_t stat;
  if (__wasi_fd_fdstat_get((__wasi_fd_t)fd, &stat) != 0 || (stat.fs_flags & __WASI_FDFLAGS_NONBLOCK))
    return fail(EINPROGRESS);
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, -1) < 0) return -1;
  int32_t outcome = 0;
  uint16_t failed = roam_sock_getopt(fd, OPT_ERROR, &outcome);
  if (failed != 0) return fail(failed);
  return outcome != 0 ? fail(outcome) : 0;
}

ROAM_WEAK int accept4(int fd, struct sockaddr *__restrict sa, socklen_t *__restrict len, int flags) {
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return fail(EINVAL);
  if (awaitReady(fd, OPT_RCVTIMEO, POLLIN) != 0) return -1;
  __wasi_fd_t accepted;
  __wasi_errno_t error =
      __wasi_sock_accept((__wasi_fd_t)fd, (flags & SOCK_NONBLOCK) ? __WASI_FDFLAGS_NONBLOCK : 0, &accepted);
  if (error != 0) return fail(error);
  if (sa != NULL && len != NULL && socketAddress((int)accepted, 1, sa, len) != 0) {
    /* The peer has an address as long as the connection exists; report none rather than fail. */
    *len = 0;
  }
  return (int)accepted;
}

ROAM_WEAK int accept(int fd, struct sockaddr *__restrict sa, socklen_t *__restrict len) {
  return accept4(fd, sa, len, 0);
}

ROAM_WEAK int getsockname(int fd, struct sockaddr *__restrict sa, socklen_t *__restrict len) {
  return socketAddress(fd, 0, sa, len);
}

ROAM_WEAK int getpeername(int fd, struct sockaddr *__restrict sa, socklen_t *__restrict len) {
  return socketAddress(fd, 1, sa, len);
}

/* ---- options ---- */

static int optionOf(int level, int name) {
  if (level == SOL_SOCKET) {
    switch (name) {
    case SO_TYPE: return OPT_TYPE;
    case SO_ERROR: return OPT_ERROR;
    case SO_ACCEPTCONN: return OPT_ACCEPTCONN;
    case SO_DOMAIN: return OPT_DOMAIN;
    case SO_PROTOCOL: return OPT_DOMAIN; /* answered from the domain below */
    case SO_REUSEADDR: return OPT_REUSEADDR;
    case SO_REUSEPORT: return OPT_REUSEPORT;
    case SO_KEEPALIVE: return OPT_KEEPALIVE;
    case SO_RCVBUF: return OPT_RCVBUF;
    case SO_SNDBUF: return OPT_SNDBUF;
    case SO_LINGER: return OPT_LINGER;
    case SO_RCVTIMEO: return OPT_RCVTIMEO;
    case SO_SNDTIMEO: return OPT_SNDTIMEO;
    }
  } else if (level == IPPROTO_TCP) {
    switch (name) {
    case TCP_NODELAY: return OPT_NODELAY;
    case TCP_KEEPIDLE: return OPT_KEEPIDLE;
    case TCP_KEEPINTVL: return OPT_KEEPINTVL;
    case TCP_KEEPCNT: return OPT_KEEPCNT;
    }
  } else if (level == IPPROTO_IPV6) {
    if (name == IPV6_V6ONLY) return OPT_V6ONLY;
  }
  /* The host checks the descriptor first (EBADF, ENOTSOCK), then answers ENOPROTOOPT. */
  return OPT_UNKNOWN;
}

ROAM_WEAK int getsockopt(int fd, int level, int name, void *__restrict value, socklen_t *__restrict len) {
  int option = optionOf(level, name);
  int32_t v;
  uint16_t error = roam_sock_getopt(fd, option, &v);
  if (error != 0) return fail(error);
  if (value == NULL || len == NULL) return fail(EFAULT);
  if (level == SOL_SOCKET && name == SO_PROTOCOL) v = v == AF_UNIX ? 0 : IPPROTO_TCP;
  if (option == OPT_LINGER) {
    struct linger l = {.l_onoff = v >= 0, .l_linger = v >= 0 ? v : 0};
    if (*len < (socklen_t)sizeof l) return fail(EINVAL);
    memcpy(value, &l, sizeof l);
    *len = sizeof l;
    return 0;
  }
  if (option == OPT_RCVTIMEO || option == OPT_SNDTIMEO) {
    struct timeval tv = {.tv_sec = v / 1000, .tv_usec = (v % 1000) * 1000};
    if (*len < (socklen_t)sizeof tv) return fail(EINVAL);
    memcpy(value, &tv, sizeof tv);
    *len = sizeof tv;
    return 0;
  }
  /* As Linux: an int, or as much of it as fits. */
  socklen_t n = *len < (socklen_t)sizeof v ? *len : (socklen_t)sizeof v;
  memcpy(value, &v, n);
  *len = n;
  return 0;
}

ROAM_WEAK int setsockopt(int fd, int level, int name, const void *value, socklen_t len) {
  int option = optionOf(level, name);
  int32_t v = 0;
  if (option == OPT_LINGER) {
    struct linger l;
    if (value == NULL) return fail(EFAULT);
    if (len < (socklen_t)sizeof l) return fail(EINVAL);
    memcpy(&l, value, sizeof l);
    v = l.l_onoff ? (l.l_linger < 0 ? 0 : l.l_linger) : -1;
  } else if (option == OPT_RCVTIMEO || option == OPT_SNDTIMEO) {
    struct timeval tv;
    if (value == NULL) return fail(EFAULT);
    if (len < (socklen_t)sizeof tv) return fail(EINVAL);
    memcpy(&tv, value, sizeof tv);
    if (tv.tv_sec < 0 || tv.tv_usec < 0 || tv.tv_usec >= 1000000) return fail(EDOM);
    /* In milliseconds, rounded up; beyond 24 days, no limit (0), as a timeout that long never ends here. */
    long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    v = ms > INT32_MAX ? 0 : (int32_t)ms;
  } else if (option != OPT_UNKNOWN) {
    if (value == NULL) return fail(EFAULT);
    if (len < (socklen_t)sizeof v) return fail(EINVAL);
    memcpy(&v, value, sizeof v);
  }
  uint16_t error = roam_sock_setopt(fd, option, v);
  return error != 0 ? fail(error) : 0;
}

/* ---- data ---- */

/*
 * SO_RCVTIMEO / SO_SNDTIMEO of a blocking socket: wait at most that long for it to be ready
 * (poll, which the host suspends), then EAGAIN as Linux. 0 when ready, -1 with EAGAIN otherwise.
 * Sockets without a timeout, and other descriptors, go straight on.
 */
static int awaitReady(int fd, int option, short events) {
  int32_t ms;
  if (roam_sock_getopt(fd, option, &ms) != 0 || ms <= 0) return 0;
  __wasi_fdstat_t stat;
  if (__wasi_fd_fdstat_get((__wasi_fd_t)fd, &stat) != 0 || (stat.fs_flags & __WASI_FDFLAGS_NONBLOCK)) return 0;
  struct pollfd p = {.fd = fd, .events = events};
  int n = poll(&p, 1, ms);
  if (n == 0) return fail(EAGAIN);
  return n < 0 ? -1 : 0;
}

#define SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE)
#define RECV_FLAGS (MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT)

/* Runs one call non-blocking (MSG_DONTWAIT): the descriptor's flags are set around it. */
struct nonblocking {
  int active;
  __wasi_fdflags_t flags;
};

static int beginDontwait(int fd, int dontwait, struct nonblocking *state) {
  state->active = 0;
  if (!dontwait) return 0;
  __wasi_fdstat_t stat;
  __wasi_errno_t error = __wasi_fd_fdstat_get((__wasi_fd_t)fd, &stat);
  if (error != 0) return fail(error);
  if (stat.fs_flags & __WASI_FDFLAGS_NONBLOCK) return 0;
  error = __wasi_fd_fdstat_set_flags((__wasi_fd_t)fd, stat.fs_flags | __WASI_FDFLAGS_NONBLOCK);
  if (error != 0) return fail(error);
  state->active = 1;
  state->flags = stat.fs_flags;
  return 0;
}

static void endDontwait(int fd, const struct nonblocking *state) {
  if (state->active) (void)__wasi_fd_fdstat_set_flags((__wasi_fd_t)fd, state->flags);
}

static ssize_t sendv(int fd, const struct iovec *iov, int count, int flags) {
  if (flags & ~SEND_FLAGS) return fail(EOPNOTSUPP);
  struct nonblocking nb;
  if (!(flags & MSG_DONTWAIT) && awaitReady(fd, OPT_SNDTIMEO, POLLOUT) != 0) return -1;
  if (beginDontwait(fd, flags & MSG_DONTWAIT, &nb) != 0) return -1;
  size_t sent;
  __wasi_errno_t error = __wasi_sock_send((__wasi_fd_t)fd, (const __wasi_ciovec_t *)iov, (size_t)count, 0, &sent);
  endDontwait(fd, &nb);
  return error != 0 ? fail(error) : (ssize_t)sent;
}

/* MSG_WAITALL: until every iovec is full, the end of the stream, or an error after some bytes. */
static ssize_t recvv(int fd, struct iovec *iov, int count, int flags) {
  if (flags & ~RECV_FLAGS) return fail(EOPNOTSUPP);
  struct nonblocking nb;
  if (beginDontwait(fd, flags & MSG_DONTWAIT, &nb) != 0) return -1;
  size_t wanted = 0;
  for (int i = 0; i < count; i++) wanted += iov[i].iov_len;
  size_t total = 0;
  __wasi_errno_t error = 0;
  for (;;) {
    size_t n;
    __wasi_roflags_t roflags;
    if (!(flags & MSG_DONTWAIT) && awaitReady(fd, OPT_RCVTIMEO, POLLIN) != 0) {
      error = errno;
      break;
    }
    error = __wasi_sock_recv((__wasi_fd_t)fd, (const __wasi_iovec_t *)iov, (size_t)count,
                             (flags & MSG_PEEK) ? __WASI_RIFLAGS_RECV_PEEK : 0, &n, &roflags);
    if (error != 0) break;
    total += n;
    if (!(flags & MSG_WAITALL) || (flags & MSG_PEEK) || n == 0 || total == wanted) break;
    /* Go on after the bytes already in: skip what the iovecs hold so far. */
    while (count > 0 && n >= iov->iov_len) {
      n -= iov->iov_len;
      iov++;
      count--;
    }
    if (count == 0) break;
    iov->iov_base = (char *)iov->iov_base + n;
    iov->iov_len -= n;
  }
  endDontwait(fd, &nb);
  if (error != 0 && total == 0) return fail(error);
  return (ssize_t)total;
}

ROAM_WEAK ssize_t send(int fd, const void *buf, size_t len, int flags) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  return sendv(fd, &iov, 1, flags);
}

ROAM_WEAK ssize_t recv(int fd, void *buf, size_t len, int flags) {
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  return recvv(fd, &iov, 1, flags);
}

/* A stream socket ignores the destination of sendto, as Linux's TCP does once connected. */
ROAM_WEAK ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t alen) {
  (void)sa, (void)alen;
  return send(fd, buf, len, flags);
}

ROAM_WEAK ssize_t recvfrom(int fd, void *__restrict buf, size_t len, int flags, struct sockaddr *__restrict sa,
                           socklen_t *__restrict alen) {
  ssize_t n = recv(fd, buf, len, flags);
  if (n >= 0 && sa != NULL && alen != NULL && socketAddress(fd, 1, sa, alen) != 0) *alen = 0;
  return n;
}

ROAM_WEAK ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  if (msg->msg_controllen != 0) return fail(EOPNOTSUPP); /* no ancillary data: no descriptors to pass */
  return sendv(fd, msg->msg_iov, msg->msg_iovlen, flags);
}

ROAM_WEAK ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  struct iovec iov[64];
  int count = msg->msg_iovlen;
  if (count < 0 || count > 64) return fail(EMSGSIZE);
  memcpy(iov, msg->msg_iov, (size_t)count * sizeof *iov);
  ssize_t n = recvv(fd, iov, count, flags);
  if (n < 0) return -1;
  if (msg->msg_name != NULL && socketAddress(fd, 1, msg->msg_name, &msg->msg_namelen) != 0) msg->msg_namelen = 0;
  msg->msg_controllen = 0;
  msg->msg_flags = 0;
  return n;
}

/* ---- IPv4 address text ---- */

ROAM_WEAK in_addr_t inet_addr(const char *text) {
  struct in_addr a;
  return inet_aton(text, &a) ? a.s_addr : (in_addr_t)-1;
}

ROAM_WEAK in_addr_t inet_network(const char *text) {
  struct in_addr a;
  return inet_aton(text, &a) ? ntohl(a.s_addr) : (in_addr_t)-1;
}

ROAM_WEAK char *inet_ntoa(struct in_addr a) {
  static char text[INET_ADDRSTRLEN];
  const unsigned char *b = (const unsigned char *)&a.s_addr;
  snprintf(text, sizeof text, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
  return text;
}

/* ---- names ---- */

static const struct {
  const char *name;
  int port;
} services[] = {
    {"ftp", 21}, {"ssh", 22}, {"telnet", 23}, {"smtp", 25}, {"domain", 53}, {"http", 80},
    {"pop3", 110}, {"imap", 143}, {"https", 443}, {"imaps", 993}, {"pop3s", 995}, {"postgresql", 5432},
};

/* The port of a service: numeric, or a well-known name (a small /etc/services); -1 if unknown. */
static int servicePort(const char *service, int numericOnly) {
  if (service == NULL || *service == '\0') return 0;
  char *end;
  long port = strtol(service, &end, 10);
  if (*end == '\0') return port >= 0 && port <= 65535 ? (int)port : -1;
  if (numericOnly) return -2;
  for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
    if (strcmp(service, services[i].name) == 0) return services[i].port;
  return -1;
}

/* Whether `name` is this container: localhost and its aliases, or its own host name. */
static int isLocalName(const char *name) {
  if (strcasecmp(name, "localhost") == 0 || strcasecmp(name, "localhost.localdomain") == 0 ||
      strcasecmp(name, "ip6-localhost") == 0 || strcasecmp(name, "ip6-loopback") == 0)
    return 1;
  size_t n = strlen(name);
  if (n > 10 && strcasecmp(name + n - 10, ".localhost") == 0) return 1;
  char own[256];
  return gethostname(own, sizeof own) == 0 && strcasecmp(name, own) == 0 ? 2 : 0;
}

static int addResult(struct addrinfo **tail, int family, const void *addr, int port, const struct addrinfo *hints,
                     const char *canonical);

/* A name for the gateway's node to look up: its addresses of the family asked, in its order. */
static int resolveRemote(const char *node, int family, int flags, int port, const struct addrinfo *hints,
                         struct addrinfo **result) {
  struct roam_resolved found[16];
  uint32_t count = 0;
  uint16_t error = roam_sock_resolve(node, strlen(node), found, sizeof found / sizeof found[0], &count);
  if (error == ENETUNREACH) {
    roam_notice("getaddrinfo", "resolves numeric addresses, localhost and the container's own name only without a "
                               "network (a cluster's gateway: roam up, then roam run); other names fail with EAI_NONAME");
    return EAI_NONAME;
  }
  if (error == EAGAIN) return EAI_AGAIN;
  if (error != 0) return EAI_NONAME;
  struct addrinfo *head = NULL, **tail = &head;
  const char *canonical = (flags & AI_CANONNAME) ? node : NULL;
  int status = 0;
  for (uint32_t i = 0; i < count && status == 0; i++) {
    uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff};
    const void *addr = found[i].addr;
    int as = found[i].family == 6 ? AF_INET6 : AF_INET;
    if (family == AF_INET6 && as == AF_INET) {
      if (!(flags & AI_V4MAPPED)) continue;
      memcpy(mapped + 12, found[i].addr, 4);
      addr = mapped;
      as = AF_INET6;
    }
    if (family != AF_UNSPEC && family != as) continue;
    status = addResult(tail, as, addr, port, hints, canonical);
    if (*tail) tail = &(*tail)->ai_next;
    canonical = NULL;
  }
  if (status == 0 && head == NULL) status = family == AF_UNSPEC ? EAI_NODATA : EAI_ADDRFAMILY;
  if (status != 0) {
    freeaddrinfo(head);
    return status;
  }
  *result = head;
  return 0;
}

static int addResult(struct addrinfo **tail, int family, const void *addr, int port, const struct addrinfo *hints,
                     const char *canonical) {
  int socktype = hints != NULL && hints->ai_socktype != 0 ? hints->ai_socktype : SOCK_STREAM;
  size_t nameLength = canonical ? strlen(canonical) + 1 : 0;
  struct entry {
    struct addrinfo info;
    struct sockaddr_storage addr;
  } *entry = calloc(1, sizeof(struct entry) + nameLength);
  if (entry == NULL) return EAI_MEMORY;
  entry->info.ai_family = family;
  entry->info.ai_socktype = socktype;
  entry->info.ai_protocol = socktype == SOCK_STREAM ? IPPROTO_TCP : hints->ai_protocol;
  entry->info.ai_addr = (struct sockaddr *)&entry->addr;
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&entry->addr;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    memcpy(&in->sin_addr, addr, 4);
    entry->info.ai_addrlen = sizeof *in;
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&entry->addr;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    memcpy(&in6->sin6_addr, addr, 16);
    entry->info.ai_addrlen = sizeof *in6;
  }
  if (canonical) {
    entry->info.ai_canonname = (char *)(entry + 1);
    memcpy(entry->info.ai_canonname, canonical, nameLength);
  }
  *tail = &entry->info;
  return 0;
}

ROAM_WEAK int getaddrinfo(const char *__restrict node, const char *__restrict service,
                          const struct addrinfo *__restrict hints, struct addrinfo **__restrict result) {
  int flags = hints ? hints->ai_flags : 0;
  int family = hints ? hints->ai_family : AF_UNSPEC;
  if (flags & ~(AI_PASSIVE | AI_CANONNAME | AI_NUMERICHOST | AI_V4MAPPED | AI_ALL | AI_ADDRCONFIG | AI_NUMERICSERV))
    return EAI_BADFLAGS;
  if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) return EAI_FAMILY;
  if (hints && hints->ai_socktype != 0 && hints->ai_socktype != SOCK_STREAM && hints->ai_socktype != SOCK_DGRAM)
    return EAI_SOCKTYPE;
  if (node == NULL && service == NULL) return EAI_NONAME;
  int port = servicePort(service, flags & AI_NUMERICSERV);
  if (port == -2) return EAI_NONAME;
  if (port < 0) return EAI_SERVICE;

  static const uint8_t any4[4] = {0}, loopback4[4] = {127, 0, 0, 1}, own4[4] = {127, 0, 1, 1};
  static const uint8_t any6[16] = {0}, loopback6[16] = {[15] = 1};
  uint8_t addr4[4], addr6[16];
  const void *v4 = NULL, *v6 = NULL;
  const char *canonical = NULL;
  if (node == NULL) {
    v4 = (flags & AI_PASSIVE) ? any4 : loopback4;
    v6 = (flags & AI_PASSIVE) ? any6 : loopback6;
  } else if (inet_pton(AF_INET, node, addr4) == 1) {
    v4 = addr4;
  } else {
    /* An IPv6 literal, perhaps with a zone (fe80::1%eth0): the zone is dropped. */
    char literal[INET6_ADDRSTRLEN + 1];
    size_t n = strcspn(node, "%");
    if (n < sizeof literal) {
      memcpy(literal, node, n);
      literal[n] = '\0';
      if (inet_pton(AF_INET6, literal, addr6) == 1) v6 = addr6;
    }
    if (v6 == NULL) {
      if (flags & AI_NUMERICHOST) return EAI_NONAME;
      int local = isLocalName(node);
      if (!local) return resolveRemote(node, family, flags, port, hints, result);
      v4 = local == 2 ? own4 : loopback4;
      v6 = local == 2 ? NULL : loopback6;
      canonical = node;
    }
  }
  if (family == AF_INET) {
    v6 = NULL;
    /* No IPv4 form of an IPv6 literal. */
    if (v4 == NULL) return EAI_ADDRFAMILY;
  } else if (family == AF_INET6) {
    if (v6 == NULL && v4 != NULL && (flags & AI_V4MAPPED) && node != NULL) {
      memset(addr6, 0, 10);
      addr6[10] = addr6[11] = 0xff;
      memcpy(addr6 + 12, v4, 4);
      v6 = addr6;
    }
    v4 = NULL;
    if (v6 == NULL) return EAI_ADDRFAMILY;
  }
  if (!(flags & AI_CANONNAME)) canonical = NULL;
  else if (canonical == NULL) canonical = node;

  struct addrinfo *head = NULL, **tail = &head;
  int error = 0;
  if (v4 != NULL) {
    error = addResult(tail, AF_INET, v4, port, hints, canonical);
    if (*tail) tail = &(*tail)->ai_next;
    canonical = NULL;
  }
  if (error == 0 && v6 != NULL) error = addResult(tail, AF_INET6, v6, port, hints, canonical);
  if (error != 0) {
    freeaddrinfo(head);
    return error;
  }
  *result = head;
  return 0;
}

ROAM_WEAK void freeaddrinfo(struct addrinfo *list) {
  while (list != NULL) {
    struct addrinfo *next = list->ai_next;
    free(list);
    list = next;
  }
}

ROAM_WEAK const char *gai_strerror(int error) {
  switch (error) {
  case 0: return "Success";
  case EAI_BADFLAGS: return "Bad value for ai_flags";
  case EAI_NONAME: return "Name or service not known";
  case EAI_AGAIN: return "Temporary failure in name resolution";
  case EAI_FAIL: return "Non-recoverable failure in name resolution";
  case EAI_NODATA: return "No address associated with hostname";
  case EAI_FAMILY: return "ai_family not supported";
  case EAI_SOCKTYPE: return "ai_socktype not supported";
  case EAI_SERVICE: return "Servname not supported for ai_socktype";
  case EAI_ADDRFAMILY: return "Address family for hostname not supported";
  case EAI_MEMORY: return "Memory allocation failure";
  case EAI_SYSTEM: return "System error";
  case EAI_OVERFLOW: return "Argument buffer overflow";
  default: return "Unknown error";
  }
}

static int copyName(char *out, socklen_t size, const char *name) {
  size_t n = strlen(name);
  if (n + 1 > size) return EAI_OVERFLOW;
  memcpy(out, name, n + 1);
  return 0;
}

/* Numeric unless the address is this container's loopback ("localhost"), as its /etc/hosts would say. */
ROAM_WEAK int getnameinfo(const struct sockaddr *__restrict sa, socklen_t salen, char *__restrict host,
                          socklen_t hostlen, char *__restrict serv, socklen_t servlen, int flags) {
  if (sa == NULL) return EAI_FAIL;
  char text[INET6_ADDRSTRLEN];
  int loopback, port;
  if (sa->sa_family == AF_INET) {
    if (salen < (socklen_t)sizeof(struct sockaddr_in)) return EAI_FAMILY;
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    loopback = ((const uint8_t *)&in->sin_addr)[0] == 127;
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    if (salen < (socklen_t)(offsetof(struct sockaddr_in6, sin6_scope_id) + 4)) return EAI_FAMILY;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    port = ntohs(in6->sin6_port);
  } else {
    return EAI_FAMILY;
  }
  if (host != NULL && hostlen > 0) {
    int error;
    if (!(flags & NI_NUMERICHOST) && loopback)
      error = copyName(host, hostlen, "localhost");
    else if (flags & NI_NAMEREQD)
      return EAI_NONAME;
    else
      error = copyName(host, hostlen, text);
    if (error != 0) return error;
  }
  if (serv != NULL && servlen > 0) {
    const char *name = NULL;
    if (!(flags & NI_NUMERICSERV))
      for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        if (services[i].port == port) name = services[i].name;
    char number[8];
    snprintf(number, sizeof number, "%d", port);
    int error = copyName(serv, servlen, name ? name : number);
    if (error != 0) return error;
  }
  return 0;
}

/*
 * Clients, the RESP2 parser, replies and the single-threaded poll() event loop.
 *
 * Natively the server creates its own listening socket (socket/bind/listen). WASI preview1
 * has none of those: the host passes already-listening sockets as file descriptors
 * 3 .. 3+LISTEN_FDS-1. Both builds then use only what wasi-libc also has: accept, recv,
 * send, fcntl(F_GETFL/F_SETFL, O_NONBLOCK), poll and close.
 */
#include "kv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef __wasi__
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#endif

/* wasi-libc's send() rejects any flag; natively MSG_NOSIGNAL avoids SIGPIPE where it exists. */
#if defined(MSG_NOSIGNAL) && !defined(__wasi__)
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0
#endif

enum { REQ_MULTIBULK = 1, REQ_INLINE = 2 };
enum { PARSE_INCOMPLETE, PARSE_OK, PARSE_ERROR };

struct server srv;

#ifndef __wasi__
static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }
#else
static const int stop_signal = 0;
#endif

/* ---------------------------------------------------------------- replies */

/* Makes room for n more output bytes; on failure the client is dropped. */
static bool obuf_reserve(client *c, size_t n) {
  if (c->flags & CLIENT_CLOSE_ASAP) return false;
  if (c->ocap - c->olen >= n) return true;
  if (c->opos > 0) { /* reclaim the sent prefix first */
    memmove(c->obuf, c->obuf + c->opos, c->olen - c->opos);
    c->olen -= c->opos;
    c->opos = 0;
    if (c->ocap - c->olen >= n) return true;
  }
  size_t cap = c->ocap ? c->ocap : PROTO_READ_CHUNK;
  while (cap - c->olen < n) {
    if (cap > SIZE_MAX / 2) goto fail;
    cap *= 2;
  }
  char *p = realloc(c->obuf, cap);
  if (!p) goto fail;
  c->obuf = p;
  c->ocap = cap;
  return true;
fail:
  fprintf(stderr, "kv: client %llu: out of memory for its replies, closing it\n", (unsigned long long)c->id);
  c->flags |= CLIENT_CLOSE_ASAP;
  return false;
}

void reply_raw(client *c, const char *p, size_t n) {
  if (!obuf_reserve(c, n)) return;
  memcpy(c->obuf + c->olen, p, n);
  c->olen += n;
}

void reply_status(client *c, const char *s) {
  size_t n = strlen(s);
  if (!obuf_reserve(c, n + 3)) return;
  c->obuf[c->olen++] = '+';
  memcpy(c->obuf + c->olen, s, n);
  c->olen += n;
  memcpy(c->obuf + c->olen, "\r\n", 2);
  c->olen += 2;
}

void reply_error(client *c, const char *msg) {
  size_t n = strlen(msg);
  if (!obuf_reserve(c, n + 3)) return;
  c->obuf[c->olen++] = '-';
  for (size_t i = 0; i < n; i++) c->obuf[c->olen++] = (msg[i] == '\r' || msg[i] == '\n') ? ' ' : msg[i];
  memcpy(c->obuf + c->olen, "\r\n", 2);
  c->olen += 2;
}

void reply_errorf(client *c, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  reply_error(c, buf);
}

static void reply_prefixed(client *c, char prefix, long long v) {
  char buf[32];
  buf[0] = prefix;
  size_t n = 1 + ll2str(buf + 1, v);
  buf[n++] = '\r';
  buf[n++] = '\n';
  reply_raw(c, buf, n);
}

void reply_int(client *c, long long v) { reply_prefixed(c, ':', v); }
void reply_array(client *c, long long n) { reply_prefixed(c, '*', n); }
void reply_null(client *c) { reply_raw(c, "$-1\r\n", 5); }
void reply_null_array(client *c) { reply_raw(c, "*-1\r\n", 5); }

void reply_bulk(client *c, const char *p, size_t n) {
  if (n > SIZE_MAX - 32 || !obuf_reserve(c, n + 32)) return;
  char head[32];
  head[0] = '$';
  size_t h = 1 + ll2str(head + 1, (long long)n);
  head[h++] = '\r';
  head[h++] = '\n';
  memcpy(c->obuf + c->olen, head, h);
  c->olen += h;
  if (n) memcpy(c->obuf + c->olen, p, n);
  c->olen += n;
  memcpy(c->obuf + c->olen, "\r\n", 2);
  c->olen += 2;
}

void reply_bulk_cstr(client *c, const char *s) { reply_bulk(c, s, strlen(s)); }

/* ---------------------------------------------------------------- clients */

static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0) return -1;
  if (flags & O_NONBLOCK) return 0;
  return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static client *client_new(int fd) {
  client *c = xmalloc(sizeof *c);
  memset(c, 0, sizeof *c);
  c->fd = fd;
  c->id = ++srv.next_client_id;
  c->bulklen = -1;
  if (srv.nclients == srv.clientcap) {
    srv.clientcap = srv.clientcap ? srv.clientcap * 2 : 16;
    srv.clients = xrealloc(srv.clients, srv.clientcap * sizeof(client *));
  }
  srv.clients[srv.nclients++] = c;
  srv.stat_connections++;
  return c;
}

static void client_free(client *c) {
  close(c->fd);
  free(c->qbuf);
  free(c->obuf);
  free(c->spans);
  free(c->argv);
  free(c->name);
  free(c);
}

static void client_reset_command(client *c) {
  c->reqtype = 0;
  c->mbulk_left = 0;
  c->bulklen = -1;
  c->nspans = 0;
  c->cmd_start = c->qpos;
}

static void add_span(client *c, size_t abs_off, size_t len) {
  if (c->nspans == c->spancap) {
    size_t cap = c->spancap ? c->spancap * 2 : 8;
    if (c->mbulk_left > 0 && (unsigned long long)c->mbulk_left + c->nspans < cap) cap = (size_t)c->mbulk_left + c->nspans;
    if (cap > SIZE_MAX / sizeof(span)) oom();
    c->spans = xrealloc(c->spans, cap * sizeof(span));
    c->spancap = cap;
  }
  c->spans[c->nspans].off = abs_off - c->cmd_start;
  c->spans[c->nspans].len = len;
  c->nspans++;
}

static void protocol_error(client *c, const char *msg) {
  reply_error(c, msg);
  c->flags |= CLIENT_CLOSE_AFTER_REPLY;
}

/* The index of the first '\r' at or after from, or SIZE_MAX. */
static size_t find_cr(const client *c, size_t from) {
  const char *p = memchr(c->qbuf + from, '\r', c->qlen - from);
  return p ? (size_t)(p - c->qbuf) : SIZE_MAX;
}

/* Parses "*N\r\n" then N times "$len\r\n<len bytes>\r\n", keeping state across reads. */
static int parse_multibulk(client *c) {
  if (c->mbulk_left == 0) {
    size_t cr = find_cr(c, c->qpos);
    if (cr == SIZE_MAX) {
      if (c->qlen - c->qpos > PROTO_INLINE_MAX) {
        protocol_error(c, "ERR Protocol error: too big mbulk count string");
        return PARSE_ERROR;
      }
      return PARSE_INCOMPLETE;
    }
    if (cr + 1 >= c->qlen) return PARSE_INCOMPLETE; /* the '\n' has not arrived */
    long long n;
    if (!parse_ll(c->qbuf + c->qpos + 1, cr - c->qpos - 1, &n) || n > INT_MAX) {
      protocol_error(c, "ERR Protocol error: invalid multibulk length");
      return PARSE_ERROR;
    }
    c->qpos = cr + 2;
    if (n <= 0) return PARSE_OK; /* "*0" and "*-1" are no-ops */
    c->mbulk_left = n;
  }
  while (c->mbulk_left > 0) {
    if (c->bulklen == -1) {
      size_t cr = find_cr(c, c->qpos);
      if (cr == SIZE_MAX) {
        if (c->qlen - c->qpos > PROTO_INLINE_MAX) {
          protocol_error(c, "ERR Protocol error: too big bulk count string");
          return PARSE_ERROR;
        }
        return PARSE_INCOMPLETE;
      }
      if (cr + 1 >= c->qlen) return PARSE_INCOMPLETE;
      char first = c->qbuf[c->qpos];
      if (first != '$') {
        reply_errorf(c, "ERR Protocol error: expected '$', got '%c'", first >= 32 && first < 127 ? first : ' ');
        c->flags |= CLIENT_CLOSE_AFTER_REPLY;
        return PARSE_ERROR;
      }
      long long n;
      if (!parse_ll(c->qbuf + c->qpos + 1, cr - c->qpos - 1, &n) || n < 0 || n > PROTO_MAX_BULK_LEN) {
        protocol_error(c, "ERR Protocol error: invalid bulk length");
        return PARSE_ERROR;
      }
      c->qpos = cr + 2;
      c->bulklen = n;
    }
    if (c->qlen - c->qpos < (unsigned long long)c->bulklen + 2) return PARSE_INCOMPLETE;
    add_span(c, c->qpos, (size_t)c->bulklen);
    c->qpos += (size_t)c->bulklen + 2; /* the data and its "\r\n" (not checked, as in Redis) */
    c->bulklen = -1;
    c->mbulk_left--;
  }
  return PARSE_OK;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static bool is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f'; }

/*
 * An inline command: one line split on whitespace, with "double quotes" (C escapes, \xHH)
 * and 'single quotes' as redis-cli and Redis's sdssplitargs understand them. Unquoting is
 * done in place (the result is never longer than the source).
 */
static int parse_inline(client *c) {
  char *start = c->qbuf + c->qpos;
  char *nl = memchr(start, '\n', c->qlen - c->qpos);
  if (!nl) {
    if (c->qlen - c->qpos > PROTO_INLINE_MAX) {
      protocol_error(c, "ERR Protocol error: too big inline request");
      return PARSE_ERROR;
    }
    return PARSE_INCOMPLETE;
  }
  char *end = nl;
  if (end > start && end[-1] == '\r') end--;
  char *p = start;
  for (;;) {
    while (p < end && is_space(*p)) p++;
    if (p == end) break;
    char *out = p, *arg_start = p;
    bool inq = false, insq = false;
    for (;;) {
      if (inq) {
        if (p == end) goto unbalanced;
        if (*p == '\\' && p + 3 < end && p[1] == 'x' && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
          *out++ = (char)(hexval(p[2]) * 16 + hexval(p[3]));
          p += 4;
        } else if (*p == '\\' && p + 1 < end) {
          p++;
          char e = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' : *p == 'b' ? '\b' : *p == 'a' ? '\a' : *p;
          *out++ = e;
          p++;
        } else if (*p == '"') {
          p++;
          if (p < end && !is_space(*p)) goto unbalanced; /* closing quote must end the argument */
          break;
        } else {
          *out++ = *p++;
        }
      } else if (insq) {
        if (p == end) goto unbalanced;
        if (*p == '\\' && p + 1 < end && p[1] == '\'') {
          *out++ = '\'';
          p += 2;
        } else if (*p == '\'') {
          p++;
          if (p < end && !is_space(*p)) goto unbalanced;
          break;
        } else {
          *out++ = *p++;
        }
      } else {
        if (p == end || is_space(*p)) break;
        if (*p == '"' && out == arg_start) {
          inq = true;
          p++;
        } else if (*p == '\'' && out == arg_start) {
          insq = true;
          p++;
        } else {
          *out++ = *p++;
        }
      }
    }
    add_span(c, (size_t)(arg_start - c->qbuf), (size_t)(out - arg_start));
  }
  c->qpos = (size_t)(nl - c->qbuf) + 1;
  return PARSE_OK;
unbalanced:
  c->nspans = 0;
  protocol_error(c, "ERR Protocol error: unbalanced quotes in request");
  return PARSE_ERROR;
}

static void execute(client *c) {
  if (c->nspans > c->argvcap) {
    c->argv = xrealloc(c->argv, c->nspans * sizeof(arg));
    c->argvcap = c->nspans;
  }
  char *base = c->qbuf + c->cmd_start;
  for (size_t i = 0; i < c->nspans; i++) {
    c->argv[i].p = base + c->spans[i].off;
    c->argv[i].len = c->spans[i].len;
  }
  srv.now = mono_ms();
  srv.stat_commands++;
  command_execute(c, (int)c->nspans, c->argv);
}

/* Executes every complete command in the query buffer. */
static void process_input(client *c) {
  while (c->qpos < c->qlen && !(c->flags & (CLIENT_CLOSE_AFTER_REPLY | CLIENT_CLOSE_ASAP)) && !srv.shutdown) {
    if (c->olen - c->opos > OUTPUT_SOFT_LIMIT) break; /* resumes once the replies are sent */
    if (c->reqtype == 0) c->reqtype = c->qbuf[c->qpos] == '*' ? REQ_MULTIBULK : REQ_INLINE;
    int r = c->reqtype == REQ_MULTIBULK ? parse_multibulk(c) : parse_inline(c);
    if (r != PARSE_OK) break;
    if (c->nspans > 0) execute(c);
    client_reset_command(c);
  }
  /* Drop consumed bytes: keep only the command being parsed, at the start of the buffer. */
  if (c->cmd_start == c->qlen) {
    c->qlen = c->qpos = c->cmd_start = 0;
    if (c->qcap > 256 * 1024) {
      free(c->qbuf);
      c->qbuf = NULL;
      c->qcap = 0;
    }
  } else if (c->cmd_start > 0 && !(c->flags & CLIENT_CLOSE_AFTER_REPLY)) {
    memmove(c->qbuf, c->qbuf + c->cmd_start, c->qlen - c->cmd_start);
    c->qlen -= c->cmd_start;
    c->qpos -= c->cmd_start;
    c->cmd_start = 0;
  }
}

static bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

static void read_from_client(client *c) {
  size_t want = PROTO_READ_CHUNK;
  if (c->reqtype == REQ_MULTIBULK && c->bulklen >= PROTO_BIG_ARG) {
    /* A big argument: make the buffer exactly big enough for it (and its "\r\n"). */
    unsigned long long end = (unsigned long long)c->qpos + (unsigned long long)c->bulklen + 2;
    if (end > SIZE_MAX / 2) {
      fprintf(stderr, "kv: client %llu: request too big for this address space, closing it\n", (unsigned long long)c->id);
      c->flags |= CLIENT_CLOSE_ASAP;
      return;
    }
    if ((size_t)end > c->qlen && (size_t)end - c->qlen > want) want = (size_t)end - c->qlen;
  }
  if (c->qcap - c->qlen < want) {
    size_t cap = c->qlen + want;
    if (!(c->reqtype == REQ_MULTIBULK && c->bulklen >= PROTO_BIG_ARG) && cap < c->qcap * 2 && c->qcap <= SIZE_MAX / 4)
      cap = c->qcap * 2;
    char *p = realloc(c->qbuf, cap);
    if (!p) {
      fprintf(stderr, "kv: client %llu: out of memory for its request, closing it\n", (unsigned long long)c->id);
      c->flags |= CLIENT_CLOSE_ASAP;
      return;
    }
    c->qbuf = p;
    c->qcap = cap;
  }
  ssize_t n = recv(c->fd, c->qbuf + c->qlen, c->qcap - c->qlen, 0);
  if (n < 0) {
    if (errno == EINTR || would_block(errno)) return;
    c->flags |= CLIENT_CLOSE_ASAP; /* ECONNRESET and friends */
    return;
  }
  if (n == 0) {
    /* The peer is done sending: flush what is owed, if it still listens, then close. */
    if (c->olen > c->opos) c->flags |= CLIENT_CLOSE_AFTER_REPLY;
    else c->flags |= CLIENT_CLOSE_ASAP;
    return;
  }
  c->qlen += (size_t)n;
  srv.stat_net_in += (uint64_t)n;
  process_input(c);
}

static void write_to_client(client *c) {
  while (c->opos < c->olen) {
    ssize_t n = send(c->fd, c->obuf + c->opos, c->olen - c->opos, SEND_FLAGS);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (would_block(errno)) return;
      c->flags |= CLIENT_CLOSE_ASAP; /* EPIPE, ECONNRESET */
      return;
    }
    c->opos += (size_t)n;
    srv.stat_net_out += (uint64_t)n;
  }
  c->opos = c->olen = 0;
  if (c->ocap > 1024 * 1024) {
    free(c->obuf);
    c->obuf = NULL;
    c->ocap = 0;
  }
  /* Commands held back by OUTPUT_SOFT_LIMIT can run now. */
  if (c->qpos < c->qlen) process_input(c);
}

static void accept_clients(int lfd) {
  for (int i = 0; i < 1000; i++) {
    /* wasi-libc's accept() writes through addr and addrlen: they must not be NULL. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept(lfd, (struct sockaddr *)&ss, &sl);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (!would_block(errno)) perror("kv: accept");
      return;
    }
    if (set_nonblocking(fd) < 0) {
      perror("kv: fcntl(O_NONBLOCK) on a client");
      close(fd);
      continue;
    }
#ifndef __wasi__
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#endif
    if (srv.nclients >= MAX_CLIENTS) {
      static const char msg[] = "-ERR max number of clients reached\r\n";
      (void)!send(fd, msg, sizeof msg - 1, SEND_FLAGS);
      close(fd);
      srv.stat_rejected++;
      continue;
    }
    client_new(fd);
  }
}

/* ---------------------------------------------------------------- listeners */

static void add_listener(int fd) {
  srv.listeners = xrealloc(srv.listeners, (srv.nlisteners + 1) * sizeof(int));
  srv.listeners[srv.nlisteners++] = fd;
}

/* Adopts fds 3 .. 3+LISTEN_FDS-1 (systemd socket activation; the WASI host's convention). */
static int adopt_listen_fds(const char *value) {
  long long n;
  if (!parse_ll(value, strlen(value), &n) || n < 1 || n > 1024) {
    fprintf(stderr, "kv: LISTEN_FDS=%s: expected the number of listening sockets (1..1024)\n", value);
    return -1;
  }
  for (int fd = 3; fd < 3 + (int)n; fd++) {
    int type = 0;
    socklen_t len = sizeof type;
    errno = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
      fprintf(stderr, "kv: LISTEN_FDS=%lld but fd %d is not a stream socket (%s)\n", n, fd,
              errno ? strerror(errno) : "wrong socket type");
      return -1;
    }
    if (set_nonblocking(fd) < 0) {
      fprintf(stderr, "kv: fcntl(fd %d, F_SETFL, O_NONBLOCK): %s\n", fd, strerror(errno));
      return -1;
    }
    add_listener(fd);
  }
  printf("kv: ready, serving %lld listening socket%s from LISTEN_FDS\n", n, n == 1 ? "" : "s");
  fflush(stdout);
  return 0;
}

#ifndef __wasi__
static int listen_tcp(const char *bind_addr, int port) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  int rc = getaddrinfo(bind_addr, portstr, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "kv: --bind %s: %s\n", bind_addr, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  int err = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "kv: cannot listen on %s:%d: %s\n", bind_addr, port, strerror(err));
    return -1;
  }
  if (set_nonblocking(fd) < 0) {
    perror("kv: fcntl(O_NONBLOCK)");
    close(fd);
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6) srv.port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  add_listener(fd);
  printf("kv: ready to accept connections on %s port %d\n", bind_addr, srv.port);
  fflush(stdout);
  return 0;
}
#endif

int net_setup(const char *bind_addr, int port) {
  const char *listen_fds = getenv("LISTEN_FDS");
#ifdef __wasi__
  (void)bind_addr;
  (void)port;
  if (!listen_fds) {
    fputs("kv: no listening sockets: WASI has no socket(), so the host must pass listening sockets as fds 3.. "
          "and set LISTEN_FDS to their number\n",
          stderr);
    return -1;
  }
  return adopt_listen_fds(listen_fds);
#else
  /* Natively too, sockets passed by a socket-activation manager are used when meant for us. */
  const char *pid = getenv("LISTEN_PID");
  if (listen_fds && (!pid || atoll(pid) == (long long)getpid())) return adopt_listen_fds(listen_fds);
  return listen_tcp(bind_addr, port);
#endif
}

/* ---------------------------------------------------------------- event loop */

static int exit_status;

/* A listening fd the host closed or invalidated: stop polling it; without any, stop. */
static void drop_listener(int fd) {
  fprintf(stderr, "kv: listening socket fd %d is no longer valid, dropping it\n", fd);
  size_t j = 0;
  for (size_t i = 0; i < srv.nlisteners; i++)
    if (srv.listeners[i] != fd) srv.listeners[j++] = srv.listeners[i];
  srv.nlisteners = j;
  if (j == 0) {
    fputs("kv: no listening socket left, exiting\n", stderr);
    srv.shutdown = true;
    exit_status = 1;
  }
}

static void free_closed_clients(void) {
  size_t j = 0;
  for (size_t i = 0; i < srv.nclients; i++) {
    client *c = srv.clients[i];
    if (c->flags & CLIENT_CLOSE_ASAP) client_free(c);
    else srv.clients[j++] = c;
  }
  srv.nclients = j;
}

int net_serve(void) {
#ifndef __wasi__
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
#endif
  struct pollfd *pfds = NULL;
  client **owners = NULL;
  size_t pcap = 0;
  int64_t next_cron = mono_ms() + CRON_INTERVAL_MS;

  while (!srv.shutdown && !stop_signal) {
    size_t n = srv.nlisteners + srv.nclients;
    if (n > pcap) {
      pcap = n * 2;
      pfds = xrealloc(pfds, pcap * sizeof *pfds);
      owners = xrealloc(owners, pcap * sizeof *owners);
    }
    size_t k = 0;
    for (size_t i = 0; i < srv.nlisteners; i++, k++) {
      pfds[k].fd = srv.listeners[i];
      pfds[k].events = POLLIN;
      pfds[k].revents = 0;
      owners[k] = NULL;
    }
    for (size_t i = 0; i < srv.nclients; i++, k++) {
      client *c = srv.clients[i];
      short events = 0;
      bool pending = c->olen > c->opos;
      if (!(c->flags & CLIENT_CLOSE_AFTER_REPLY) && c->olen - c->opos <= OUTPUT_SOFT_LIMIT) events |= POLLIN;
      if (pending) events |= POLLOUT;
      /* wasi-libc's poll() fails with ENOSYS for an entry with neither POLLIN nor POLLOUT. */
      if (!events) events = POLLIN;
      pfds[k].fd = c->fd;
      pfds[k].events = events;
      pfds[k].revents = 0;
      owners[k] = c;
    }

    /* Sleep without a deadline unless keys may expire or the table is being resized. */
    int timeout = -1;
    if (srv.db.expires > 0 || srv.db.rehashidx != -1) {
      int64_t wait = next_cron - mono_ms();
      timeout = wait < 0 ? 0 : wait > CRON_INTERVAL_MS ? CRON_INTERVAL_MS : (int)wait;
    }
    int ready = poll(pfds, (nfds_t)n, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      perror("kv: poll");
      break;
    }

    for (size_t i = 0; i < n && ready > 0; i++) {
      short re = pfds[i].revents;
      if (!re) continue;
      ready--;
      client *c = owners[i];
      if (!c) {
        if (re & POLLNVAL) drop_listener(pfds[i].fd);
        else accept_clients(pfds[i].fd);
        continue;
      }
      if (re & POLLNVAL) {
        c->flags |= CLIENT_CLOSE_ASAP;
        continue;
      }
      if ((re & (POLLIN | POLLHUP | POLLERR)) && !(c->flags & (CLIENT_CLOSE_ASAP | CLIENT_CLOSE_AFTER_REPLY)))
        read_from_client(c);
      else if ((re & (POLLHUP | POLLERR)) && !(re & POLLOUT))
        c->flags |= CLIENT_CLOSE_ASAP;
      if ((re & POLLOUT) && !(c->flags & CLIENT_CLOSE_ASAP)) write_to_client(c);
    }

    int64_t now = mono_ms();
    if (now >= next_cron) {
      db_cron(&srv.db, now);
      next_cron = now + CRON_INTERVAL_MS;
    }

    /* Send replies right away; only what the socket refuses waits for POLLOUT. */
    for (size_t i = 0; i < srv.nclients; i++) {
      client *c = srv.clients[i];
      if (c->flags & CLIENT_CLOSE_ASAP) continue;
      if (c->olen > c->opos) write_to_client(c);
      if ((c->flags & CLIENT_CLOSE_AFTER_REPLY) && c->olen == c->opos) c->flags |= CLIENT_CLOSE_ASAP;
    }
    free_closed_clients();
  }

  if (stop_signal) fprintf(stderr, "kv: signal %d, shutting down\n", (int)stop_signal);
  for (size_t i = 0; i < srv.nclients; i++) client_free(srv.clients[i]);
  free(srv.clients);
  srv.clients = NULL;
  srv.nclients = srv.clientcap = 0;
  for (size_t i = 0; i < srv.nlisteners; i++) close(srv.listeners[i]);
  free(srv.listeners);
  srv.listeners = NULL;
  srv.nlisteners = 0;
  free(pfds);
  free(owners);
  db_free(&srv.db);
  return exit_status;
}

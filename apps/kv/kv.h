/*
 * kv: a small Redis-protocol (RESP2) key-value server.
 *
 * Portable C11. Built natively it opens its own TCP listening socket; built for wasm32-wasi
 * (which has no socket/bind/listen) it serves listening sockets handed over by the host as
 * file descriptors 3 .. 3+LISTEN_FDS-1 (systemd socket-activation convention).
 */
#ifndef KV_H
#define KV_H

#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#if defined(__wasi__) && !defined(_WASI_EMULATED_GETPID)
#define _WASI_EMULATED_GETPID /* roam cc links -lwasi-emulated-getpid */
#endif

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_VERSION "1.0.0"
/* What INFO and HELLO report as redis_version: the command set follows Redis 7.0. */
#define KV_REDIS_VERSION "7.0.0"

#define PROTO_MAX_BULK_LEN (512LL * 1024 * 1024) /* proto-max-bulk-len: 512 MiB */
#define PROTO_INLINE_MAX (64 * 1024)             /* longest inline command or count line */
#define PROTO_READ_CHUNK (16 * 1024)             /* smallest read */
#define PROTO_BIG_ARG (32 * 1024)                /* bulk size read straight into an exact buffer */
#define OUTPUT_SOFT_LIMIT (64 * 1024 * 1024)     /* stop executing a client's commands above this */
#define MAX_CLIENTS 10000
#define CRON_INTERVAL_MS 100

/* ---- util.c ---- */

void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
void oom(void);

/* A binary-safe string, NUL-terminated for convenience (the NUL is not part of len). */
typedef struct kvstr {
  size_t len;
  char data[];
} kvstr;

kvstr *kvstr_new(const char *p, size_t len);
kvstr *kvstr_from_ll(long long v);

/* A growable byte buffer (INFO text, temporary strings). */
typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf;

void sbuf_add(sbuf *b, const char *p, size_t n);
void sbuf_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sbuf_free(sbuf *b);

int64_t mono_ms(void);
int64_t real_ms(void);
/* Strict integer parsing as Redis does it: no spaces, no '+', no leading zeros. */
bool parse_ll(const char *p, size_t len, long long *out);
/* Writes v in decimal to buf (at least 21 bytes); returns the length. */
size_t ll2str(char *buf, long long v);
bool eq_nocase(const char *p, size_t len, const char *lit);
/* Redis-style glob: * ? [abc] [^a] [a-z] and backslash escapes. */
bool glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);

/* ---- list.c: a list is a ring-buffer deque of strings ---- */

typedef struct kvlist {
  kvstr **items;
  size_t cap, head, len; /* cap is 0 or a power of two */
} kvlist;

kvlist *list_new(void);
void list_free(kvlist *l);
void list_push(kvlist *l, kvstr *s, bool front);
kvstr *list_pop(kvlist *l, bool front);
kvstr *list_at(const kvlist *l, size_t i);

/* ---- db.c: the keyspace, a chained hash table with incremental rehashing ---- */

enum { T_STRING = 1, T_LIST = 2 };

typedef struct entry {
  struct entry *next;
  uint64_t hash;
  int64_t expire; /* monotonic milliseconds, or -1 */
  union {
    kvstr *str;
    kvlist *list;
  } v;
  int type;
  size_t klen;
  char key[];
} entry;

typedef struct db {
  entry **t[2];
  size_t size[2]; /* 0 or a power of two */
  size_t used[2];
  long long rehashidx; /* -1 unless moving t[0] into t[1] */
  size_t expires;      /* entries with expire >= 0 */
  size_t cursor[2];    /* active expiry sweep position */
  uint64_t expired_keys;
} db;

void db_init(db *d);
void db_free(db *d);
/* Finds a key; an expired key is deleted and reported missing. */
entry *db_lookup(db *d, const char *k, size_t klen, int64_t now);
/* Adds a key that must not exist; the caller sets type and value. */
entry *db_add(db *d, const char *k, size_t klen);
/* Stores a string under k (replacing any value); keeps the TTL only when keepttl. */
entry *db_set_string(db *d, const char *k, size_t klen, kvstr *s, bool keepttl, int64_t now);
bool db_delete(db *d, const char *k, size_t klen, int64_t now);
void db_delete_entry(db *d, entry *e);
/* Sets (when >= 0) or removes (when < 0) the expiry time of e. */
void db_set_expire(db *d, entry *e, int64_t when);
void db_free_value(entry *e);
size_t db_size(const db *d);
void db_flush(db *d);
bool db_expired(const entry *e, int64_t now);
/* Calls fn for every entry (expired ones included); fn must not modify the table. */
void db_each(const db *d, void (*fn)(entry *e, void *ctx), void *ctx);
/* Periodic work: purge expired keys, finish or start resizing. */
void db_cron(db *d, int64_t now);

/* ---- net.c: clients, protocol, event loop ---- */

typedef struct arg {
  char *p;
  size_t len;
} arg;

typedef struct span {
  size_t off, len; /* relative to the start of the command in the query buffer */
} span;

enum { CLIENT_CLOSE_AFTER_REPLY = 1, CLIENT_CLOSE_ASAP = 2 };

typedef struct client {
  int fd;
  uint64_t id;
  int flags;
  /* Query buffer: [cmd_start, qpos) is the parsed part of the current command. */
  char *qbuf;
  size_t qlen, qcap, qpos, cmd_start;
  int reqtype;        /* 0, REQ_MULTIBULK or REQ_INLINE */
  long long mbulk_left; /* bulk strings still expected */
  long long bulklen;    /* length of the bulk being read, or -1 */
  span *spans;
  size_t nspans, spancap;
  arg *argv;
  size_t argvcap;
  /* Output buffer: [opos, olen) waits to be sent. */
  char *obuf;
  size_t olen, ocap, opos;
  kvstr *name;
  const char *lastcmd;
} client;

struct server {
  db db;
  int64_t now; /* monotonic ms, set before each command */
  int64_t start_mono;
  int *listeners;
  size_t nlisteners;
  int port; /* native TCP port, or 0 */
  client **clients;
  size_t nclients, clientcap;
  uint64_t next_client_id;
  bool shutdown;
  const char *executable;
  /* stats */
  uint64_t stat_connections, stat_rejected, stat_commands;
  uint64_t stat_hits, stat_misses, stat_net_in, stat_net_out;
};

extern struct server srv;

void reply_raw(client *c, const char *p, size_t n);
void reply_status(client *c, const char *s);
/* msg starts with the error code ("ERR ...", "WRONGTYPE ..."); CR/LF become spaces. */
void reply_error(client *c, const char *msg);
void reply_errorf(client *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void reply_int(client *c, long long v);
void reply_bulk(client *c, const char *p, size_t n);
void reply_bulk_cstr(client *c, const char *s);
void reply_null(client *c);
void reply_null_array(client *c);
void reply_array(client *c, long long n);

/* Listening sockets (native: creates one; WASI: from LISTEN_FDS). Returns 0 or -1. */
int net_setup(const char *bind_addr, int port);
/* Runs the event loop until SHUTDOWN (or SIGINT/SIGTERM natively), then frees everything.
   Returns the exit status: 0, or 1 if every listening socket became invalid. */
int net_serve(void);

/* ---- commands.c ---- */

void commands_init(void);
void command_execute(client *c, int argc, arg *argv);

#endif

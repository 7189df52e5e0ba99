/* Command table and implementations; replies follow Redis 7.0 (RESP2). */
#include "kv.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifndef __wasi__
#include <sys/utsname.h>
#endif

static const char WRONGTYPE[] = "WRONGTYPE Operation against a key holding the wrong kind of value";
static const char NOT_INTEGER[] = "ERR value is not an integer or out of range";
static const char SYNTAX_ERROR[] = "ERR syntax error";

#define ARGEQ(a, lit) eq_nocase((a)->p, (a)->len, (lit))

typedef void cmd_fn(client *c, int argc, arg *argv);

struct command {
  const char *name; /* lower case */
  cmd_fn *fn;
  int arity; /* Redis convention: N exactly, -N at least N (the name counts) */
};

/* ---------------------------------------------------------------- helpers */

static entry *lookup(const arg *key) { return db_lookup(&srv.db, key->p, key->len, srv.now); }

static entry *lookup_read(const arg *key) {
  entry *e = lookup(key);
  if (e) srv.stat_hits++;
  else srv.stat_misses++;
  return e;
}

static bool wrong_type(client *c, const entry *e, int type) {
  if (e && e->type != type) {
    reply_error(c, WRONGTYPE);
    return true;
  }
  return false;
}

static bool get_ll(client *c, const arg *a, long long *v) {
  if (parse_ll(a->p, a->len, v)) return true;
  reply_error(c, NOT_INTEGER);
  return false;
}

static void reply_arity(client *c, const char *name) {
  reply_errorf(c, "ERR wrong number of arguments for '%s' command", name);
}

/* An absolute Unix time in ms as a monotonic deadline (anything in the past maps to 0). */
static int64_t unix_to_mono(long long unix_ms) {
  int64_t real = real_ms();
  if (unix_ms <= real) return 0;
  long long delta = unix_ms - real;
  return delta > LLONG_MAX - srv.now ? LLONG_MAX : srv.now + delta;
}

/* Sets e's deadline, or deletes e if the deadline has already passed. */
static void expire_or_delete(entry *e, int64_t when) {
  if (when <= srv.now) {
    db_delete_entry(&srv.db, e);
    srv.db.expired_keys++;
  } else {
    db_set_expire(&srv.db, e, when);
  }
}

/* ---------------------------------------------------------------- strings */

enum { SET_NX = 1, SET_XX = 2, SET_GET = 4, SET_KEEPTTL = 8, SET_EX = 16, SET_PX = 32, SET_EXAT = 64, SET_PXAT = 128 };
#define SET_EXPIRE_FLAGS (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

/* Parses an expire argument of SET/SETEX/PSETEX into a monotonic deadline. */
static bool set_expire_arg(client *c, const arg *a, int unit, const char *name, int64_t *when) {
  long long v;
  if (!get_ll(c, a, &v)) return false;
  bool seconds = unit & (SET_EX | SET_EXAT);
  if (v <= 0 || (seconds && v > LLONG_MAX / 1000)) goto invalid;
  if (seconds) v *= 1000;
  if (unit & (SET_EX | SET_PX)) {
    if (v > LLONG_MAX - srv.now) goto invalid;
    *when = srv.now + v;
  } else {
    *when = unix_to_mono(v);
  }
  return true;
invalid:
  reply_errorf(c, "ERR invalid expire time in '%s' command", name);
  return false;
}

/* SET and its variants. int_reply: SETNX's :1/:0 instead of +OK/nil. */
static void set_generic(client *c, int flags, const arg *key, const arg *val, const arg *expire, int unit, const char *name,
                        bool int_reply) {
  int64_t when = -1;
  if (expire && !set_expire_arg(c, expire, unit, name, &when)) return;
  entry *e = lookup(key);
  if ((flags & SET_GET) && wrong_type(c, e, T_STRING)) return;
  if (flags & SET_GET) {
    if (e) reply_bulk(c, e->v.str->data, e->v.str->len);
    else reply_null(c);
  }
  if (((flags & SET_NX) && e) || ((flags & SET_XX) && !e)) {
    if (int_reply) reply_int(c, 0);
    else if (!(flags & SET_GET)) reply_null(c);
    return;
  }
  entry *n = db_set_string(&srv.db, key->p, key->len, kvstr_new(val->p, val->len), (flags & SET_KEEPTTL) != 0, srv.now);
  if (when >= 0) expire_or_delete(n, when);
  if (int_reply) reply_int(c, 1);
  else if (!(flags & SET_GET)) reply_status(c, "OK");
}

static void cmd_set(client *c, int argc, arg *argv) {
  int flags = 0, unit = 0;
  const arg *expire = NULL;
  for (int i = 3; i < argc; i++) {
    const arg *a = &argv[i];
    int u = ARGEQ(a, "EX") ? SET_EX : ARGEQ(a, "PX") ? SET_PX : ARGEQ(a, "EXAT") ? SET_EXAT : ARGEQ(a, "PXAT") ? SET_PXAT : 0;
    if (ARGEQ(a, "NX") && !(flags & SET_XX)) flags |= SET_NX;
    else if (ARGEQ(a, "XX") && !(flags & SET_NX)) flags |= SET_XX;
    else if (ARGEQ(a, "GET")) flags |= SET_GET;
    else if (ARGEQ(a, "KEEPTTL") && !(flags & SET_EXPIRE_FLAGS)) flags |= SET_KEEPTTL;
    else if (u && i + 1 < argc && !(flags & (SET_KEEPTTL | SET_EXPIRE_FLAGS))) {
      flags |= u;
      unit = u;
      expire = &argv[++i];
    } else {
      reply_error(c, SYNTAX_ERROR);
      return;
    }
  }
  set_generic(c, flags, &argv[1], &argv[2], expire, unit, "set", false);
}

static void cmd_setnx(client *c, int argc, arg *argv) {
  (void)argc;
  set_generic(c, SET_NX, &argv[1], &argv[2], NULL, 0, "setnx", true);
}

static void cmd_setex(client *c, int argc, arg *argv) {
  (void)argc;
  set_generic(c, 0, &argv[1], &argv[3], &argv[2], SET_EX, "setex", false);
}

static void cmd_psetex(client *c, int argc, arg *argv) {
  (void)argc;
  set_generic(c, 0, &argv[1], &argv[3], &argv[2], SET_PX, "psetex", false);
}

static void cmd_get(client *c, int argc, arg *argv) {
  (void)argc;
  entry *e = lookup_read(&argv[1]);
  if (!e) reply_null(c);
  else if (!wrong_type(c, e, T_STRING)) reply_bulk(c, e->v.str->data, e->v.str->len);
}

static void cmd_getdel(client *c, int argc, arg *argv) {
  (void)argc;
  entry *e = lookup_read(&argv[1]);
  if (!e) {
    reply_null(c);
  } else if (!wrong_type(c, e, T_STRING)) {
    reply_bulk(c, e->v.str->data, e->v.str->len);
    db_delete_entry(&srv.db, e);
  }
}

static void cmd_mget(client *c, int argc, arg *argv) {
  reply_array(c, argc - 1);
  for (int i = 1; i < argc; i++) {
    entry *e = lookup_read(&argv[i]);
    if (e && e->type == T_STRING) reply_bulk(c, e->v.str->data, e->v.str->len);
    else reply_null(c);
  }
}

static void cmd_mset(client *c, int argc, arg *argv) {
  if (argc % 2 == 0) {
    reply_arity(c, "mset");
    return;
  }
  for (int i = 1; i < argc; i += 2)
    db_set_string(&srv.db, argv[i].p, argv[i].len, kvstr_new(argv[i + 1].p, argv[i + 1].len), false, srv.now);
  reply_status(c, "OK");
}

static void cmd_strlen(client *c, int argc, arg *argv) {
  (void)argc;
  entry *e = lookup_read(&argv[1]);
  if (!wrong_type(c, e, T_STRING)) reply_int(c, e ? (long long)e->v.str->len : 0);
}

static void cmd_append(client *c, int argc, arg *argv) {
  (void)argc;
  entry *e = lookup(&argv[1]);
  if (wrong_type(c, e, T_STRING)) return;
  if (!e) {
    db_set_string(&srv.db, argv[1].p, argv[1].len, kvstr_new(argv[2].p, argv[2].len), false, srv.now);
    reply_int(c, (long long)argv[2].len);
    return;
  }
  size_t old = e->v.str->len;
  if ((unsigned long long)old + argv[2].len > (unsigned long long)PROTO_MAX_BULK_LEN) {
    reply_error(c, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    return;
  }
  kvstr *s = xrealloc(e->v.str, sizeof(kvstr) + old + argv[2].len + 1);
  memcpy(s->data + old, argv[2].p, argv[2].len);
  s->len = old + argv[2].len;
  s->data[s->len] = '\0';
  e->v.str = s;
  reply_int(c, (long long)s->len);
}

static void incr_generic(client *c, const arg *key, long long incr) {
  entry *e = lookup(key);
  if (wrong_type(c, e, T_STRING)) return;
  long long v = 0;
  if (e && !parse_ll(e->v.str->data, e->v.str->len, &v)) {
    reply_error(c, NOT_INTEGER);
    return;
  }
  if ((incr < 0 && v < 0 && incr < LLONG_MIN - v) || (incr > 0 && v > 0 && incr > LLONG_MAX - v)) {
    reply_error(c, "ERR increment or decrement would overflow");
    return;
  }
  v += incr;
  if (e) { /* the TTL stays */
    free(e->v.str);
    e->v.str = kvstr_from_ll(v);
  } else {
    db_set_string(&srv.db, key->p, key->len, kvstr_from_ll(v), false, srv.now);
  }
  reply_int(c, v);
}

static void cmd_incr(client *c, int argc, arg *argv) {
  (void)argc;
  incr_generic(c, &argv[1], 1);
}

static void cmd_decr(client *c, int argc, arg *argv) {
  (void)argc;
  incr_generic(c, &argv[1], -1);
}

static void cmd_incrby(client *c, int argc, arg *argv) {
  (void)argc;
  long long n;
  if (get_ll(c, &argv[2], &n)) incr_generic(c, &argv[1], n);
}

static void cmd_decrby(client *c, int argc, arg *argv) {
  (void)argc;
  long long n;
  if (!get_ll(c, &argv[2], &n)) return;
  if (n == LLONG_MIN) {
    reply_error(c, "ERR decrement would overflow");
    return;
  }
  incr_generic(c, &argv[1], -n);
}

/* ---------------------------------------------------------------- keys */

static void cmd_del(client *c, int argc, arg *argv) {
  long long n = 0;
  for (int i = 1; i < argc; i++)
    if (db_delete(&srv.db, argv[i].p, argv[i].len, srv.now)) n++;
  reply_int(c, n);
}

static void cmd_exists(client *c, int argc, arg *argv) {
  long long n = 0;
  for (int i = 1; i < argc; i++)
    if (lookup(&argv[i])) n++;
  reply_int(c, n);
}

static void cmd_type(client *c, int argc, arg *argv) {
  (void)argc;
  entry *e = lookup(&argv[1]);
  reply_status(c, !e ? "none" : e->type == T_LIST ? "list" : "string");
}

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

/* EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX|XX|GT|LT]. */
static void expire_generic(client *c, int argc, arg *argv, bool seconds, bool absolute, const char *name) {
  int flags = 0;
  for (int i = 3; i < argc; i++) {
    const arg *a = &argv[i];
    if (ARGEQ(a, "NX")) flags |= EXP_NX;
    else if (ARGEQ(a, "XX")) flags |= EXP_XX;
    else if (ARGEQ(a, "GT")) flags |= EXP_GT;
    else if (ARGEQ(a, "LT")) flags |= EXP_LT;
    else {
      reply_errorf(c, "ERR Unsupported option %.*s", (int)(a->len > 128 ? 128 : a->len), a->p);
      return;
    }
  }
  if ((flags & EXP_NX) && (flags & (EXP_XX | EXP_GT | EXP_LT))) {
    reply_error(c, "ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if ((flags & EXP_GT) && (flags & EXP_LT)) {
    reply_error(c, "ERR GT and LT options at the same time are not compatible");
    return;
  }
  long long t;
  if (!get_ll(c, &argv[2], &t)) return;
  if (seconds && (t > LLONG_MAX / 1000 || t < LLONG_MIN / 1000)) goto invalid;
  if (seconds) t *= 1000;
  int64_t when;
  if (absolute) {
    when = unix_to_mono(t);
  } else {
    if (t > LLONG_MAX - srv.now) goto invalid;
    when = t < 0 ? 0 : srv.now + t; /* in the past: the key goes now */
  }
  entry *e = lookup(&argv[1]);
  if (!e) {
    reply_int(c, 0);
    return;
  }
  bool has_ttl = e->expire >= 0;
  if (((flags & EXP_NX) && has_ttl) || ((flags & EXP_XX) && !has_ttl) ||
      ((flags & EXP_GT) && (!has_ttl || when <= e->expire)) || ((flags & EXP_LT) && has_ttl && when >= e->expire)) {
    reply_int(c, 0);
    return;
  }
  expire_or_delete(e, when);
  reply_int(c, 1);
  return;
invalid:
  reply_errorf(c, "ERR invalid expire time in '%s' command", name);
}

static void cmd_expire(client *c, int argc, arg *argv) { expire_generic(c, argc, argv, true, false, "expire"); }
static void cmd_pexpire(client *c, int argc, arg *argv) { expire_generic(c, argc, argv, false, false, "pexpire"); }
static void cmd_expireat(client *c, int argc, arg *argv) { expire_generic(c, argc, argv, true, true, "expireat"); }
static void cmd_pexpireat(client *c, int argc, arg *argv) { expire_generic(c, argc, argv, false, true, "pexpireat"); }

static void ttl_generic(client *c, const arg *key, bool ms) {
  entry *e = lookup(key);
  if (!e) reply_int(c, -2);
  else if (e->expire < 0) reply_int(c, -1);
  else {
    long long left = e->expire - srv.now;
    if (left < 0) left = 0;
    reply_int(c, ms ? left : (left + 500) / 1000);
  }
}

static void cmd_ttl(client *c, int argc, arg *argv) {
  (void)argc;
  ttl_generic(c, &argv[1], false);
}

static void cmd_pttl(client *c, int argc, arg *argv) {
  (void)argc;
  ttl_generic(c, &argv[1], true);
}

static void cmd_persist(client *c, int argc, arg *argv) {
  (void)argc;
  entry *e = lookup(&argv[1]);
  if (!e || e->expire < 0) {
    reply_int(c, 0);
    return;
  }
  db_set_expire(&srv.db, e, -1);
  reply_int(c, 1);
}

struct keys_ctx {
  const arg *pattern;
  bool all;
  entry **found;
  size_t n, cap;
};

static void keys_visit(entry *e, void *p) {
  struct keys_ctx *k = p;
  if (db_expired(e, srv.now)) return;
  if (!k->all && !glob_match(k->pattern->p, k->pattern->len, e->key, e->klen, false)) return;
  if (k->n == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 64;
    k->found = xrealloc(k->found, k->cap * sizeof(entry *));
  }
  k->found[k->n++] = e;
}

static void cmd_keys(client *c, int argc, arg *argv) {
  (void)argc;
  struct keys_ctx k = {&argv[1], argv[1].len == 1 && argv[1].p[0] == '*', NULL, 0, 0};
  db_each(&srv.db, keys_visit, &k);
  reply_array(c, (long long)k.n);
  for (size_t i = 0; i < k.n; i++) reply_bulk(c, k.found[i]->key, k.found[i]->klen);
  free(k.found);
}

static void cmd_dbsize(client *c, int argc, arg *argv) {
  (void)argc;
  (void)argv;
  reply_int(c, (long long)db_size(&srv.db));
}

static void cmd_flushall(client *c, int argc, arg *argv) {
  if (argc > 2 || (argc == 2 && !ARGEQ(&argv[1], "ASYNC") && !ARGEQ(&argv[1], "SYNC"))) {
    reply_error(c, SYNTAX_ERROR);
    return;
  }
  db_flush(&srv.db);
  reply_status(c, "OK");
}

/* ---------------------------------------------------------------- lists */

static void push_generic(client *c, int argc, arg *argv, bool front, bool only_existing) {
  entry *e = lookup(&argv[1]);
  if (wrong_type(c, e, T_LIST)) return;
  if (!e) {
    if (only_existing) {
      reply_int(c, 0);
      return;
    }
    e = db_add(&srv.db, argv[1].p, argv[1].len);
    e->type = T_LIST;
    e->v.list = list_new();
  }
  for (int i = 2; i < argc; i++) list_push(e->v.list, kvstr_new(argv[i].p, argv[i].len), front);
  reply_int(c, (long long)e->v.list->len);
}

static void cmd_lpush(client *c, int argc, arg *argv) { push_generic(c, argc, argv, true, false); }
static void cmd_rpush(client *c, int argc, arg *argv) { push_generic(c, argc, argv, false, false); }
static void cmd_lpushx(client *c, int argc, arg *argv) { push_generic(c, argc, argv, true, true); }
static void cmd_rpushx(client *c, int argc, arg *argv) { push_generic(c, argc, argv, false, true); }

static void pop_generic(client *c, int argc, arg *argv, bool front, const char *name) {
  bool has_count = argc == 3;
  long long count = 1;
  if (argc > 3) {
    reply_arity(c, name);
    return;
  }
  if (has_count && (!parse_ll(argv[2].p, argv[2].len, &count) || count < 0)) {
    reply_error(c, "ERR value is out of range, must be positive");
    return;
  }
  entry *e = lookup(&argv[1]);
  if (!e) {
    if (has_count) reply_null_array(c);
    else reply_null(c);
    return;
  }
  if (wrong_type(c, e, T_LIST)) return;
  kvlist *l = e->v.list;
  if (!has_count) {
    kvstr *s = list_pop(l, front);
    reply_bulk(c, s->data, s->len);
    free(s);
  } else {
    size_t n = (unsigned long long)count < l->len ? (size_t)count : l->len;
    reply_array(c, (long long)n);
    for (size_t i = 0; i < n; i++) {
      kvstr *s = list_pop(l, front);
      reply_bulk(c, s->data, s->len);
      free(s);
    }
  }
  if (l->len == 0) db_delete_entry(&srv.db, e);
}

static void cmd_lpop(client *c, int argc, arg *argv) { pop_generic(c, argc, argv, true, "lpop"); }
static void cmd_rpop(client *c, int argc, arg *argv) { pop_generic(c, argc, argv, false, "rpop"); }

static void cmd_llen(client *c, int argc, arg *argv) {
  (void)argc;
  entry *e = lookup_read(&argv[1]);
  if (!wrong_type(c, e, T_LIST)) reply_int(c, e ? (long long)e->v.list->len : 0);
}

static void cmd_lrange(client *c, int argc, arg *argv) {
  (void)argc;
  long long start, end;
  if (!get_ll(c, &argv[2], &start) || !get_ll(c, &argv[3], &end)) return;
  entry *e = lookup_read(&argv[1]);
  if (wrong_type(c, e, T_LIST)) return;
  long long len = e ? (long long)e->v.list->len : 0;
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (start > end || start >= len) {
    reply_array(c, 0);
    return;
  }
  if (end >= len) end = len - 1;
  reply_array(c, end - start + 1);
  for (long long i = start; i <= end; i++) {
    const kvstr *s = list_at(e->v.list, (size_t)i);
    reply_bulk(c, s->data, s->len);
  }
}

static void cmd_lindex(client *c, int argc, arg *argv) {
  (void)argc;
  long long index;
  if (!get_ll(c, &argv[2], &index)) return;
  entry *e = lookup_read(&argv[1]);
  if (wrong_type(c, e, T_LIST)) return;
  long long len = e ? (long long)e->v.list->len : 0;
  if (index < 0) index += len;
  if (index < 0 || index >= len) {
    reply_null(c);
    return;
  }
  const kvstr *s = list_at(e->v.list, (size_t)index);
  reply_bulk(c, s->data, s->len);
}

/* ---------------------------------------------------------------- connection and server */

static void cmd_ping(client *c, int argc, arg *argv) {
  if (argc > 2) reply_arity(c, "ping");
  else if (argc == 2) reply_bulk(c, argv[1].p, argv[1].len);
  else reply_status(c, "PONG");
}

static void cmd_echo(client *c, int argc, arg *argv) {
  (void)argc;
  reply_bulk(c, argv[1].p, argv[1].len);
}

static void cmd_select(client *c, int argc, arg *argv) {
  (void)argc;
  long long id;
  if (!parse_ll(argv[1].p, argv[1].len, &id) || id < INT_MIN || id > INT_MAX) {
    reply_error(c, NOT_INTEGER);
    return;
  }
  if (id != 0) reply_error(c, "ERR DB index is out of range");
  else reply_status(c, "OK");
}

static void cmd_quit(client *c, int argc, arg *argv) {
  (void)argc;
  (void)argv;
  reply_status(c, "OK");
  c->flags |= CLIENT_CLOSE_AFTER_REPLY;
}

static void cmd_shutdown(client *c, int argc, arg *argv) {
  (void)argc;
  (void)argv;
  /* As in Redis, a successful SHUTDOWN gets no reply: the connection just closes. */
  fputs("kv: SHUTDOWN received, exiting\n", stderr);
  srv.shutdown = true;
  c->flags |= CLIENT_CLOSE_ASAP;
}

static void cmd_auth(client *c, int argc, arg *argv) {
  (void)argc;
  (void)argv;
  reply_error(c, "ERR AUTH <password> called without any password configured for the default user. "
                 "Are you sure your configuration is correct?");
}

static void cmd_hello(client *c, int argc, arg *argv) {
  if (argc >= 2) {
    long long ver;
    if (!parse_ll(argv[1].p, argv[1].len, &ver)) {
      reply_error(c, "ERR Protocol version is not an integer or out of range");
      return;
    }
    if (ver != 2) {
      reply_error(c, "NOPROTO sorry, this protocol version is not supported.");
      return;
    }
    for (int i = 2; i < argc; i++) {
      if (ARGEQ(&argv[i], "SETNAME") && i + 1 < argc) {
        free(c->name);
        c->name = kvstr_new(argv[i + 1].p, argv[i + 1].len);
        i++;
      } else if (ARGEQ(&argv[i], "AUTH") && i + 2 < argc) {
        cmd_auth(c, argc, argv);
        return;
      } else {
        reply_errorf(c, "ERR Syntax error in HELLO option '%.*s'", (int)(argv[i].len > 128 ? 128 : argv[i].len), argv[i].p);
        return;
      }
    }
  }
  reply_array(c, 14);
  reply_bulk_cstr(c, "server");
  reply_bulk_cstr(c, "redis");
  reply_bulk_cstr(c, "version");
  reply_bulk_cstr(c, KV_REDIS_VERSION);
  reply_bulk_cstr(c, "proto");
  reply_int(c, 2);
  reply_bulk_cstr(c, "id");
  reply_int(c, (long long)c->id);
  reply_bulk_cstr(c, "mode");
  reply_bulk_cstr(c, "standalone");
  reply_bulk_cstr(c, "role");
  reply_bulk_cstr(c, "master");
  reply_bulk_cstr(c, "modules");
  reply_array(c, 0);
}

static const struct command *commands_table(size_t *n);

static void cmd_command(client *c, int argc, arg *argv) {
  if (argc >= 2 && ARGEQ(&argv[1], "COUNT")) {
    size_t n;
    commands_table(&n);
    reply_int(c, (long long)n);
  } else if (argc == 1 || ARGEQ(&argv[1], "DOCS") || ARGEQ(&argv[1], "INFO") || ARGEQ(&argv[1], "LIST") ||
             ARGEQ(&argv[1], "GETKEYS")) {
    reply_array(c, 0); /* no command metadata: clients fall back to plain behaviour */
  } else {
    reply_errorf(c, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.", (int)(argv[1].len > 128 ? 128 : argv[1].len),
                 argv[1].p);
  }
}

static void config_value(sbuf *b, const char *name) {
  b->len = 0;
  if (!strcmp(name, "port")) sbuf_printf(b, "%d", srv.port);
  else if (!strcmp(name, "bind")) sbuf_printf(b, "%s", srv.port ? "127.0.0.1" : "");
  else if (!strcmp(name, "save")) sbuf_printf(b, "%s", "");
  else if (!strcmp(name, "appendonly")) sbuf_printf(b, "no");
  else if (!strcmp(name, "databases")) sbuf_printf(b, "1");
  else if (!strcmp(name, "maxclients")) sbuf_printf(b, "%d", MAX_CLIENTS);
  else if (!strcmp(name, "maxmemory")) sbuf_printf(b, "0");
  else if (!strcmp(name, "maxmemory-policy")) sbuf_printf(b, "noeviction");
  else if (!strcmp(name, "proto-max-bulk-len")) sbuf_printf(b, "%lld", PROTO_MAX_BULK_LEN);
  else if (!strcmp(name, "timeout")) sbuf_printf(b, "0");
  else if (!strcmp(name, "hz")) sbuf_printf(b, "%d", 1000 / CRON_INTERVAL_MS);
  else if (!strcmp(name, "cluster-enabled")) sbuf_printf(b, "no");
  if (!b->p) sbuf_add(b, "", 0);
}

static void cmd_config(client *c, int argc, arg *argv) {
  static const char *const params[] = {"appendonly", "bind", "cluster-enabled", "databases", "hz", "maxclients",
                                       "maxmemory", "maxmemory-policy", "port", "proto-max-bulk-len", "save", "timeout"};
  const size_t nparams = sizeof params / sizeof params[0];
  if (ARGEQ(&argv[1], "GET")) {
    if (argc < 3) {
      reply_arity(c, "config|get");
      return;
    }
    bool matched[sizeof params / sizeof params[0]] = {false};
    size_t n = 0;
    for (int i = 2; i < argc; i++)
      for (size_t j = 0; j < nparams; j++)
        if (!matched[j] && glob_match(argv[i].p, argv[i].len, params[j], strlen(params[j]), true)) {
          matched[j] = true;
          n++;
        }
    reply_array(c, (long long)n * 2);
    sbuf v = {0};
    for (size_t j = 0; j < nparams; j++) {
      if (!matched[j]) continue;
      config_value(&v, params[j]);
      reply_bulk_cstr(c, params[j]);
      reply_bulk(c, v.p, v.len);
    }
    sbuf_free(&v);
  } else if (ARGEQ(&argv[1], "SET")) {
    reply_errorf(c, "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                 argc > 2 ? (int)(argv[2].len > 128 ? 128 : argv[2].len) : 0, argc > 2 ? argv[2].p : "");
  } else if (ARGEQ(&argv[1], "RESETSTAT")) {
    srv.stat_connections = srv.stat_rejected = srv.stat_commands = 0;
    srv.stat_hits = srv.stat_misses = srv.stat_net_in = srv.stat_net_out = 0;
    srv.db.expired_keys = 0;
    reply_status(c, "OK");
  } else if (ARGEQ(&argv[1], "REWRITE")) {
    reply_error(c, "ERR The server is running without a config file");
  } else {
    reply_errorf(c, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.", (int)(argv[1].len > 128 ? 128 : argv[1].len),
                 argv[1].p);
  }
}

static void client_info_line(sbuf *b, const client *x) {
  sbuf_printf(b, "id=%llu fd=%d name=%s db=0 qbuf=%zu obl=%zu cmd=%s\n", (unsigned long long)x->id, x->fd,
              x->name ? x->name->data : "", x->qlen, x->olen - x->opos, x->lastcmd ? x->lastcmd : "NULL");
}

static void cmd_client(client *c, int argc, arg *argv) {
  const arg *sub = &argv[1];
  if (ARGEQ(sub, "SETNAME")) {
    if (argc != 3) {
      reply_arity(c, "client|setname");
      return;
    }
    for (size_t i = 0; i < argv[2].len; i++) {
      if (argv[2].p[i] < '!' || argv[2].p[i] > '~') {
        reply_error(c, "ERR Client names cannot contain spaces, newlines or special characters.");
        return;
      }
    }
    free(c->name);
    c->name = argv[2].len ? kvstr_new(argv[2].p, argv[2].len) : NULL;
    reply_status(c, "OK");
  } else if (ARGEQ(sub, "GETNAME")) {
    if (c->name) reply_bulk(c, c->name->data, c->name->len);
    else reply_null(c);
  } else if (ARGEQ(sub, "ID")) {
    reply_int(c, (long long)c->id);
  } else if (ARGEQ(sub, "LIST") || ARGEQ(sub, "INFO")) {
    sbuf b = {0};
    if (ARGEQ(sub, "INFO")) client_info_line(&b, c);
    else
      for (size_t i = 0; i < srv.nclients; i++) client_info_line(&b, srv.clients[i]);
    reply_bulk(c, b.p ? b.p : "", b.len);
    sbuf_free(&b);
  } else {
    reply_status(c, "OK"); /* SETINFO, REPLY ON, NO-EVICT...: accepted and ignored */
  }
}

static void info_section(sbuf *b, int *sections, const char *title) {
  if ((*sections)++) sbuf_add(b, "\r\n", 2);
  sbuf_printf(b, "# %s\r\n", title);
}

static void cmd_info(client *c, int argc, arg *argv) {
  enum { S_SERVER = 1, S_CLIENTS = 2, S_STATS = 4, S_KEYSPACE = 8, S_ALL = 15 };
  int want = argc == 1 ? S_ALL : 0;
  for (int i = 1; i < argc; i++) {
    const arg *a = &argv[i];
    if (ARGEQ(a, "all") || ARGEQ(a, "default") || ARGEQ(a, "everything")) want |= S_ALL;
    else if (ARGEQ(a, "server")) want |= S_SERVER;
    else if (ARGEQ(a, "clients")) want |= S_CLIENTS;
    else if (ARGEQ(a, "stats")) want |= S_STATS;
    else if (ARGEQ(a, "keyspace")) want |= S_KEYSPACE;
  }
  sbuf b = {0};
  int sections = 0;
  int64_t uptime = (mono_ms() - srv.start_mono) / 1000;
  if (want & S_SERVER) {
    info_section(&b, &sections, "Server");
    sbuf_printf(&b, "redis_version:%s\r\nkv_version:%s\r\nredis_mode:standalone\r\n", KV_REDIS_VERSION, KV_VERSION);
#ifdef __wasi__
    sbuf_printf(&b, "os:WASI wasm32\r\n");
#else
    struct utsname u;
    if (uname(&u) == 0) sbuf_printf(&b, "os:%s %s %s\r\n", u.sysname, u.release, u.machine);
#endif
    sbuf_printf(&b, "arch_bits:%d\r\nmultiplexing_api:poll\r\n", (int)(sizeof(void *) * 8));
    sbuf_printf(&b, "process_id:%ld\r\n", (long)getpid());
    sbuf_printf(&b, "tcp_port:%d\r\n", srv.port);
    sbuf_printf(&b, "uptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n", (long long)uptime, (long long)uptime / 86400);
    sbuf_printf(&b, "hz:%d\r\nexecutable:%s\r\nconfig_file:\r\n", 1000 / CRON_INTERVAL_MS,
                srv.executable ? srv.executable : "");
  }
  if (want & S_CLIENTS) {
    info_section(&b, &sections, "Clients");
    sbuf_printf(&b, "connected_clients:%zu\r\nmaxclients:%d\r\nblocked_clients:0\r\n", srv.nclients, MAX_CLIENTS);
  }
  if (want & S_STATS) {
    info_section(&b, &sections, "Stats");
    sbuf_printf(&b, "total_connections_received:%llu\r\n", (unsigned long long)srv.stat_connections);
    sbuf_printf(&b, "total_commands_processed:%llu\r\n", (unsigned long long)srv.stat_commands);
    sbuf_printf(&b, "total_net_input_bytes:%llu\r\n", (unsigned long long)srv.stat_net_in);
    sbuf_printf(&b, "total_net_output_bytes:%llu\r\n", (unsigned long long)srv.stat_net_out);
    sbuf_printf(&b, "rejected_connections:%llu\r\n", (unsigned long long)srv.stat_rejected);
    sbuf_printf(&b, "expired_keys:%llu\r\n", (unsigned long long)srv.db.expired_keys);
    sbuf_printf(&b, "keyspace_hits:%llu\r\n", (unsigned long long)srv.stat_hits);
    sbuf_printf(&b, "keyspace_misses:%llu\r\n", (unsigned long long)srv.stat_misses);
  }
  if (want & S_KEYSPACE) {
    info_section(&b, &sections, "Keyspace");
    if (db_size(&srv.db))
      sbuf_printf(&b, "db0:keys=%zu,expires=%zu,avg_ttl=0\r\n", db_size(&srv.db), srv.db.expires);
  }
  reply_bulk(c, b.p ? b.p : "", b.len);
  sbuf_free(&b);
}

/* ---------------------------------------------------------------- dispatch */

static struct command table[] = {
    {"append", cmd_append, 3},     {"auth", cmd_auth, -2},         {"client", cmd_client, -2},
    {"command", cmd_command, -1},  {"config", cmd_config, -2},     {"dbsize", cmd_dbsize, 1},
    {"decr", cmd_decr, 2},         {"decrby", cmd_decrby, 3},      {"del", cmd_del, -2},
    {"echo", cmd_echo, 2},         {"exists", cmd_exists, -2},     {"expire", cmd_expire, -3},
    {"expireat", cmd_expireat, -3}, {"flushall", cmd_flushall, -1}, {"flushdb", cmd_flushall, -1},
    {"get", cmd_get, 2},           {"getdel", cmd_getdel, 2},      {"hello", cmd_hello, -1},
    {"incr", cmd_incr, 2},         {"incrby", cmd_incrby, 3},      {"info", cmd_info, -1},
    {"keys", cmd_keys, 2},         {"lindex", cmd_lindex, 3},      {"llen", cmd_llen, 2},
    {"lpop", cmd_lpop, -2},        {"lpush", cmd_lpush, -3},       {"lpushx", cmd_lpushx, -3},
    {"lrange", cmd_lrange, 4},     {"mget", cmd_mget, -2},         {"mset", cmd_mset, -3},
    {"persist", cmd_persist, 2},   {"pexpire", cmd_pexpire, -3},   {"pexpireat", cmd_pexpireat, -3},
    {"ping", cmd_ping, -1},        {"psetex", cmd_psetex, 4},      {"pttl", cmd_pttl, 2},
    {"quit", cmd_quit, -1},        {"rpop", cmd_rpop, -2},         {"rpush", cmd_rpush, -3},
    {"rpushx", cmd_rpushx, -3},    {"select", cmd_select, 2},      {"set", cmd_set, -3},
    {"setex", cmd_setex, 4},       {"setnx", cmd_setnx, 3},        {"shutdown", cmd_shutdown, -1},
    {"strlen", cmd_strlen, 2},     {"ttl", cmd_ttl, 2},            {"type", cmd_type, 2},
};

static const struct command *commands_table(size_t *n) {
  *n = sizeof table / sizeof table[0];
  return table;
}

static int compare_commands(const void *a, const void *b) {
  return strcmp(((const struct command *)a)->name, ((const struct command *)b)->name);
}

void commands_init(void) { qsort(table, sizeof table / sizeof table[0], sizeof table[0], compare_commands); }

static void reply_unknown(client *c, int argc, arg *argv) {
  sbuf b = {0};
  sbuf_add(&b, "ERR unknown command '", 21);
  sbuf_add(&b, argv[0].p, argv[0].len > 128 ? 128 : argv[0].len);
  sbuf_add(&b, "', with args beginning with: ", 29);
  size_t args_start = b.len;
  for (int i = 1; i < argc && b.len - args_start < 128; i++) {
    size_t room = 128 - (b.len - args_start);
    sbuf_add(&b, "'", 1);
    sbuf_add(&b, argv[i].p, argv[i].len < room ? argv[i].len : room);
    sbuf_add(&b, "' ", 2);
  }
  for (size_t i = 0; i < b.len; i++)
    if (b.p[i] == '\0') b.p[i] = ' ';
  reply_error(c, b.p);
  sbuf_free(&b);
}

void command_execute(client *c, int argc, arg *argv) {
  char name[32];
  const struct command *cmd = NULL;
  if (argv[0].len < sizeof name && !memchr(argv[0].p, '\0', argv[0].len)) {
    for (size_t i = 0; i < argv[0].len; i++) {
      char ch = argv[0].p[i];
      name[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    name[argv[0].len] = '\0';
    struct command key = {name, NULL, 0};
    cmd = bsearch(&key, table, sizeof table / sizeof table[0], sizeof table[0], compare_commands);
  }
  if (!cmd) {
    c->lastcmd = NULL;
    reply_unknown(c, argc, argv);
    return;
  }
  c->lastcmd = cmd->name;
  if ((cmd->arity > 0 && argc != cmd->arity) || argc < -cmd->arity) {
    reply_arity(c, cmd->name);
    return;
  }
  cmd->fn(c, argc, argv);
}

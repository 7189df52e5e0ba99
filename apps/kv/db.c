/*
 * The keyspace: a chained hash table of entries (key stored inline) with Redis-style
 * incremental rehashing: when it grows or shrinks, a second table is allocated and buckets
 * move over a few at a time on each operation and in the periodic cron, so no single
 * command pays for rehashing millions of keys.
 *
 * Expiry: entries carry an absolute monotonic deadline. Lookups delete expired entries
 * (lazy expiry); db_cron sweeps the buckets with a cursor to reclaim the rest.
 * Everything is deterministic: a fixed hash function, no randomness.
 */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

#define DB_INITIAL_SIZE 16

/* FNV-1a over the bytes (endianness-independent), then a 64-bit finalizer for the low bits. */
static uint64_t hash_key(const char *k, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)k[i];
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

void db_init(db *d) {
  memset(d, 0, sizeof *d);
  d->rehashidx = -1;
}

static bool rehashing(const db *d) { return d->rehashidx != -1; }

void db_free_value(entry *e) {
  if (e->type == T_STRING) free(e->v.str);
  else if (e->type == T_LIST) list_free(e->v.list);
  e->v.str = NULL;
  e->type = 0;
}

static void free_entry(db *d, entry *e) {
  if (e->expire >= 0) d->expires--;
  db_free_value(e);
  free(e);
}

static entry **alloc_table(size_t size) {
  if (size > SIZE_MAX / sizeof(entry *)) oom();
  entry **t = xmalloc(size * sizeof(entry *));
  for (size_t i = 0; i < size; i++) t[i] = NULL;
  return t;
}

static size_t next_pow2(size_t n) {
  size_t s = DB_INITIAL_SIZE;
  while (s < n) {
    if (s > SIZE_MAX / 2) return s;
    s *= 2;
  }
  return s;
}

/* Moves up to n buckets from t[0] to t[1] (visiting at most 10n empty ones). */
static void rehash_step(db *d, int n) {
  if (!rehashing(d)) return;
  int empty_visits = n * 10;
  while (n-- > 0 && d->used[0] != 0) {
    while (d->t[0][d->rehashidx] == NULL) {
      d->rehashidx++;
      if (--empty_visits == 0) return;
    }
    entry *e = d->t[0][d->rehashidx];
    while (e) {
      entry *next = e->next;
      size_t idx = (size_t)(e->hash & (d->size[1] - 1));
      e->next = d->t[1][idx];
      d->t[1][idx] = e;
      d->used[0]--;
      d->used[1]++;
      e = next;
    }
    d->t[0][d->rehashidx++] = NULL;
  }
  if (d->used[0] == 0) {
    free(d->t[0]);
    d->t[0] = d->t[1];
    d->size[0] = d->size[1];
    d->used[0] = d->used[1];
    d->t[1] = NULL;
    d->size[1] = d->used[1] = 0;
    d->rehashidx = -1;
    d->cursor[0] = d->cursor[1] = 0;
  }
}

static void start_resize(db *d, size_t size) {
  if (rehashing(d) || size == d->size[0]) return;
  if (d->size[0] == 0) {
    d->t[0] = alloc_table(size);
    d->size[0] = size;
    return;
  }
  d->t[1] = alloc_table(size);
  d->size[1] = size;
  d->used[1] = 0;
  d->rehashidx = 0;
  d->cursor[1] = 0;
}

/* The link (bucket slot or previous entry's next) pointing at the key, or NULL. */
static entry **find_link(db *d, const char *k, size_t klen, uint64_t h, int *table) {
  for (int t = 0; t <= 1; t++) {
    if (d->size[t] == 0) continue;
    entry **link = &d->t[t][h & (d->size[t] - 1)];
    for (; *link; link = &(*link)->next) {
      entry *e = *link;
      if (e->hash == h && e->klen == klen && memcmp(e->key, k, klen) == 0) {
        *table = t;
        return link;
      }
    }
    if (!rehashing(d)) break;
  }
  return NULL;
}

bool db_expired(const entry *e, int64_t now) { return e->expire >= 0 && e->expire <= now; }

entry *db_lookup(db *d, const char *k, size_t klen, int64_t now) {
  if (d->size[0] == 0) return NULL;
  rehash_step(d, 1);
  int t;
  uint64_t h = hash_key(k, klen);
  entry **link = find_link(d, k, klen, h, &t);
  if (!link) return NULL;
  entry *e = *link;
  if (db_expired(e, now)) {
    *link = e->next;
    d->used[t]--;
    d->expired_keys++;
    free_entry(d, e);
    return NULL;
  }
  return e;
}

entry *db_add(db *d, const char *k, size_t klen) {
  if (d->size[0] == 0) start_resize(d, DB_INITIAL_SIZE);
  rehash_step(d, 1);
  if (!rehashing(d) && d->used[0] >= d->size[0]) start_resize(d, next_pow2(d->used[0] * 2));
  if (klen > SIZE_MAX - sizeof(entry) - 1) oom();
  entry *e = xmalloc(sizeof(entry) + klen + 1);
  e->hash = hash_key(k, klen);
  e->expire = -1;
  e->type = 0;
  e->v.str = NULL;
  e->klen = klen;
  if (klen) memcpy(e->key, k, klen);
  e->key[klen] = '\0';
  int t = rehashing(d) ? 1 : 0;
  size_t idx = (size_t)(e->hash & (d->size[t] - 1));
  e->next = d->t[t][idx];
  d->t[t][idx] = e;
  d->used[t]++;
  return e;
}

entry *db_set_string(db *d, const char *k, size_t klen, kvstr *s, bool keepttl, int64_t now) {
  entry *e = db_lookup(d, k, klen, now);
  if (e) {
    db_free_value(e);
    if (!keepttl) db_set_expire(d, e, -1);
  } else {
    e = db_add(d, k, klen);
  }
  e->type = T_STRING;
  e->v.str = s;
  return e;
}

void db_delete_entry(db *d, entry *e) {
  int t;
  entry **link = find_link(d, e->key, e->klen, e->hash, &t);
  if (!link) return;
  *link = e->next;
  d->used[t]--;
  free_entry(d, e);
}

bool db_delete(db *d, const char *k, size_t klen, int64_t now) {
  entry *e = db_lookup(d, k, klen, now);
  if (!e) return false;
  db_delete_entry(d, e);
  return true;
}

void db_set_expire(db *d, entry *e, int64_t when) {
  if (when < 0) when = -1;
  if (e->expire < 0 && when >= 0) d->expires++;
  else if (e->expire >= 0 && when < 0) d->expires--;
  e->expire = when;
}

size_t db_size(const db *d) { return d->used[0] + d->used[1]; }

void db_flush(db *d) {
  for (int t = 0; t <= 1; t++) {
    for (size_t i = 0; i < d->size[t]; i++) {
      entry *e = d->t[t][i];
      while (e) {
        entry *next = e->next;
        free_entry(d, e);
        e = next;
      }
    }
    free(d->t[t]);
  }
  uint64_t expired = d->expired_keys;
  db_init(d);
  d->expired_keys = expired;
}

void db_free(db *d) { db_flush(d); }

void db_each(const db *d, void (*fn)(entry *e, void *ctx), void *ctx) {
  for (int t = 0; t <= 1; t++)
    for (size_t i = 0; i < d->size[t]; i++)
      for (entry *e = d->t[t][i]; e; e = e->next) fn(e, ctx);
}

/*
 * Active expiry: visits buckets from a cursor, deleting expired entries. At least 4096
 * buckets per call; it keeps going (up to ~25 ms) while more than a quarter of the keys
 * with a TTL it meets turn out to be expired.
 */
static void sweep(db *d, int64_t now) {
  size_t visited = 0, volatile_seen = 0, expired = 0;
  int64_t start = now;
  for (;;) {
    for (int t = 0; t <= 1; t++) {
      if (d->size[t] == 0) continue;
      size_t idx = d->cursor[t] & (d->size[t] - 1);
      d->cursor[t] = (idx + 1) & (d->size[t] - 1);
      entry **link = &d->t[t][idx];
      while (*link) {
        entry *e = *link;
        if (e->expire >= 0) {
          volatile_seen++;
          if (e->expire <= now) {
            *link = e->next;
            d->used[t]--;
            d->expired_keys++;
            free_entry(d, e);
            expired++;
            continue;
          }
        }
        link = &e->next;
      }
    }
    if (d->expires == 0) return;
    if (++visited < 4096) continue;
    if (expired * 4 <= volatile_seen) return;
    if (visited % 1024 == 0 && mono_ms() - start >= 25) return;
  }
}

void db_cron(db *d, int64_t now) {
  if (d->expires) sweep(d, now);
  if (rehashing(d)) {
    /* Finish resizing in ~1 ms slices when the server is idle. */
    int64_t start = mono_ms();
    do rehash_step(d, 100);
    while (rehashing(d) && mono_ms() - start < 1);
  } else if (d->size[0] > DB_INITIAL_SIZE && d->used[0] * 8 < d->size[0]) {
    start_resize(d, next_pow2(d->used[0] * 2));
  }
}

/* Allocation, strings, numbers, clocks and glob matching. */
#include "kv.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void oom(void) {
  fputs("kv: out of memory\n", stderr);
  abort();
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom();
  return q;
}

kvstr *kvstr_new(const char *p, size_t len) {
  if (len > SIZE_MAX - sizeof(kvstr) - 1) oom();
  kvstr *s = xmalloc(sizeof(kvstr) + len + 1);
  s->len = len;
  if (len) memcpy(s->data, p, len);
  s->data[len] = '\0';
  return s;
}

kvstr *kvstr_from_ll(long long v) {
  char buf[32];
  return kvstr_new(buf, ll2str(buf, v));
}

static void sbuf_reserve(sbuf *b, size_t n) {
  if (b->cap - b->len >= n) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2) oom();
    cap *= 2;
  }
  b->p = xrealloc(b->p, cap);
  b->cap = cap;
}

void sbuf_add(sbuf *b, const char *p, size_t n) {
  sbuf_reserve(b, n + 1);
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void sbuf_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sbuf_add(b, tmp, (size_t)n);
    return;
  }
  sbuf_reserve(b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void sbuf_free(sbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int64_t clock_ms(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
int64_t real_ms(void) { return clock_ms(CLOCK_REALTIME); }

bool parse_ll(const char *p, size_t len, long long *out) {
  if (len == 0 || len > 20) return false;
  if (len == 1 && p[0] == '0') {
    *out = 0;
    return true;
  }
  size_t i = 0;
  bool neg = false;
  if (p[0] == '-') {
    neg = true;
    if (++i == len) return false;
  }
  if (p[i] < '1' || p[i] > '9') return false;
  unsigned long long v = 0;
  for (; i < len; i++) {
    if (p[i] < '0' || p[i] > '9') return false;
    unsigned d = (unsigned)(p[i] - '0');
    if (v > (ULLONG_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (unsigned long long)LLONG_MAX + 1) return false;
    *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
  } else {
    if (v > (unsigned long long)LLONG_MAX) return false;
    *out = (long long)v;
  }
  return true;
}

size_t ll2str(char *buf, long long v) {
  char tmp[24];
  size_t n = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  size_t len = 0;
  if (v < 0) buf[len++] = '-';
  while (n) buf[len++] = tmp[--n];
  buf[len] = '\0';
  return len;
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

bool eq_nocase(const char *p, size_t len, const char *lit) {
  size_t n = strlen(lit);
  if (n != len) return false;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)p[i]) != lower((unsigned char)lit[i])) return false;
  return true;
}

static bool same(unsigned char a, unsigned char b, bool nocase) { return nocase ? lower(a) == lower(b) : a == b; }

/* Matches one non-'*' token at p against ch; returns the token's length. */
static size_t glob_token(const char *p, size_t n, unsigned char ch, bool nocase, bool *ok) {
  if (p[0] == '?') {
    *ok = true;
    return 1;
  }
  if (p[0] == '\\' && n >= 2) {
    *ok = same((unsigned char)p[1], ch, nocase);
    return 2;
  }
  if (p[0] != '[') {
    *ok = same((unsigned char)p[0], ch, nocase);
    return 1;
  }
  size_t i = 1;
  bool negate = false, match = false;
  if (i < n && p[i] == '^') {
    negate = true;
    i++;
  }
  while (i < n && p[i] != ']') {
    if (p[i] == '\\' && i + 1 < n) {
      if (same((unsigned char)p[i + 1], ch, nocase)) match = true;
      i += 2;
    } else if (i + 2 < n && p[i + 1] == '-') {
      unsigned char lo = (unsigned char)p[i], hi = (unsigned char)p[i + 2], c = ch;
      if (lo > hi) {
        unsigned char t = lo;
        lo = hi;
        hi = t;
      }
      if (nocase) {
        lo = lower(lo);
        hi = lower(hi);
        c = lower(c);
      }
      if (c >= lo && c <= hi) match = true;
      i += 3;
    } else {
      if (same((unsigned char)p[i], ch, nocase)) match = true;
      i++;
    }
  }
  if (i < n) i++; /* the closing ']' */
  *ok = negate ? !match : match;
  return i;
}

/* Greedy matching with one backtracking point (the last '*'): O(len(pat) * len(s)). */
bool glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase) {
  size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
  while (si < slen) {
    if (pi < plen && pat[pi] == '*') {
      while (pi < plen && pat[pi] == '*') pi++;
      if (pi == plen) return true;
      star_p = pi;
      star_s = si;
      continue;
    }
    if (pi < plen) {
      bool ok;
      size_t n = glob_token(pat + pi, plen - pi, (unsigned char)s[si], nocase, &ok);
      if (ok) {
        pi += n;
        si++;
        continue;
      }
    }
    if (star_p == SIZE_MAX) return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < plen && pat[pi] == '*') pi++;
  return pi == plen;
}

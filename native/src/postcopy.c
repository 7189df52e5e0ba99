/*
 * Lazy restore, the destination half of post-copy migration (N-API, C, NAPI_VERSION 8).
 *
 * The guest runs here before its memory has arrived. The missing ranges of its linear memory are
 * dropped (MADV_DONTNEED) and registered with a userfaultfd in missing mode; a native thread, which
 * never needs the JS thread, then owns three file descriptors:
 *   - the userfaultfd: a fault on a missing page asks the source for the 64 KiB granule holding it
 *     (once: later faults on a granule in flight just wait for it); a fault on a page that needs no
 *     data (outside the missing set) gets a zero page; a fault that raced with an arrival is woken;
 *   - two TCP sockets from the source: the push channel, on which it streams every missing chunk in
 *     the background, and the fault channel, which carries the requests and their answers alone, so
 *     that an answer never queues behind pushed megabytes. Chunks from either are installed with
 *     UFFDIO_COPY (UFFDIO_ZEROPAGE for chunks the source found all zero). UFFDIO_COPY is atomic
 *     per page against faults, so a push and a request of the same page never clash: what arrived
 *     already is skipped (per-page state), EEXIST skips a page someone else installed, EAGAIN and
 *     partial copies resume where they stopped.
 * When every missing page arrived, the thread says so to the source, closes the userfaultfd
 * (which unregisters the memory) and reports to JS. If the source is lost first, it reports the
 * error and leaves the userfaultfd open: the guest must stay blocked rather than read zeros.
 *
 * Page channels (little-endian u32s; the format and its constants: src/protocol/page-channel.ts):
 *   source -> here, on each: [len][ticket] once, then chunks [offset][length | ZERO_CHUNK][bytes, unless ZERO_CHUNK]
 *   here -> source, on the fault channel: requests [offset][length], and when complete [RESIDENT][0]
 *
 * JS API:
 *   probeLazyRestore() -> { ok, reason? }
 *   lazyRestore(view: Uint8Array, missing: Uint32Array ([first, end) 64 KiB granule indices),
 *               pushFd: number, faultFd: number (sockets, duplicated here), ticket: Uint8Array,
 *               onEnd: (error: string | null, stats) => void)
 */
#define _GNU_SOURCE
#include "postcopy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "page_channel.h" /* GRANULE, ZERO_CHUNK, RESIDENT, MAX_CHUNK, MAX_TICKET...: generated from src/protocol/page-channel.ts */
#include "uffd.h"

#define ERR_CODE "ERR_ROAM_NATIVE"

#ifdef __linux__
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

enum { PAGE_PRESENT = 0, PAGE_MISSING = 1, PAGE_ARRIVED = 2 };

typedef struct {
  uint64_t faults, requested_bytes, received_bytes, zero_bytes, duplicate_bytes, served, wait_ns_total, wait_ns_max;
  double ms;
} stats_t;

/* One page channel's input: its hello, then chunk headers and payloads. */
typedef struct {
  int fd;
  uint8_t hello[TICKET_LENGTH_BYTES + MAX_TICKET];
  size_t hello_have;
  bool hello_done;
  uint8_t header[MESSAGE_BYTES];
  size_t header_have;
  bool in_payload;
  uint32_t chunk_offset, chunk_length;
  size_t payload_have;
  uint8_t *staging;
} channel_t;

enum { PUSH = 0, FAULT = 1 };

typedef struct {
  int uffd;
  channel_t channels[2];
  uint8_t *base;
  size_t len, page, npages, missing_left;
  uint8_t *state;          /* per page: PAGE_* */
  uint64_t *requested_ns;  /* per granule: when it was asked for (0: not asked, or served) */
  uint8_t *requested;      /* per granule: asked for once */
  uint8_t ticket[MAX_TICKET];
  size_t ticket_len;
  /* output on the fault channel: requests not yet written */
  uint8_t *out;
  size_t out_len, out_cap;
  stats_t stats;
  uint64_t started_ns;
  char error[512];
  napi_threadsafe_function on_end;
} lazy_t;

typedef struct {
  char error[512];
  stats_t stats;
} lazy_result_t;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t get_le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static bool set_error(lazy_t *l, const char *step, int err) {
  if (!l->error[0]) describe(l->error, sizeof l->error, step, err);
  return false;
}

static bool set_message(lazy_t *l, const char *message) {
  if (!l->error[0]) snprintf(l->error, sizeof l->error, "%s", message);
  return false;
}

static void queue_message(lazy_t *l, uint32_t offset, uint32_t length) {
  /* out_cap holds one request per granule plus the final message: never full. */
  put_le32(l->out + l->out_len, offset);
  put_le32(l->out + l->out_len + 4, length);
  l->out_len += MESSAGE_BYTES;
}

static bool flush_out(lazy_t *l) {
  while (l->out_len > 0) {
    ssize_t n = send(l->channels[FAULT].fd, l->out, l->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return set_error(l, "page channel: send", errno);
    }
    memmove(l->out, l->out + n, l->out_len - (size_t)n);
    l->out_len -= (size_t)n;
  }
  return true;
}

static void wake(lazy_t *l, uintptr_t start, size_t len) {
  struct uffdio_range range = { .start = start, .len = len };
  ioctl(l->uffd, UFFDIO_WAKE, &range);
}

/* Installs pages [first, last) of the current chunk (all PAGE_MISSING): data, or zeros. */
static bool install_run(lazy_t *l, const channel_t *c, size_t first, size_t last, bool zero) {
  const size_t total = (last - first) * l->page;
  const uintptr_t dst = (uintptr_t)l->base + first * l->page;
  const uint8_t *src = c->staging + (first * l->page - c->chunk_offset);
  size_t done = 0;
  int attempts = 0;
  while (done < total) {
    int rc;
    __s64 result;
    if (zero) {
      struct uffdio_zeropage z = { .range = { .start = dst + done, .len = total - done }, .mode = 0 };
      rc = ioctl(l->uffd, UFFDIO_ZEROPAGE, &z);
      result = z.zeropage;
    } else {
      struct uffdio_copy copy = { .dst = dst + done, .src = (uintptr_t)(src + done), .len = total - done, .mode = 0 };
      rc = ioctl(l->uffd, UFFDIO_COPY, &copy);
      result = copy.copy;
    }
    if (rc == 0) break;
    int err = errno;
    if (result > 0) { /* a partial copy: go on after it */
      done += (size_t)result;
      continue;
    }
    if (err == EEXIST) { /* already present (installed by a racing zero-page fill): keep it */
      l->stats.duplicate_bytes += l->page;
      done += l->page;
      continue;
    }
    if ((err == EAGAIN || err == EINTR) && ++attempts < 100000) continue; /* the mapping is changing (memory.grow) */
    return set_error(l, zero ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY", err);
  }
  memset(l->state + first, PAGE_ARRIVED, last - first);
  l->missing_left -= last - first;
  return true;
}

/* A whole chunk arrived on channel c (in its staging unless zero): install what is still missing of it. */
static bool install_chunk(lazy_t *l, const channel_t *c, bool zero) {
  const size_t first = c->chunk_offset / l->page, last = first + c->chunk_length / l->page;
  size_t arrived = 0;
  for (size_t p = first; p < last;) {
    if (l->state[p] != PAGE_MISSING) {
      p++;
      continue;
    }
    size_t q = p;
    while (q < last && l->state[q] == PAGE_MISSING) q++;
    if (!install_run(l, c, p, q, zero)) return false;
    arrived += q - p;
    p = q;
  }
  l->stats.duplicate_bytes += (c->chunk_length / l->page - arrived) * l->page;
  if (zero) l->stats.zero_bytes += c->chunk_length;
  else l->stats.received_bytes += c->chunk_length;
  /* A granule that was asked for: its fault waited from the request until now. */
  if (c->chunk_offset % GRANULE == 0) {
    size_t g = c->chunk_offset / GRANULE;
    if (l->requested_ns[g]) {
      uint64_t waited = now_ns() - l->requested_ns[g];
      l->requested_ns[g] = 0;
      l->stats.served++;
      l->stats.wait_ns_total += waited;
      if (waited > l->stats.wait_ns_max) l->stats.wait_ns_max = waited;
    }
  }
  return true;
}

static bool start_chunk(lazy_t *l, channel_t *c) {
  uint32_t offset = get_le32(c->header), length = get_le32(c->header + 4);
  bool zero = (length & ZERO_CHUNK) != 0;
  length &= ~ZERO_CHUNK;
  if (length == 0 || length > MAX_CHUNK || offset % l->page || length % l->page || (uint64_t)offset + length > l->len) {
    char message[160];
    snprintf(message, sizeof message, "page channel: bad chunk (offset %u, length %u) for %zu bytes of memory", offset, length, l->len);
    return set_message(l, message);
  }
  c->chunk_offset = offset;
  c->chunk_length = length;
  c->header_have = 0;
  if (zero) return install_chunk(l, c, true);
  c->in_payload = true;
  c->payload_have = 0;
  return true;
}

/*
 * Reads what channel c has, up to `chunks` whole chunks (so that a busy push channel does not keep
 * faults waiting); false on EOF or error (before the end, that is the source lost).
 */
static bool read_channel(lazy_t *l, channel_t *c, int chunks) {
  while (chunks > 0) {
    uint8_t *dst;
    size_t want;
    if (!c->hello_done) {
      size_t need = c->hello_have < TICKET_LENGTH_BYTES ? TICKET_LENGTH_BYTES : TICKET_LENGTH_BYTES + l->ticket_len;
      dst = c->hello + c->hello_have;
      want = need - c->hello_have;
    } else if (c->in_payload) {
      dst = c->staging + c->payload_have;
      want = c->chunk_length - c->payload_have;
    } else {
      dst = c->header + c->header_have;
      want = MESSAGE_BYTES - c->header_have;
    }
    ssize_t n = recv(c->fd, dst, want, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return set_error(l, "page channel: recv", errno);
    }
    if (n == 0) {
      char message[200];
      snprintf(message, sizeof message, "the source closed the page channel with %zu of %zu pages still missing", l->missing_left, l->npages);
      return set_message(l, message);
    }
    if (!c->hello_done) {
      c->hello_have += (size_t)n;
      if (c->hello_have == TICKET_LENGTH_BYTES && get_le32(c->hello) != l->ticket_len) return set_message(l, "page channel: wrong ticket");
      if (c->hello_have == TICKET_LENGTH_BYTES + l->ticket_len) {
        if (memcmp(c->hello + TICKET_LENGTH_BYTES, l->ticket, l->ticket_len) != 0) return set_message(l, "page channel: wrong ticket");
        c->hello_done = true;
      }
    } else if (c->in_payload) {
      c->payload_have += (size_t)n;
      if (c->payload_have == c->chunk_length) {
        c->in_payload = false;
        if (!install_chunk(l, c, false)) return false;
        chunks--;
      }
    } else {
      c->header_have += (size_t)n;
      if (c->header_have == MESSAGE_BYTES && !start_chunk(l, c)) return false;
    }
  }
  return true;
}

static bool handle_faults(lazy_t *l) {
  struct uffd_msg msgs[64];
  for (;;) {
    ssize_t n = read(l->uffd, msgs, sizeof msgs);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return set_error(l, "read userfaultfd", errno);
    }
    for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      uintptr_t address = (uintptr_t)msgs[i].arg.pagefault.address & ~(uintptr_t)(l->page - 1);
      if (address < (uintptr_t)l->base || address >= (uintptr_t)l->base + l->len) continue;
      size_t p = (address - (uintptr_t)l->base) / l->page;
      if (l->state[p] == PAGE_ARRIVED) {
        wake(l, address, l->page); /* raced with its arrival */
      } else if (l->state[p] == PAGE_PRESENT) {
        /* Not part of the migration (zero at the source and never touched here): a zero page. */
        struct uffdio_zeropage z = { .range = { .start = address, .len = l->page }, .mode = 0 };
        if (ioctl(l->uffd, UFFDIO_ZEROPAGE, &z) != 0 && errno != EEXIST && errno != EAGAIN) return set_error(l, "UFFDIO_ZEROPAGE", errno);
        wake(l, address, l->page);
      } else {
        size_t g = (address - (uintptr_t)l->base) / GRANULE;
        l->stats.faults++;
        if (!l->requested[g]) {
          l->requested[g] = 1;
          l->requested_ns[g] = now_ns();
          size_t length = l->len - g * GRANULE < GRANULE ? l->len - g * GRANULE : GRANULE;
          queue_message(l, (uint32_t)(g * GRANULE), (uint32_t)length);
          l->stats.requested_bytes += length;
        }
      }
    }
  }
}

/* Sends the last message, waiting a little for room in the socket. */
static bool say_resident(lazy_t *l) {
  queue_message(l, RESIDENT, 0);
  for (int waited = 0; l->out_len > 0 && waited < 100; waited++) {
    if (!flush_out(l)) return false;
    if (l->out_len == 0) break;
    struct pollfd pfd = { .fd = l->channels[FAULT].fd, .events = POLLOUT };
    poll(&pfd, 1, 100);
  }
  return l->out_len == 0 || set_message(l, "page channel: the source does not read");
}

static bool serve(lazy_t *l) {
  channel_t *push = &l->channels[PUSH], *fault = &l->channels[FAULT];
  for (;;) {
    if (push->hello_done && fault->hello_done && l->missing_left == 0) return say_resident(l);
    struct pollfd fds[3] = {
      { .fd = l->uffd, .events = POLLIN },
      { .fd = fault->fd, .events = POLLIN | (l->out_len ? POLLOUT : 0) },
      { .fd = push->fd, .events = POLLIN },
    };
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return set_error(l, "poll", errno);
    }
    /* Faults and their answers first: the guest waits on those. */
    if ((fds[0].revents & POLLIN) && !handle_faults(l)) return false;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !read_channel(l, fault, INT32_MAX)) return false;
    if (l->out_len && !flush_out(l)) return false;
    if ((fds[2].revents & (POLLIN | POLLHUP | POLLERR)) && !read_channel(l, push, 1)) return false;
  }
}

static void lazy_free(lazy_t *l) {
  free(l->state);
  free(l->requested);
  free(l->requested_ns);
  free(l->channels[PUSH].staging);
  free(l->channels[FAULT].staging);
  free(l->out);
  free(l);
}

static void *lazy_thread(void *arg) {
  lazy_t *l = arg;
  bool ok = serve(l);
  lazy_result_t *result = calloc(1, sizeof *result);
  if (ok) {
    close(l->uffd); /* unregisters the memory: every page is in */
  }
  /* else: the userfaultfd stays open, so the guest stays blocked instead of reading zeros. */
  close(l->channels[PUSH].fd);
  close(l->channels[FAULT].fd);
  if (result) {
    l->stats.ms = (double)(now_ns() - l->started_ns) / 1e6;
    result->stats = l->stats;
    snprintf(result->error, sizeof result->error, "%s", ok ? "" : l->error);
    napi_call_threadsafe_function(l->on_end, result, napi_tsfn_blocking);
  }
  napi_release_threadsafe_function(l->on_end, napi_tsfn_release);
  lazy_free(l);
  return NULL;
}

static void set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value v;
  if (napi_create_double(env, value, &v) == napi_ok) napi_set_named_property(env, object, name, v);
}

static void call_on_end(napi_env env, napi_value callback, void *context, void *data) {
  lazy_result_t *result = data;
  if (env && callback) {
    napi_value error, stats, undefined, argv[2];
    napi_get_undefined(env, &undefined);
    if (result->error[0]) napi_create_string_utf8(env, result->error, NAPI_AUTO_LENGTH, &error);
    else napi_get_null(env, &error);
    napi_create_object(env, &stats);
    const stats_t *s = &result->stats;
    set_number(env, stats, "faults", (double)s->faults);
    set_number(env, stats, "requestedBytes", (double)s->requested_bytes);
    set_number(env, stats, "receivedBytes", (double)s->received_bytes);
    set_number(env, stats, "zeroBytes", (double)s->zero_bytes);
    set_number(env, stats, "duplicateBytes", (double)s->duplicate_bytes);
    set_number(env, stats, "faultWaitMsMean", s->served ? (double)s->wait_ns_total / (double)s->served / 1e6 : 0);
    set_number(env, stats, "faultWaitMsMax", (double)s->wait_ns_max / 1e6);
    set_number(env, stats, "ms", s->ms);
    argv[0] = error;
    argv[1] = stats;
    napi_call_function(env, undefined, callback, 2, argv, NULL);
  }
  free(result);
}

/* ----- probe: register a page in missing mode and resolve a fault on it for real ----- */

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static int probe_state; /* 0 not run, 1 ok, -1 failed */
static char probe_reason[384];

static bool open_missing_mode(failure_t *f, int *uffd_out) {
  int uffd = open_uffd(f, false);
  if (uffd < 0) return false;
  struct uffdio_api api = { .api = UFFD_API, .features = 0 };
  if (ioctl(uffd, UFFDIO_API, &api) != 0) {
    fail(f, "UFFDIO_API", errno);
    close(uffd);
    return false;
  }
  *uffd_out = uffd;
  return true;
}

static bool register_missing(int uffd, uintptr_t start, size_t len, failure_t *f) {
  struct uffdio_register reg = { .range = { .start = start, .len = len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
    fail(f, "UFFDIO_REGISTER (missing mode)", errno);
    return false;
  }
  const uint64_t needed = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) | (1ull << _UFFDIO_WAKE);
  if ((reg.ioctls & needed) != needed) {
    fail(f, "UFFDIO_REGISTER: this mapping does not support UFFDIO_COPY/ZEROPAGE", EOPNOTSUPP);
    return false;
  }
  return true;
}

static bool run_probe(failure_t *f) {
  const size_t page = host_page_size();
  int uffd;
  if (!open_missing_mode(f, &uffd)) return false;
  bool ok = false;
  uint8_t *mem = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint8_t *src = malloc(page);
  if (mem == MAP_FAILED || !src) {
    fail(f, "mmap", ENOMEM);
  } else if (register_missing(uffd, (uintptr_t)mem, page, f)) {
    memset(src, 0x5a, page);
    struct uffdio_copy c = { .dst = (uintptr_t)mem, .src = (uintptr_t)src, .len = page, .mode = 0 };
    if (ioctl(uffd, UFFDIO_COPY, &c) != 0) fail(f, "UFFDIO_COPY", errno);
    else if (mem[page - 1] != 0x5a) fail(f, "UFFDIO_COPY did not fill the page", EPROTO);
    else ok = true;
  }
  free(src);
  if (mem != MAP_FAILED) munmap(mem, page);
  close(uffd);
  return ok;
}

napi_value roam_probe_lazy_restore(napi_env env, napi_callback_info info) {
  pthread_mutex_lock(&probe_lock);
  if (probe_state == 0) {
    failure_t f = { "" };
    probe_state = run_probe(&f) ? 1 : -1;
    snprintf(probe_reason, sizeof probe_reason, "%s", f.text);
  }
  pthread_mutex_unlock(&probe_lock);
  napi_value result, ok, reason;
  napi_create_object(env, &result);
  napi_get_boolean(env, probe_state == 1, &ok);
  napi_set_named_property(env, result, "ok", ok);
  if (probe_state != 1) {
    napi_create_string_utf8(env, probe_reason, NAPI_AUTO_LENGTH, &reason);
    napi_set_named_property(env, result, "reason", reason);
  }
  return result;
}

static napi_value throw_lazy(napi_env env, const char *message) {
  char full[512];
  snprintf(full, sizeof full, "roam native lazy restore: %s", message);
  napi_throw_error(env, ERR_CODE, full);
  return NULL;
}

napi_value roam_lazy_restore(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) return throw_lazy(env, "lazyRestore(view, missing, pushFd, faultFd, ticket, onEnd): six arguments expected");
  napi_typedarray_type type, missing_type, ticket_type;
  size_t length, missing_count, ticket_len;
  void *data, *missing_data, *ticket_data;
  int32_t fds[2];
  napi_valuetype callback_type;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_get_typedarray_info(env, argv[1], &missing_type, &missing_count, &missing_data, NULL, NULL) != napi_ok || missing_type != napi_uint32_array ||
      napi_get_value_int32(env, argv[2], &fds[PUSH]) != napi_ok || napi_get_value_int32(env, argv[3], &fds[FAULT]) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &ticket_type, &ticket_len, &ticket_data, NULL, NULL) != napi_ok || ticket_type != napi_uint8_array ||
      napi_typeof(env, argv[5], &callback_type) != napi_ok || callback_type != napi_function) {
    return throw_lazy(env, "lazyRestore(view: Uint8Array, missing: Uint32Array, pushFd: number, faultFd: number, ticket: Uint8Array, onEnd: function) expected");
  }
  const size_t page = host_page_size();
  const uint32_t *missing = missing_data;
  if ((uintptr_t)data % page || length % GRANULE || missing_count % 2 || ticket_len > MAX_TICKET) return throw_lazy(env, "memory not page-aligned, odd missing list or ticket too long");
  for (size_t i = 0; i < missing_count; i += 2) {
    if (missing[i] >= missing[i + 1] || (size_t)missing[i + 1] * GRANULE > length || (i && missing[i] < missing[i - 1])) {
      return throw_lazy(env, "missing: expected increasing [first, end) granule ranges inside the memory");
    }
  }
  failure_t f = { "" };
  lazy_t *l = calloc(1, sizeof *l);
  if (!l) return throw_lazy(env, "out of memory");
  l->uffd = -1;
  l->channels[PUSH].fd = l->channels[FAULT].fd = -1;
  l->base = data;
  l->len = length;
  l->page = page;
  l->npages = length / page;
  size_t granules = (length + GRANULE - 1) / GRANULE;
  l->state = calloc(l->npages, 1);
  l->requested = calloc(granules, 1);
  l->requested_ns = calloc(granules, sizeof *l->requested_ns);
  l->channels[PUSH].staging = malloc(MAX_CHUNK);
  l->channels[FAULT].staging = malloc(GRANULE);
  l->out_cap = (granules + 1) * MESSAGE_BYTES;
  l->out = malloc(l->out_cap);
  l->ticket_len = ticket_len;
  memcpy(l->ticket, ticket_data, ticket_len);
  if (!l->state || !l->requested || !l->requested_ns || !l->channels[PUSH].staging || !l->channels[FAULT].staging || !l->out) {
    lazy_free(l);
    return throw_lazy(env, "out of memory");
  }
  for (size_t i = 0; i < missing_count; i += 2) {
    const size_t start = (size_t)missing[i] * GRANULE, pages = (size_t)(missing[i + 1] - missing[i]) * GRANULE / page;
    memset(l->state + start / page, PAGE_MISSING, pages);
    l->missing_left += pages;
  }
  if (!open_missing_mode(&f, &l->uffd)) goto failed;
  if (length && !register_missing(l->uffd, (uintptr_t)data, length, &f)) goto failed;
  /* Drop what this copy holds of the missing pages: the next touch of each faults to us. */
  for (size_t i = 0; i < missing_count; i += 2) {
    if (madvise(l->base + (size_t)missing[i] * GRANULE, (size_t)(missing[i + 1] - missing[i]) * GRANULE, MADV_DONTNEED) != 0) {
      fail(&f, "madvise(MADV_DONTNEED)", errno);
      goto failed;
    }
  }
  for (int i = PUSH; i <= FAULT; i++) {
    l->channels[i].fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (l->channels[i].fd < 0) {
      fail(&f, "dup a page channel socket", errno);
      goto failed;
    }
  }
  napi_value name;
  napi_create_string_utf8(env, "roam lazy restore", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, NULL, NULL, NULL, call_on_end, &l->on_end) != napi_ok) {
    fail(&f, "napi_create_threadsafe_function", EINVAL);
    goto failed;
  }
  l->started_ns = now_ns();
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int err = pthread_create(&thread, &attr, lazy_thread, l);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    napi_release_threadsafe_function(l->on_end, napi_tsfn_abort);
    fail(&f, "pthread_create", err);
    goto failed;
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
failed:
  if (l->uffd >= 0) close(l->uffd);
  if (l->channels[PUSH].fd >= 0) close(l->channels[PUSH].fd);
  if (l->channels[FAULT].fd >= 0) close(l->channels[FAULT].fd);
  lazy_free(l);
  return throw_lazy(env, f.text);
}

#else /* not Linux */

napi_value roam_probe_lazy_restore(napi_env env, napi_callback_info info) {
  napi_value result, ok, reason;
  napi_create_object(env, &result);
  napi_get_boolean(env, false, &ok);
  napi_set_named_property(env, result, "ok", ok);
  napi_create_string_utf8(env, "userfaultfd is Linux-only", NAPI_AUTO_LENGTH, &reason);
  napi_set_named_property(env, result, "reason", reason);
  return result;
}

napi_value roam_lazy_restore(napi_env env, napi_callback_info info) {
  napi_throw_error(env, ERR_CODE, "roam native lazy restore: userfaultfd is Linux-only");
  return NULL;
}

#endif

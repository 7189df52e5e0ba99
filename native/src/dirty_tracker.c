/*
 * roam_native: exact dirty-page tracking of a Wasm linear memory (N-API, C, NAPI_VERSION 8).
 *
 * The memory is registered with a userfaultfd in write-protect mode with UFFD_FEATURE_WP_ASYNC
 * (Linux >= 6.7): the first write to a protected page is resolved by the kernel itself (no fault
 * handler thread, the writer never blocks) and leaves the page's PTE without its uffd-wp bit.
 * PAGEMAP_SCAN on /proc/self/pagemap then lists the pages with PAGE_IS_WRITTEN and, with
 * PM_SCAN_WP_MATCHING, write-protects them again in the same walk, atomically per page: a write
 * racing with the scan is either reported now or by the next scan, never lost.
 * UFFD_FEATURE_WP_UNPOPULATED makes UFFDIO_WRITEPROTECT put markers on pages never touched yet,
 * so that writes to them count too; for anonymous memory the kernel also needs it to allow async
 * write-protection at all (PM_SCAN_CHECK_WPASYNC fails with EPERM without it).
 *
 * JS API:
 *   pageSize: number                       host page size, the unit of collectWritten()
 *   probe() -> { ok, reason? }             whether this works here (tried for real once, cached)
 *   track(view: Uint8Array) -> handle      starts tracking [view, view + length)
 *   extend(handle, view)                   memory grew (same base address): track the new part
 *   collectWritten(handle) -> Uint32Array  [start, end) page-index pairs written since the last
 *                                          collect (or since track/extend), re-protected
 *   untrack(handle)                        stops tracking, closes the file descriptors
 * Errors are thrown as JS Errors, code ERR_ROAM_NATIVE ("<step>: <strerror> (errno N)"), and
 * ERR_ROAM_MEMORY_MOVED when extend() sees another base address.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "populate.h"
#include "postcopy.h"
#include "uffd.h"

#if defined(__linux__)
#define ROAM_HAVE_UFFD 1
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

/*
 * Definitions newer than the build machine's kernel headers (Debian 12 ships 6.1's), copied from
 * the Linux uapi headers include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h. Whether the
 * running kernel has them is decided at run time.
 */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFDIO_REGISTER_MODE_WP
#define UFFDIO_REGISTER_MODE_WP ((__u64)1 << 1)
#endif
#ifndef _UFFDIO_WRITEPROTECT
#define _UFFDIO_WRITEPROTECT (0x06)
#endif
#ifndef UFFDIO_WRITEPROTECT
struct uffdio_writeprotect {
  struct uffdio_range range;
  __u64 mode;
};
#define UFFDIO_WRITEPROTECT _IOWR(UFFDIO, _UFFDIO_WRITEPROTECT, struct uffdio_writeprotect)
#endif
#ifndef UFFDIO_WRITEPROTECT_MODE_WP
#define UFFDIO_WRITEPROTECT_MODE_WP ((__u64)1 << 0)
#endif

#ifndef PAGEMAP_SCAN
struct page_region {
  __u64 start;
  __u64 end; /* exclusive */
  __u64 categories;
};
struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
#ifndef PAGE_IS_WPALLOWED
#define PAGE_IS_WPALLOWED (1 << 0)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN (1 << 1)
#endif
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING (1 << 0)
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif
#endif /* __linux__ */

#define ERR_CODE "ERR_ROAM_NATIVE"
#define MOVED_CODE "ERR_ROAM_MEMORY_MOVED"
/* page_region entries per PAGEMAP_SCAN call; more are fetched by looping from walk_end. */
#define SCAN_VEC_LEN 4096

/* ---------------------------------------------------------------------------------------------
 * Errors
 */

static napi_value throw_errno(napi_env env, const char *step, int err) {
  char detail[384], message[448];
  describe(detail, sizeof detail, step, err);
  snprintf(message, sizeof message, "roam native dirty tracking: %s", detail);
  napi_throw_error(env, ERR_CODE, message);
  return NULL;
}

static napi_value throw_message(napi_env env, const char *code, const char *message) {
  char full[512];
  snprintf(full, sizeof full, "roam native dirty tracking: %s", message);
  napi_throw_error(env, code, full);
  return NULL;
}

static void throw_napi_failure(napi_env env, const char *call) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  const char *text = info && info->error_message ? info->error_message : "unknown N-API error";
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  char message[512];
  snprintf(message, sizeof message, "roam native: %s failed: %s", call, text);
  napi_throw_error(env, ERR_CODE, message);
}

#define NAPI_CALL(env, call)                   \
  do {                                         \
    if ((call) != napi_ok) {                   \
      throw_napi_failure((env), #call);        \
      return NULL;                             \
    }                                          \
  } while (0)

/* ---------------------------------------------------------------------------------------------
 * Kernel side (Linux)
 */

#ifdef ROAM_HAVE_UFFD

/* UFFDIO_API handshake asking for asynchronous write-protection. */
static bool init_uffd_api(int uffd, failure_t *f) {
  struct uffdio_api api;
  memset(&api, 0, sizeof api);
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
  if (ioctl(uffd, UFFDIO_API, &api) != 0) {
    int err = errno;
    fail(f, err == EINVAL ? "UFFDIO_API with UFFD_FEATURE_WP_ASYNC|WP_UNPOPULATED (kernel older than 6.7?)"
                          : "UFFDIO_API",
         err);
    return false;
  }
  const __u64 wanted = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
  if ((api.features & wanted) != wanted) {
    fail(f, "UFFDIO_API: kernel does not grant UFFD_FEATURE_WP_ASYNC|WP_UNPOPULATED", EOPNOTSUPP);
    return false;
  }
  if (!(api.ioctls & ((__u64)1 << _UFFDIO_REGISTER))) {
    fail(f, "UFFDIO_API: no UFFDIO_REGISTER", EOPNOTSUPP);
    return false;
  }
  return true;
}

static void unregister_range(int uffd, uintptr_t start, size_t len) {
  struct uffdio_range range = { .start = start, .len = len };
  ioctl(uffd, UFFDIO_UNREGISTER, &range);
}

/* Registers [start, start + len) for write-protect tracking and write-protects it. */
static bool protect_range(int uffd, uintptr_t start, size_t len, failure_t *f) {
  struct uffdio_register reg;
  memset(&reg, 0, sizeof reg);
  reg.range.start = start;
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
    fail(f, "UFFDIO_REGISTER (write-protect mode)", errno);
    return false;
  }
  if (!(reg.ioctls & ((__u64)1 << _UFFDIO_WRITEPROTECT))) {
    unregister_range(uffd, start, len);
    fail(f, "UFFDIO_REGISTER: this mapping does not support UFFDIO_WRITEPROTECT", EOPNOTSUPP);
    return false;
  }
  struct uffdio_writeprotect wp;
  memset(&wp, 0, sizeof wp);
  wp.range.start = start;
  wp.range.len = len;
  wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
  if (ioctl_retrying(uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
    int err = errno;
    unregister_range(uffd, start, len);
    fail(f, "UFFDIO_WRITEPROTECT", err);
    return false;
  }
  return true;
}

/* Growable list of [start, end) page-index pairs. */
typedef struct {
  uint32_t *data;
  size_t len; /* uint32 entries, two per range */
  size_t cap;
} pairs_t;

static bool pairs_add(pairs_t *p, uint64_t start, uint64_t end) {
  if (p->len >= 2 && p->data[p->len - 1] == start) { /* adjacent to the previous range */
    p->data[p->len - 1] = (uint32_t)end;
    return true;
  }
  if (p->len + 2 > p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 256;
    uint32_t *grown = realloc(p->data, cap * sizeof *grown);
    if (!grown) return false;
    p->data = grown;
    p->cap = cap;
  }
  p->data[p->len++] = (uint32_t)start;
  p->data[p->len++] = (uint32_t)end;
  return true;
}

/*
 * Lists the pages of [base, base + len) written since they were last protected, and protects
 * them again, appending [start, end) page indices (relative to base) to out. Loops when the
 * output vector fills up.
 */
static bool collect_written(int pagemap, uintptr_t base, size_t len, struct page_region *vec, size_t vec_len,
                            pairs_t *out, failure_t *f) {
  const uint64_t page = host_page_size();
  struct pm_scan_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.size = sizeof arg;
  arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  arg.start = base;
  arg.end = base + len;
  arg.vec = (uintptr_t)vec;
  arg.vec_len = vec_len;
  arg.category_mask = PAGE_IS_WRITTEN;
  arg.return_mask = PAGE_IS_WRITTEN;
  while (arg.start < arg.end) {
    long n = ioctl(pagemap, PAGEMAP_SCAN, &arg);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(f, errno == EPERM ? "PAGEMAP_SCAN (memory not under async write-protection)" : "PAGEMAP_SCAN", errno);
      return false;
    }
    for (long i = 0; i < n; i++) {
      if (vec[i].start < base || vec[i].end > base + len || vec[i].start >= vec[i].end) continue;
      if (!pairs_add(out, (vec[i].start - base) / page, (vec[i].end - base + page - 1) / page)) {
        fail(f, "collectWritten: out of memory", ENOMEM);
        return false;
      }
    }
    /*
     * Fewer regions than room for them: the walk reached arg.end. (walk_end is not a reliable sign
     * of that: the kernel only sets it when its internal buffer fills, and leaves it there when the
     * walk then goes on to the end.) A full vector: go on after the last region reported, or where
     * the walk stopped if that is further (the pages in between were walked, not written).
     */
    if ((size_t)n < vec_len) break;
    __u64 resume = vec[n - 1].end > arg.walk_end ? vec[n - 1].end : arg.walk_end;
    if (resume <= arg.start) { /* no progress: should not happen */
      fail(f, "PAGEMAP_SCAN made no progress", EIO);
      return false;
    }
    arg.start = resume;
  }
  return true;
}

/* ----- probe ----- */

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static int probe_state; /* 0 not run, 1 ok, -1 failed */
static char probe_reason[384];

static bool expect_pairs(const pairs_t *p, const uint32_t *expected, size_t count) {
  if (p->len != count) return false;
  for (size_t i = 0; i < count; i++)
    if (p->data[i] != expected[i]) return false;
  return true;
}

static bool run_probe(failure_t *f) {
  const size_t page = host_page_size();
  const size_t len = 16 * page;
  bool ok = false;
  int pagemap = -1;
  char *mem = MAP_FAILED;
  pairs_t pairs = { 0 };
  struct page_region vec[8];

  int uffd = open_uffd(f, true);
  if (uffd < 0) return false;
  if (!init_uffd_api(uffd, f)) goto out;
  pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) {
    fail(f, "open /proc/self/pagemap", errno);
    goto out;
  }
  mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    fail(f, "mmap", errno);
    goto out;
  }
  mem[0] = 1; /* one page populated before tracking starts, the others not */
  if (!protect_range(uffd, (uintptr_t)mem, len, f)) goto out;
  /* Nothing written yet; this also checks, before writing, that the write-protection is the
   * asynchronous kind (PM_SCAN_CHECK_WPASYNC): a synchronous one would block the writer. */
  if (!collect_written(pagemap, (uintptr_t)mem, len, vec, 8, &pairs, f)) goto unregister;
  if (pairs.len != 0) {
    fail(f, "PAGEMAP_SCAN reported pages written before any write", EPROTO);
    goto unregister;
  }
  ((volatile char *)mem)[0] = 2;
  ((volatile char *)mem)[5 * page + 7] = 3;
  ((volatile char *)mem)[6 * page] = 4;
  if (!collect_written(pagemap, (uintptr_t)mem, len, vec, 1, &pairs, f)) goto unregister;
  static const uint32_t expected[] = { 0, 1, 5, 7 };
  if (!expect_pairs(&pairs, expected, 4)) {
    fail(f, "PAGEMAP_SCAN did not report exactly the pages written", EPROTO);
    goto unregister;
  }
  pairs.len = 0;
  if (!collect_written(pagemap, (uintptr_t)mem, len, vec, 8, &pairs, f)) goto unregister;
  if (pairs.len != 0) {
    fail(f, "PAGEMAP_SCAN with PM_SCAN_WP_MATCHING did not re-protect the pages", EPROTO);
    goto unregister;
  }
  ok = true;
unregister:
  unregister_range(uffd, (uintptr_t)mem, len);
out:
  free(pairs.data);
  if (mem != MAP_FAILED) munmap(mem, len);
  if (pagemap >= 0) close(pagemap);
  close(uffd);
  return ok;
}

static bool probe_cached(const char **reason) {
  pthread_mutex_lock(&probe_lock);
  if (probe_state == 0) {
    failure_t f = { "" };
    bool ok = run_probe(&f);
    probe_state = ok ? 1 : -1;
    snprintf(probe_reason, sizeof probe_reason, "%s", ok ? "" : f.text);
  }
  bool ok = probe_state == 1;
  pthread_mutex_unlock(&probe_lock);
  *reason = probe_reason;
  return ok;
}

#endif /* ROAM_HAVE_UFFD */

/* ---------------------------------------------------------------------------------------------
 * Tracker handles
 */

#define TRACKER_MAGIC 0x526f616d44697274ULL /* "RoamDirt" */

typedef struct {
  uint64_t magic;
  int uffd;
  int pagemap;
  uintptr_t base;
  size_t length; /* bytes registered and write-protected */
  bool open;
  struct page_region *vec;
} tracker_t;

static void tracker_release(tracker_t *t) {
  if (!t->open) return;
  t->open = false;
#ifdef ROAM_HAVE_UFFD
  if (t->length > 0) unregister_range(t->uffd, t->base, t->length);
  if (t->uffd >= 0) close(t->uffd);
  if (t->pagemap >= 0) close(t->pagemap);
#endif
  t->uffd = t->pagemap = -1;
  free(t->vec);
  t->vec = NULL;
}

static void tracker_finalize(napi_env env, void *data, void *hint) {
  tracker_t *t = data;
  tracker_release(t);
  t->magic = 0;
  free(t);
}

/* The tracker behind a handle from track(), or NULL with a TypeError/Error thrown. */
static tracker_t *get_tracker(napi_env env, napi_value value, bool must_be_open) {
  napi_valuetype type;
  void *data = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, value, &data) != napi_ok || !data ||
      ((tracker_t *)data)->magic != TRACKER_MAGIC) {
    napi_throw_type_error(env, ERR_CODE, "roam native dirty tracking: expected a handle returned by track()");
    return NULL;
  }
  tracker_t *t = data;
  if (must_be_open && !t->open) {
    throw_message(env, ERR_CODE, "the handle was untracked");
    return NULL;
  }
  return t;
}

/* The bytes of a Uint8Array (SharedArrayBuffer-backed ones too), or false with a TypeError thrown. */
static bool get_u8_view(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *ptr = NULL;
  size_t len = 0;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, &len, &ptr, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, ERR_CODE, "roam native dirty tracking: expected a Uint8Array view of the memory");
    return false;
  }
  *data = ptr;
  *length = len;
  return true;
}

static napi_value undefined_value(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

#ifdef ROAM_HAVE_UFFD
static bool check_aligned(napi_env env, const char *what, uintptr_t base, size_t len) {
  const size_t page = host_page_size();
  if (base % page != 0 || len % page != 0) {
    char message[256];
    snprintf(message, sizeof message, "%s: the view must start and end on a %zu-byte page boundary", what, page);
    throw_message(env, ERR_CODE, message);
    return false;
  }
  return true;
}
#endif

/* ---------------------------------------------------------------------------------------------
 * JS functions
 */

static napi_value js_probe(napi_env env, napi_callback_info info) {
  napi_value result, ok_value, reason_value;
  bool ok;
  const char *reason;
#ifdef ROAM_HAVE_UFFD
  ok = probe_cached(&reason);
#else
  ok = false;
  reason = "userfaultfd write-protect tracking needs Linux";
#endif
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_get_boolean(env, ok, &ok_value));
  NAPI_CALL(env, napi_set_named_property(env, result, "ok", ok_value));
  if (!ok) {
    NAPI_CALL(env, napi_create_string_utf8(env, reason, NAPI_AUTO_LENGTH, &reason_value));
    NAPI_CALL(env, napi_set_named_property(env, result, "reason", reason_value));
  }
  return result;
}

static napi_value js_track(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *data;
  size_t length;
  if (!get_u8_view(env, argc >= 1 ? argv[0] : undefined_value(env), &data, &length)) return NULL;
#ifdef ROAM_HAVE_UFFD
  if (length > 0 && !check_aligned(env, "track", (uintptr_t)data, length)) return NULL;
  if ((uint64_t)length / host_page_size() > UINT32_MAX) return throw_message(env, ERR_CODE, "track: memory too large");
  failure_t f = { "" };
  tracker_t *t = calloc(1, sizeof *t);
  if (!t) return throw_errno(env, "track: calloc", ENOMEM);
  t->magic = TRACKER_MAGIC;
  t->uffd = t->pagemap = -1;
  t->vec = calloc(SCAN_VEC_LEN, sizeof *t->vec);
  if (!t->vec) {
    free(t);
    return throw_errno(env, "track: calloc", ENOMEM);
  }
  t->open = true;
  t->uffd = open_uffd(&f, true);
  if (t->uffd < 0 || !init_uffd_api(t->uffd, &f)) goto failed;
  t->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (t->pagemap < 0) {
    fail(&f, "open /proc/self/pagemap", errno);
    goto failed;
  }
  t->base = (uintptr_t)data;
  if (length > 0) {
    if (!protect_range(t->uffd, t->base, length, &f)) goto failed;
    t->length = length;
  }
  napi_value handle;
  if (napi_create_external(env, t, tracker_finalize, NULL, &handle) != napi_ok) {
    tracker_release(t);
    free(t);
    throw_napi_failure(env, "napi_create_external");
    return NULL;
  }
  return handle;
failed:
  tracker_release(t);
  free(t);
  return throw_message(env, ERR_CODE, f.text);
#else
  return throw_message(env, ERR_CODE, "userfaultfd write-protect tracking needs Linux");
#endif
}

static napi_value js_extend(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_message(env, ERR_CODE, "extend(handle, view): two arguments expected");
  tracker_t *t = get_tracker(env, argv[0], true);
  if (!t) return NULL;
  uint8_t *data;
  size_t length;
  if (!get_u8_view(env, argv[1], &data, &length)) return NULL;
#ifdef ROAM_HAVE_UFFD
  if (length == 0) return undefined_value(env);
  if (!check_aligned(env, "extend", (uintptr_t)data, length)) return NULL;
  if (t->length > 0 && (uintptr_t)data != t->base) {
    char message[256];
    snprintf(message, sizeof message, "extend: the memory moved from %p to %p; track it again", (void *)t->base,
             (void *)data);
    return throw_message(env, MOVED_CODE, message);
  }
  if (length < t->length) return throw_message(env, ERR_CODE, "extend: the view is shorter than the tracked memory");
  if (length == t->length) return undefined_value(env);
  if ((uint64_t)length / host_page_size() > UINT32_MAX) return throw_message(env, ERR_CODE, "extend: memory too large");
  failure_t f = { "" };
  uintptr_t base = (uintptr_t)data;
  if (!protect_range(t->uffd, base + t->length, length - t->length, &f)) return throw_message(env, ERR_CODE, f.text);
  t->base = base;
  t->length = length;
  return undefined_value(env);
#else
  return throw_message(env, ERR_CODE, "userfaultfd write-protect tracking needs Linux");
#endif
}

static napi_value js_collect_written(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tracker_t *t = get_tracker(env, argc >= 1 ? argv[0] : undefined_value(env), true);
  if (!t) return NULL;
  pairs_t pairs = { 0 };
#ifdef ROAM_HAVE_UFFD
  if (t->length > 0) {
    failure_t f = { "" };
    if (!collect_written(t->pagemap, t->base, t->length, t->vec, SCAN_VEC_LEN, &pairs, &f)) {
      free(pairs.data);
      return throw_message(env, ERR_CODE, f.text);
    }
  }
#endif
  napi_value buffer, array;
  void *bytes = NULL;
  if (napi_create_arraybuffer(env, pairs.len * sizeof(uint32_t), &bytes, &buffer) != napi_ok) {
    free(pairs.data);
    throw_napi_failure(env, "napi_create_arraybuffer");
    return NULL;
  }
  if (pairs.len) memcpy(bytes, pairs.data, pairs.len * sizeof(uint32_t));
  free(pairs.data);
  NAPI_CALL(env, napi_create_typedarray(env, napi_uint32_array, pairs.len, buffer, 0, &array));
  return array;
}

static napi_value js_untrack(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tracker_t *t = get_tracker(env, argc >= 1 ? argv[0] : undefined_value(env), false);
  if (!t) return NULL;
  tracker_release(t);
  return undefined_value(env);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "probe", NULL, js_probe, NULL, NULL, NULL, napi_enumerable, NULL },
    { "track", NULL, js_track, NULL, NULL, NULL, napi_enumerable, NULL },
    { "extend", NULL, js_extend, NULL, NULL, NULL, napi_enumerable, NULL },
    { "collectWritten", NULL, js_collect_written, NULL, NULL, NULL, napi_enumerable, NULL },
    { "untrack", NULL, js_untrack, NULL, NULL, NULL, napi_enumerable, NULL },
    { "populate", NULL, roam_populate, NULL, NULL, NULL, napi_enumerable, NULL },
    { "lazyRestore", NULL, roam_lazy_restore, NULL, NULL, NULL, napi_enumerable, NULL },
    { "probeLazyRestore", NULL, roam_probe_lazy_restore, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  napi_value page_size;
#ifdef ROAM_HAVE_UFFD
  NAPI_CALL(env, napi_create_uint32(env, (uint32_t)host_page_size(), &page_size));
#else
  NAPI_CALL(env, napi_create_uint32(env, 4096, &page_size));
#endif
  NAPI_CALL(env, napi_set_named_property(env, exports, "pageSize", page_size));
  return exports;
}

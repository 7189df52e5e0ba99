/* Lists: a growable ring buffer of strings, O(1) push/pop at both ends and O(1) indexing. */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

kvlist *list_new(void) {
  kvlist *l = xmalloc(sizeof *l);
  l->items = NULL;
  l->cap = l->head = l->len = 0;
  return l;
}

void list_free(kvlist *l) {
  if (!l) return;
  for (size_t i = 0; i < l->len; i++) free(list_at(l, i));
  free(l->items);
  free(l);
}

/* Copies the elements, in order, to a new array of cap slots. */
static void list_resize(kvlist *l, size_t cap) {
  if (cap > SIZE_MAX / sizeof(kvstr *)) oom();
  kvstr **items = xmalloc(cap * sizeof(kvstr *));
  for (size_t i = 0; i < l->len; i++) items[i] = list_at(l, i);
  free(l->items);
  l->items = items;
  l->cap = cap;
  l->head = 0;
}

void list_push(kvlist *l, kvstr *s, bool front) {
  if (l->len == l->cap) list_resize(l, l->cap ? l->cap * 2 : 4);
  if (front) {
    l->head = (l->head + l->cap - 1) & (l->cap - 1);
    l->items[l->head] = s;
  } else {
    l->items[(l->head + l->len) & (l->cap - 1)] = s;
  }
  l->len++;
}

kvstr *list_pop(kvlist *l, bool front) {
  if (l->len == 0) return NULL;
  kvstr *s;
  if (front) {
    s = l->items[l->head];
    l->head = (l->head + 1) & (l->cap - 1);
  } else {
    s = l->items[(l->head + l->len - 1) & (l->cap - 1)];
  }
  l->len--;
  if (l->cap > 16 && l->len < l->cap / 4) list_resize(l, l->cap / 2);
  return s;
}

kvstr *list_at(const kvlist *l, size_t i) { return l->items[(l->head + i) & (l->cap - 1)]; }

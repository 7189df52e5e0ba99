/*
 * Runtime for LLVM's Emscripten-style setjmp/longjmp lowering (LLVM 14 ABI).
 *
 * After every invoke_* call the lowered code reads __THREW__ (the jmp_buf a longjmp targets,
 * 0 if none) and __threwValue, and asks testSetjmp whether that jmp_buf belongs to one of
 * this frame's setjmp calls. The host's invoke_* wrapper catches the longjmp and restores the
 * shadow stack pointer that the skipped frames never popped.
 */
#include <stdint.h>
#include <stdlib.h>

uintptr_t __THREW__ = 0;
int __threwValue = 0;
static int32_t temp_ret0;
static uintptr_t next_setjmp_id;

void setTempRet0(int32_t value) { temp_ret0 = value; }
int32_t getTempRet0(void) { return temp_ret0; }

__attribute__((export_name("roam_set_threw")))
void roam_set_threw(uintptr_t threw, int value) {
  /* The first thrower wins: the host wrapper calls this again with (1, 0) after catching. */
  if (__THREW__ == 0) {
    __THREW__ = threw;
    __threwValue = value;
  }
}

__attribute__((import_module("roam"), import_name("throw_longjmp"), noreturn))
void roam_throw_longjmp(void);

void emscripten_longjmp(uintptr_t env, int value) {
  roam_set_threw(env, value ? value : 1);
  roam_throw_longjmp();
}

typedef struct {
  uintptr_t id;
  uint32_t label;
} setjmp_entry;

/* Records that this frame's setjmp `label` owns `env`; the table is per frame, 0-terminated. */
setjmp_entry *saveSetjmp(uintptr_t *env, uint32_t label, setjmp_entry *table, uint32_t size) {
  uintptr_t id = ++next_setjmp_id;
  *env = id;
  for (uint32_t i = 0; i < size; i++) {
    if (table[i].id == 0) {
      table[i].id = id;
      table[i].label = label;
      table[i + 1].id = 0;
      setTempRet0(size);
      return table;
    }
  }
  size *= 2;
  table = realloc(table, sizeof(setjmp_entry) * (size + 1));
  if (!table) abort();
  /* The id taken above is released: the recursive call assigns a fresh one. */
  next_setjmp_id--;
  table = saveSetjmp(env, label, table, size);
  setTempRet0(size);
  return table;
}

uint32_t testSetjmp(uintptr_t id, setjmp_entry *table, uint32_t size) {
  for (uint32_t i = 0; i < size && table[i].id != 0; i++) {
    if (table[i].id == id) return table[i].label;
  }
  return 0;
}

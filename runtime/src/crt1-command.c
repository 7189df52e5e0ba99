/*
 * _start for commands built by `roam cc` (linked with -nostartfiles instead of wasi-libc 2022's
 * crt1-command.o). That _start never names __wasm_call_ctors, so wasm-ld wraps EVERY exported
 * function (roam_stack_save, roam_set_threw...) in constructor/destructor calls, and each
 * setjmp-protected call through the host's invoke_* would re-run them. Calling the constructors
 * here, as newer wasi-libc does, makes wasm-ld leave the other exports alone. Unlike newer
 * wasi-libc there is no "already started" trap: Asyncify re-enters _start to rewind the stack.
 */
#include <stdlib.h>

extern void __wasm_call_ctors(void);
extern void __wasm_call_dtors(void);
extern int __original_main(void);

__attribute__((export_name("_start")))
void _start(void) {
  __wasm_call_ctors();
  int status = __original_main();
  __wasm_call_dtors();
  if (status != 0) exit(status);
}

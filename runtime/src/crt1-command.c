/*
 * _start for commands built by `roam cc` (linked with -nostartfiles instead of wasi-libc 2022's
 * crt1-command.o). That _start never names __wasm_call_ctors, so wasm-ld wraps EVERY exported
 * function (roam_stack_save, roam_set_threw...) in constructor/destructor calls, and each
 * setjmp-protected call through the host's invoke_* would re-run them. Calling the constructors
 * here, as newer wasi-libc does, makes wasm-ld leave the other exports alone. Unlike newer
 * wasi-libc there is no "already started" trap: Asyncify re-enters _start to rewind the stack
 * (and skips what already ran, the working directory included).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void __wasm_call_ctors(void);
extern void __wasm_call_dtors(void);
extern int __original_main(void);

/*
 * wasi-libc starts every program in "/" and resolves relative paths against its own working
 * directory. A runner that preopens the host's "/" (bin/roam-exec, which runs a module the way a
 * native program runs, e.g. a helper a build has just compiled) names the caller's working
 * directory in ROAM_CWD: the program starts there, and does not see the variable. A constructor
 * of the first user priority: after wasi-libc's (the preopens are found in one), before the
 * program's own.
 */
__attribute__((constructor(101)))
static void enter_working_directory(void) {
  const char *dir = getenv("ROAM_CWD");
  if (dir == NULL) return;
  if (chdir(dir) != 0) {
    /* write(), not stdio: a program that prints nothing should not link printf for this. */
    static const char before[] = "roam: cannot start in ", after[] = ": the working directory is /\n";
    write(2, before, sizeof before - 1);
    write(2, dir, strlen(dir));
    write(2, after, sizeof after - 1);
  }
  unsetenv("ROAM_CWD");
}

__attribute__((export_name("_start")))
void _start(void) {
  __wasm_call_ctors();
  int status = __original_main();
  __wasm_call_dtors();
  if (status != 0) exit(status);
}

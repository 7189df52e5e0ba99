/*
 * setjmp/longjmp for wasm32-wasi modules built by `roam cc`.
 *
 * wasi-libc (2022) has no setjmp.h. `roam cc` compiles with LLVM's Emscripten-style SjLj
 * lowering (-mllvm -enable-emscripten-sjlj): calls made by a function that calls setjmp go
 * through `invoke_*` host imports, and longjmp throws in the host. Unlike Wasm exception
 * handling this stays compatible with Asyncify, so such stacks can still be captured.
 */
#ifndef _ROAM_SETJMP_H
#define _ROAM_SETJMP_H

#ifdef __cplusplus
extern "C" {
#endif

/* LLVM's lowering stores a single id in the first word; the rest is headroom. */
typedef unsigned long jmp_buf[8];
typedef unsigned long sigjmp_buf[8];

int setjmp(jmp_buf env) __attribute__((returns_twice));
void longjmp(jmp_buf env, int val) __attribute__((noreturn));

#define _setjmp(env) setjmp(env)
#define _longjmp(env, val) longjmp(env, val)
#define sigsetjmp(env, savemask) setjmp(env)
#define siglongjmp(env, val) longjmp(env, val)

#ifdef __cplusplus
}
#endif

#endif

/* kv: command line and startup. */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
  fputs("usage: kv [--port N] [--bind ADDR]\n"
        "A Redis-protocol (RESP2) key-value server.\n"
        "  --port N     TCP port to listen on (default 6379; 0 picks a free port)\n"
        "  --bind ADDR  address to listen on (default 127.0.0.1)\n"
        "If LISTEN_FDS=N is set (systemd socket activation), fds 3..3+N-1 are served instead;\n"
        "under WASI that is the only way: the host passes the listening sockets.\n",
        out);
}

int main(int argc, char **argv) {
  const char *bind_addr = "127.0.0.1";
  long long port = 6379;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--version") || !strcmp(a, "-v")) {
      printf("kv %s (redis protocol %s)\n", KV_VERSION, KV_REDIS_VERSION);
      return 0;
    } else if (!strcmp(a, "--port") && i + 1 < argc) {
      const char *v = argv[++i];
      if (!parse_ll(v, strlen(v), &port) || port < 0 || port > 65535) {
        fprintf(stderr, "kv: --port %s: expected a port number (0-65535)\n", v);
        return 1;
      }
    } else if (!strcmp(a, "--bind") && i + 1 < argc) {
      bind_addr = argv[++i];
    } else {
      fprintf(stderr, "kv: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 1;
    }
  }
  srv.executable = argc > 0 ? argv[0] : "kv";
  srv.start_mono = mono_ms();
  srv.now = srv.start_mono;
  db_init(&srv.db);
  commands_init();
  if (net_setup(bind_addr, (int)port) != 0) return 1;
  return net_serve();
}

/*
 * The guest of the OCI runtime's tests: prints its arguments, GREETING and the first line of
 * /data/in.txt (a bind mount, when there is one), then exits with the status argv[1] gives, or,
 * with `forever`, prints a tick a second until it is stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) printf("arg%d=%s\n", i, argv[i]);
  const char *greeting = getenv("GREETING");
  printf("GREETING=%s\n", greeting ? greeting : "(unset)");
  FILE *in = fopen("/data/in.txt", "r");
  char line[128];
  if (in && fgets(line, sizeof line, in)) printf("data: %s", line);
  fflush(stdout);
  if (argc > 1 && strcmp(argv[1], "forever") == 0) {
    for (int tick = 0;; tick++) {
      printf("tick %d\n", tick);
      fflush(stdout);
      sleep(1);
    }
  }
  return argc > 1 ? atoi(argv[1]) : 0;
}

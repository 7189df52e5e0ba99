/* Counts primes up to N by trial division, printing progress as it goes: a small program with
 * visible, checkable output for the migration demo. Usage: primes N [EVERY] */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  unsigned long n = argc > 1 ? strtoul(argv[1], 0, 10) : 3000000;
  unsigned long every = argc > 2 ? strtoul(argv[2], 0, 10) : 50000;
  unsigned long count = 0, last = 0;
  for (unsigned long i = 2; i <= n; i++) {
    int prime = 1;
    for (unsigned long d = 2; d * d <= i; d++)
      if (i % d == 0) { prime = 0; break; }
    if (!prime) continue;
    last = i;
    if (++count % every == 0) { printf("prime #%lu is %lu\n", count, i); fflush(stdout); }
  }
  printf("%lu primes up to %lu, the last is %lu\n", count, n, last);
  return 0;
}

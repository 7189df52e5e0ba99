/* wasi-libc's <arpa/inet.h> plus what runtime/posix/sockets.c defines and wasi-libc hides. */
#include_next <arpa/inet.h>

#ifndef ROAM_ARPA_INET_H
#define ROAM_ARPA_INET_H

#ifdef __cplusplus
extern "C" {
#endif

in_addr_t inet_addr(const char *);
in_addr_t inet_network(const char *);
char *inet_ntoa(struct in_addr);

#ifdef __cplusplus
}
#endif

#endif

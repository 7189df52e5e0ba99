/*
 * wasi-libc's <sys/ioctl.h> (FIONREAD, FIONBIO) plus the terminal requests programs probe, with
 * Linux's values. wasi-libc's ioctl() answers them with -1/EINVAL: a guest's stdio is not a
 * terminal it can query (docs/posix.md).
 */
#include_next <sys/ioctl.h>

#ifndef ROAM_SYS_IOCTL_H
#define ROAM_SYS_IOCTL_H

#ifndef TIOCGWINSZ
#define TCGETS 0x5401
#define TCSETS 0x5402
#define TIOCGWINSZ 0x5413
#define TIOCSWINSZ 0x5414

struct winsize {
  unsigned short ws_row;
  unsigned short ws_col;
  unsigned short ws_xpixel;
  unsigned short ws_ypixel;
};
#endif

#endif

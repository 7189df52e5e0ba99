/*
 * Time zones. WASI has no time zone database and wasi-libc's localtime is UTC: tzset() sets
 * tzname/timezone/daylight for UTC. TZ unset or naming UTC (UTC, UTC0, GMT, :UTC...) is exactly
 * that; any other TZ is reported once, because local times will still be UTC. timegm and
 * strptime come from wasi-libc.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include "posix.h"

ROAM_WEAK char *tzname[2] = {"UTC", "UTC"};
ROAM_WEAK long timezone = 0;
ROAM_WEAK int daylight = 0;

static int namesUtc(const char *tz) {
  if (*tz == ':') tz++;
  static const char *const utc[] = {"", "UTC", "UTC0", "GMT", "GMT0", "UTC+0", "UTC-0", "GMT+0", "GMT-0",
                                    "Etc/UTC", "Etc/GMT", "UCT", "Zulu", "Universal"};
  for (size_t i = 0; i < sizeof utc / sizeof utc[0]; i++)
    if (strcmp(tz, utc[i]) == 0) return 1;
  return 0;
}

ROAM_WEAK void tzset(void) {
  const char *tz = getenv("TZ");
  if (tz && !namesUtc(tz))
    roam_notice("tzset", "cannot apply TZ: WebAssembly (WASI) has no time zone database; local time stays UTC");
  tzname[0] = tzname[1] = "UTC";
  timezone = 0;
  daylight = 0;
}

/*
 * wasi-libc's gettimeofday leaves the obsolete timezone argument untouched, and programs that
 * still read it (Redis's log dates) get garbage: it is UTC, as everything here.
 */
ROAM_WEAK int gettimeofday(struct timeval *__restrict tv, void *__restrict tz) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (tv) {
    tv->tv_sec = now.tv_sec;
    tv->tv_usec = (suseconds_t)(now.tv_nsec / 1000);
  }
  if (tz) memset(tz, 0, 2 * sizeof(int)); /* struct timezone: minutes west of UTC, DST kind */
  return 0;
}

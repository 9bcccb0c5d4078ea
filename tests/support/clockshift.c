/* A process whose wall clock is off: LD_PRELOAD this library with CLOCKSHIFT_S=-300 and every
 * wall-clock read of the process (and the processes it forks) is 300 s behind the truth, as on a
 * host whose clock was stepped. Monotonic clocks, and so every sleep and timeout, stay true.
 * Built by tests/faults/test_clock.py with the system C compiler. (libfaketime, the usual tool,
 * shifts the absolute deadline of Python 3.11's monotonic sleeps as well: EINVAL, or a hang.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static long shift_s;

__attribute__((constructor)) static void init(void) {
    const char *value = getenv("CLOCKSHIFT_S");
    shift_s = value ? atol(value) : 0;
    real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    if (!real_clock_gettime) init();
    int rc = real_clock_gettime(clock, ts);
    if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE || clock == CLOCK_TAI))
        ts->tv_sec += shift_s;
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

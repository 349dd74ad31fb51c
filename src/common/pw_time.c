/* pw_time: owns clocks (wall and monotonic) and the platform's timestamp
 * format: strict RFC 3339 parsing and millisecond UTC formatting. */
#include "pw_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t pw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pw_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads exactly n digits at *p; advances *p. */
static int pw_time_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) {
            return -1;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* Fixed-width date-time part "YYYY-MM-DDTHH:MM:SS" (T/t or space not allowed:
 * RFC 3339 section 5.6 requires T, case-insensitive). strptime accepts
 * variable-width fields, so the layout is checked first, then strptime fills tm. */
static int pw_time_parse_datetime(const char *s, struct tm *tm)
{
    static const char layout[] = "dddd-dd-ddTdd:dd:dd";
    char buf[sizeof layout];
    for (size_t i = 0; i < sizeof layout - 1; i++) {
        char c = s[i];
        if (layout[i] == 'd') {
            if (!isdigit((unsigned char)c)) {
                return -1;
            }
        } else if (layout[i] == 'T') {
            if (c != 'T' && c != 't') {
                return -1;
            }
            c = 'T';
        } else if (c != layout[i]) {
            return -1;
        }
        buf[i] = c;
    }
    buf[sizeof layout - 1] = '\0';
    memset(tm, 0, sizeof *tm);
    const char *end = strptime(buf, "%Y-%m-%dT%H:%M:%S", tm);
    if (end == NULL || *end != '\0') {
        return -1;
    }
    return 0;
}

int pw_time_parse_rfc3339(const char *s, int64_t *out_ms)
{
    if (s == NULL || strlen(s) < 20) {
        return -1;
    }
    struct tm tm;
    if (pw_time_parse_datetime(s, &tm) != 0) {
        return -1;
    }
    const struct tm want = tm;
    /* Leap second 60 is representable in RFC 3339 but not in epoch time. */
    if (want.tm_sec > 59 || want.tm_hour > 23 || want.tm_min > 59) {
        return -1;
    }
    const char *p = s + 19;

    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            return -1;
        }
        int ndig = 0;
        while (isdigit((unsigned char)*p)) {
            if (ndig < 3) {
                frac_ms = frac_ms * 10 + (*p - '0');
            }
            ndig++;
            p++;
        }
        for (int i = ndig; i < 3; i++) {
            frac_ms *= 10;
        }
    }

    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh, om;
        if (pw_time_digits(&p, 2, &oh) != 0 || *p++ != ':' || pw_time_digits(&p, 2, &om) != 0) {
            return -1;
        }
        if (oh > 23 || om > 59) {
            return -1;
        }
        offset_s = sign * (int64_t)(oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*p != '\0') {
        return -1;
    }

    struct tm tmp = want;
    time_t t = timegm(&tmp);
    if (t == (time_t)-1 && !(want.tm_year == 69 && want.tm_mon == 11 && want.tm_mday == 31)) {
        return -1;
    }
    /* Round-trip: timegm normalises Feb 30 to Mar 2, month 13 to next year... */
    struct tm back;
    if (gmtime_r(&t, &back) == NULL || back.tm_year != want.tm_year || back.tm_mon != want.tm_mon ||
        back.tm_mday != want.tm_mday || back.tm_hour != want.tm_hour ||
        back.tm_min != want.tm_min || back.tm_sec != want.tm_sec) {
        return -1;
    }
    *out_ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return 0;
}

static int64_t pw_time_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

/* Writes v as exactly width decimal digits (v taken modulo 10^width). */
static char *pw_time_put(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* "YYYY-MM-DD" into p (years outside 0..9999 wrap; not reachable from
 * validated input). Returns the end. */
static char *pw_time_put_day(char *p, const struct tm *tm)
{
    p = pw_time_put(p, (unsigned)(tm->tm_year + 1900), 4);
    *p++ = '-';
    p = pw_time_put(p, (unsigned)(tm->tm_mon + 1), 2);
    *p++ = '-';
    return pw_time_put(p, (unsigned)tm->tm_mday, 2);
}

void pw_time_format_rfc3339(int64_t ms, char out[PW_RFC3339_LEN])
{
    int64_t secs = pw_time_floor_div(ms, 1000);
    int millis = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, PW_RFC3339_LEN, "1970-01-01T00:00:00.000Z");
        return;
    }
    char *p = pw_time_put_day(out, &tm);
    *p++ = 'T';
    p = pw_time_put(p, (unsigned)tm.tm_hour, 2);
    *p++ = ':';
    p = pw_time_put(p, (unsigned)tm.tm_min, 2);
    *p++ = ':';
    p = pw_time_put(p, (unsigned)tm.tm_sec, 2);
    *p++ = '.';
    p = pw_time_put(p, (unsigned)millis, 3);
    *p++ = 'Z';
    *p = '\0';
}

void pw_time_utc_day(int64_t ms, char out[PW_DAY_LEN])
{
    time_t t = (time_t)pw_time_floor_div(ms, 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, PW_DAY_LEN, "1970-01-01");
        return;
    }
    *pw_time_put_day(out, &tm) = '\0';
}

int64_t pw_time_hour_start(int64_t ms)
{
    return pw_time_floor_div(ms, PW_HOUR_MS) * PW_HOUR_MS;
}

int64_t pw_time_day_start(int64_t ms)
{
    return pw_time_floor_div(ms, PW_DAY_MS) * PW_DAY_MS;
}

/* Unit test for pw_time: RFC 3339 parsing (accepted and rejected forms),
 * millisecond formatting, UTC day and hour/day bucketing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pw_time.h"

typedef struct {
    const char *in;
    int64_t want_ms;
} good_case;

static const good_case good[] = {
    {"2026-11-25T10:00:00Z", 1795600800000LL},
    {"2026-11-25T10:00:00.123+01:00", 1795597200123LL},
    {"2026-11-25t10:00:00z", 1795600800000LL}, /* RFC 3339: T and Z case-insensitive */
    {"2026-11-25T10:00:00-05:30", 1795620600000LL},
    {"2026-11-25T10:00:00+00:00", 1795600800000LL},
    {"2026-11-25T10:00:00-00:00", 1795600800000LL},
    {"2024-02-29T23:59:59.999Z", 1709251199999LL}, /* leap day */
    {"2000-01-01T00:00:00Z", 946684800000LL},
    {"1970-01-01T00:00:00Z", 0},
    {"1969-12-31T23:59:59Z", -1000}, /* timegm returns -1 here: still valid */
    {"2026-11-25T10:00:00.5Z", 1795600800500LL},
    {"2026-11-25T10:00:00.05Z", 1795600800050LL},
    {"2026-11-25T10:00:00.123456789Z", 1795600800123LL}, /* truncated to ms */
    {"2026-11-25T23:59:59+23:59", 1795564859000LL},
};

static const char *const bad[] = {
    "",
    "2026-11-25",
    "2026-11-25T10:00:00",       /* no zone */
    "2026-11-25T10:00Z",         /* no seconds */
    "2026-13-01T00:00:00Z",      /* month 13 */
    "2026-00-10T00:00:00Z",      /* month 0 */
    "2026-02-30T00:00:00Z",      /* Feb 30 */
    "2023-02-29T00:00:00Z",      /* not a leap year */
    "2026-04-31T00:00:00Z",      /* April has 30 days */
    "2026-11-00T00:00:00Z",      /* day 0 */
    "2026-11-25T25:00:00Z",      /* hour 25 */
    "2026-11-25T24:00:00Z",      /* hour 24 */
    "2026-11-25T10:60:00Z",      /* minute 60 */
    "2026-11-25T10:00:60Z",      /* leap second: not representable */
    "2026-11-25T10:00:00Zjunk",  /* trailing garbage */
    "2026-11-25T10:00:00Z ",     /* trailing space */
    " 2026-11-25T10:00:00Z",     /* leading space */
    "2026-11-25T10:00:00.Z",     /* empty fraction */
    "2026-11-25 10:00:00Z",      /* space instead of T */
    "2026-11-25T10:00:00+0100",  /* offset without colon */
    "2026-11-25T10:00:00+01",    /* offset without minutes */
    "2026-11-25T10:00:00+24:00", /* offset hour 24 */
    "2026-11-25T10:00:00+01:60", /* offset minute 60 */
    "26-11-25T10:00:00Z",        /* two-digit year */
    "2026-1-25T10:00:00Z",       /* one-digit month */
    "2026/11/25T10:00:00Z",      /* wrong separators */
    "1795600800000",             /* epoch digits are not RFC 3339 */
    "2026-11-25T10:00:00.12a3Z", /* junk in fraction */
    "+2026-11-25T10:00:00Z",
};

static void test_parse_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = 42;
        int rc = pw_time_parse_rfc3339(good[i].in, &ms);
        if (rc != 0 || ms != good[i].want_ms) {
            fail_msg("%s: rc=%d ms=%lld want %lld", good[i].in, rc, (long long)ms,
                     (long long)good[i].want_ms);
        }
    }
}

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        if (pw_time_parse_rfc3339(bad[i], &ms) != -1) {
            fail_msg("accepted \"%s\" as %lld", bad[i], (long long)ms);
        }
        assert_int_equal(ms, 42); /* untouched on failure */
    }
    int64_t ms;
    assert_int_equal(pw_time_parse_rfc3339(NULL, &ms), -1);
}

static void test_format(void **state)
{
    (void)state;
    char out[PW_RFC3339_LEN];
    pw_time_format_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    pw_time_format_rfc3339(1795597200123LL, out);
    assert_string_equal(out, "2026-11-25T09:00:00.123Z");
    pw_time_format_rfc3339(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    pw_time_format_rfc3339(1709251199999LL, out);
    assert_string_equal(out, "2024-02-29T23:59:59.999Z");
}

static void test_round_trip(void **state)
{
    (void)state;
    int64_t samples[] = {0, 1, 999, 1795600800000LL, 1709251199999LL, 4102444799999LL, -1000};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char out[PW_RFC3339_LEN];
        int64_t back = 7;
        pw_time_format_rfc3339(samples[i], out);
        assert_int_equal(pw_time_parse_rfc3339(out, &back), 0);
        assert_int_equal(back, samples[i]);
    }
}

static void test_buckets(void **state)
{
    (void)state;
    char day[PW_DAY_LEN];
    pw_time_utc_day(1795597200123LL, day);
    assert_string_equal(day, "2026-11-25");
    pw_time_utc_day(1709251199999LL, day);
    assert_string_equal(day, "2024-02-29");
    pw_time_utc_day(1709251200000LL, day);
    assert_string_equal(day, "2024-03-01");
    pw_time_utc_day(-1, day);
    assert_string_equal(day, "1969-12-31");

    assert_int_equal(pw_time_hour_start(1795597200123LL), 1795597200000LL);
    assert_int_equal(pw_time_hour_start(1795600799999LL), 1795597200000LL);
    assert_int_equal(pw_time_day_start(1795597200123LL), 1795564800000LL);
    assert_int_equal(pw_time_day_start(-1), -PW_DAY_MS);
    assert_int_equal(pw_time_hour_start(-1), -PW_HOUR_MS);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t now = pw_now_ms();
    assert_true(now > 1700000000000LL); /* after Nov 2023 */
    int64_t a = pw_monotonic_us();
    int64_t b = pw_monotonic_us();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good), cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format),     cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_buckets),    cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for mx_calc: window bounds in hour buckets, the UTC days a
 * window touches (whole or in part), the trend's days, merging hour buckets,
 * top codes and firmware shares. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mx_calc.h"

/* 2026-11-25T10:20:30.500Z */
#define NOW_MS 1795602030500LL
#define HOUR_10 1795600800000LL /* 2026-11-25T10:00:00Z */

static void window_is_whole_hour_buckets(void **state)
{
    (void)state;
    int64_t from, to;
    mx_window(NOW_MS, 24, &from, &to);
    assert_int_equal(to, HOUR_10 + PW_HOUR_MS);        /* end of the current hour */
    assert_int_equal(from, HOUR_10 - 24 * PW_HOUR_MS); /* 24 whole hours before it */
    assert_int_equal((to - from) / PW_HOUR_MS, 25);
    mx_window(HOUR_10, 1, &from, &to); /* exactly on an hour boundary */
    assert_int_equal(to, HOUR_10 + PW_HOUR_MS);
    assert_int_equal(from, HOUR_10 - PW_HOUR_MS);
}

static void trend_has_seven_days_oldest_first(void **state)
{
    (void)state;
    char days[MX_TREND_DAYS][PW_DAY_LEN];
    mx_trend_days(NOW_MS, days);
    assert_string_equal(days[0], "2026-11-19");
    assert_string_equal(days[6], "2026-11-25");
    assert_int_equal(mx_trend_day_index(days, "2026-11-22"), 3);
    assert_int_equal(mx_trend_day_index(days, "2026-11-18"), -1);
    /* across a month and a year boundary */
    mx_trend_days(1798761600000LL + 1000, days); /* 2027-01-01T00:00:01Z */
    assert_string_equal(days[0], "2026-12-26");
    assert_string_equal(days[6], "2027-01-01");
}

static void buckets_merge_into_zone_stats(void **state)
{
    (void)state;
    mx_table t;
    mx_table_init(&t);
    /* zone b: two hours; zone a: one hour; an empty bucket is ignored */
    assert_int_equal(mx_table_add_bucket(&t, "b", 2, 40.0, 18.0, 22.0, 1), 0);
    assert_int_equal(mx_table_add_bucket(&t, "a", 1, 10.5, 10.5, 10.5, 1), 0);
    assert_int_equal(mx_table_add_bucket(&t, "b", 3, 75.0, 24.0, 26.0, 1), 0);
    assert_int_equal(mx_table_add_bucket(&t, "c", 0, 0, 0, 0, 1), 0);
    Iot__V1__ZoneTemperatureResponse *r = mx_build_temperature(&t, 1, 2, 24);
    assert_non_null(r);
    assert_int_equal(r->n_zones, 2);
    assert_string_equal(r->zones[0]->zone, "a"); /* sorted by zone */
    assert_int_equal(r->zones[0]->count, 1);
    assert_true(r->zones[0]->avg_c == 10.5);
    Iot__V1__ZoneTemperature *b = r->zones[1];
    assert_string_equal(b->zone, "b");
    assert_int_equal(b->count, 5);
    assert_true(b->avg_c == 23.0); /* (40 + 75) / 5 */
    assert_true(b->min_c == 18.0);
    assert_true(b->max_c == 26.0);
    assert_int_equal(r->from_ms, 1);
    assert_int_equal(r->to_ms, 2);
    assert_int_equal(r->window_hours, 24);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    mx_table_free(&t);
}

static void negative_temperatures_keep_min_max(void **state)
{
    (void)state;
    mx_table t;
    mx_table_init(&t);
    mx_table_add_bucket(&t, "freezer", 2, -40.0, -25.0, -15.0, 1);
    mx_table_add_bucket(&t, "freezer", 1, -30.0, -30.0, -30.0, 1);
    Iot__V1__ZoneTemperatureResponse *r = mx_build_temperature(&t, 0, 0, 1);
    assert_true(r->zones[0]->min_c == -30.0);
    assert_true(r->zones[0]->max_c == -15.0);
    assert_true(r->zones[0]->avg_c == -70.0 / 3.0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    mx_table_free(&t);
}

static void alerts_severities_fixed_and_top_codes_ranked(void **state)
{
    (void)state;
    mx_table sev, codes;
    mx_table_init(&sev);
    mx_table_init(&codes);
    mx_table_add_count(&sev, "warning", 7, 0);
    mx_table_add_count(&sev, "emergency", 1, 0);
    mx_table_add_count(&codes, "B", 3, 0);
    mx_table_add_count(&codes, "A", 3, 0);
    mx_table_add_count(&codes, "C", 2, 0);
    mx_table_add_count(&codes, "B", 1, 0);
    Iot__V1__AlertBreakdownResponse *r = mx_build_alerts(&sev, &codes, 2, 10, 20, 168);
    assert_int_equal(r->total, 8);
    assert_int_equal(r->n_by_severity, 4);
    assert_string_equal(r->by_severity[0]->severity, "critical");
    assert_int_equal(r->by_severity[0]->count, 0);
    assert_string_equal(r->by_severity[1]->severity, "warning");
    assert_int_equal(r->by_severity[1]->count, 7);
    assert_string_equal(r->by_severity[2]->severity, "info");
    assert_string_equal(r->by_severity[3]->severity, "emergency");
    assert_int_equal(r->n_top_codes, 2);
    assert_string_equal(r->top_codes[0]->code, "B"); /* 4 */
    assert_int_equal(r->top_codes[0]->count, 4);
    assert_string_equal(r->top_codes[1]->code, "A"); /* 3, ties broken by code */
    assert_int_equal(sev.n, 2);                      /* the input table is not modified */
    protobuf_c_message_free_unpacked(&r->base, NULL);

    mx_table empty;
    mx_table_init(&empty);
    r = mx_build_alerts(&empty, &empty, 10, 0, 0, 1);
    assert_int_equal(r->total, 0);
    assert_int_equal(r->n_by_severity, 3);
    assert_int_equal(r->n_top_codes, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    mx_table_free(&sev);
    mx_table_free(&codes);
}

static void trend_keeps_zero_days(void **state)
{
    (void)state;
    char days[MX_TREND_DAYS][PW_DAY_LEN];
    mx_trend_days(NOW_MS, days);
    uint64_t readings[MX_TREND_DAYS] = {0, 0, 5, 0, 0, 0, 9};
    uint64_t zero[MX_TREND_DAYS] = {0};
    Iot__V1__ActivityTrendResponse *r = mx_build_trend(days, readings, zero, zero);
    assert_int_equal(r->n_days, 7);
    assert_string_equal(r->days[2]->day, "2026-11-21");
    assert_int_equal(r->days[2]->readings, 5);
    assert_int_equal(r->days[0]->readings, 0);
    assert_int_equal(r->days[6]->readings, 9);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void firmware_newest_first_with_shares(void **state)
{
    (void)state;
    mx_table fw;
    mx_table_init(&fw);
    mx_table_add_count(&fw, "1.9.0", 1, 100);
    mx_table_add_count(&fw, "1.10.0", 1, 300);
    mx_table_add_count(&fw, "1.10.0", 1, 200);
    mx_table_add_count(&fw, "1.10.0-rc.2", 1, 50);
    Iot__V1__FirmwareStatusResponse *r = mx_build_firmware(&fw);
    assert_string_equal(r->newest, "1.10.0");
    assert_int_equal(r->total_devices, 4);
    assert_int_equal(r->outdated_devices, 2);
    assert_int_equal(r->n_versions, 3);
    assert_string_equal(r->versions[0]->firmware, "1.10.0");
    assert_int_equal(r->versions[0]->devices, 2);
    assert_true(r->versions[0]->share == 0.5);
    assert_int_equal(r->versions[0]->last_seen_ms, 300);
    assert_false(r->versions[0]->outdated);
    assert_string_equal(r->versions[1]->firmware, "1.10.0-rc.2");
    assert_true(r->versions[1]->outdated);
    assert_string_equal(r->versions[2]->firmware, "1.9.0");
    assert_true(r->versions[2]->share == 0.25);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    mx_table_free(&fw);

    mx_table_init(&fw);
    r = mx_build_firmware(&fw);
    assert_int_equal(r->n_versions, 0);
    assert_string_equal(r->newest, "");
    assert_int_equal(r->total_devices, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

#define DAY_25 1795564800000LL /* 2026-11-25T00:00:00Z */

static void assert_span(const mx_day_span *d, const char *day, int64_t start_ms, int full)
{
    assert_string_equal(d->day, day);
    assert_int_equal(d->start_ms, start_ms);
    assert_int_equal(d->full, full);
}

static void window_days_mark_whole_days(void **state)
{
    (void)state;
    mx_day_span d[MX_WINDOW_DAYS_MAX];
    /* 10:00 on the 24th to 10:00 on the 26th: part, whole, part */
    size_t n = mx_window_days(HOUR_10 - PW_DAY_MS, HOUR_10 + PW_DAY_MS, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 3);
    assert_span(&d[0], "2026-11-24", DAY_25 - PW_DAY_MS, 0);
    assert_span(&d[1], "2026-11-25", DAY_25, 1);
    assert_span(&d[2], "2026-11-26", DAY_25 + PW_DAY_MS, 0);

    /* on day boundaries: whole days only; the end is exclusive */
    n = mx_window_days(DAY_25, DAY_25 + 2 * PW_DAY_MS, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 2);
    assert_span(&d[0], "2026-11-25", DAY_25, 1);
    assert_span(&d[1], "2026-11-26", DAY_25 + PW_DAY_MS, 1);
    n = mx_window_days(DAY_25, DAY_25 + PW_DAY_MS, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 1);
    assert_span(&d[0], "2026-11-25", DAY_25, 1);
    /* one millisecond short of a whole day, at either end */
    n = mx_window_days(DAY_25 + 1, DAY_25 + PW_DAY_MS, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 1);
    assert_span(&d[0], "2026-11-25", DAY_25, 0);
    n = mx_window_days(DAY_25, DAY_25 + PW_DAY_MS - 1, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 1);
    assert_span(&d[0], "2026-11-25", DAY_25, 0);
    /* 23:00 on the 24th to midnight of the 26th: part, whole */
    n = mx_window_days(DAY_25 - PW_HOUR_MS, DAY_25 + PW_DAY_MS, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 2);
    assert_span(&d[0], "2026-11-24", DAY_25 - PW_DAY_MS, 0);
    assert_span(&d[1], "2026-11-25", DAY_25, 1);

    /* the 24 h window of mx_window: 25 hours over two days, neither whole */
    int64_t from, to;
    mx_window(NOW_MS, 24, &from, &to);
    n = mx_window_days(from, to, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 2);
    assert_span(&d[0], "2026-11-24", DAY_25 - PW_DAY_MS, 0);
    assert_span(&d[1], "2026-11-25", DAY_25, 0);

    /* the 720 h window: 31 days, the first and the last in part */
    mx_window(NOW_MS, 720, &from, &to);
    n = mx_window_days(from, to, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 31);
    assert_span(&d[0], "2026-10-26", DAY_25 - 30 * PW_DAY_MS, 0);
    assert_span(&d[30], "2026-11-25", DAY_25, 0);
    for (size_t i = 1; i < 30; i++) {
        assert_int_equal(d[i].start_ms, d[0].start_ms + (int64_t)i * PW_DAY_MS);
        assert_int_equal(d[i].full, 1);
    }
    assert_string_equal(d[6].day, "2026-11-01"); /* across the month */

    /* at most max, oldest first */
    n = mx_window_days(from, to, d, 2);
    assert_int_equal(n, 2);
    assert_span(&d[0], "2026-10-26", DAY_25 - 30 * PW_DAY_MS, 0);
    assert_span(&d[1], "2026-10-27", DAY_25 - 29 * PW_DAY_MS, 1);
    assert_int_equal(mx_window_days(from, to, d, 0), 0);

    /* across a year */
    int64_t jan1 = 1798761600000LL; /* 2027-01-01T00:00:00Z */
    n = mx_window_days(jan1 - 12 * PW_HOUR_MS, jan1 + PW_DAY_MS, d, MX_WINDOW_DAYS_MAX);
    assert_int_equal(n, 2);
    assert_span(&d[0], "2026-12-31", jan1 - PW_DAY_MS, 0);
    assert_span(&d[1], "2027-01-01", jan1, 1);
    /* an empty or reversed window touches no day */
    assert_int_equal(mx_window_days(HOUR_10, HOUR_10, d, MX_WINDOW_DAYS_MAX), 0);
    assert_int_equal(mx_window_days(HOUR_10 + 1, HOUR_10, d, MX_WINDOW_DAYS_MAX), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(window_is_whole_hour_buckets),
        cmocka_unit_test(window_days_mark_whole_days),
        cmocka_unit_test(trend_has_seven_days_oldest_first),
        cmocka_unit_test(buckets_merge_into_zone_stats),
        cmocka_unit_test(negative_temperatures_keep_min_max),
        cmocka_unit_test(alerts_severities_fixed_and_top_codes_ranked),
        cmocka_unit_test(trend_keeps_zero_days),
        cmocka_unit_test(firmware_newest_first_with_shares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

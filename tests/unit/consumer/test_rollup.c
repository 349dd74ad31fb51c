/* Unit tests for rollup bucket keys, grouping and the guarded update
 * documents (fast path and exact path against a bucket's hw offsets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rollup.h"

#define HOUR 1795600800000LL

static pwc_record reading(const char *dev, const char *zone, double v)
{
    pwc_record r;
    memset(&r, 0, sizeof(r));
    r.kind = PWC_READING;
    strcpy(r.device, dev);
    strcpy(r.zone, zone);
    strcpy(r.type, "temperature");
    strcpy(r.day, "2026-11-25");
    r.hour_ms = HOUR;
    r.ts_ms = HOUR + 1000;
    r.value = v;
    return r;
}

static pwc_record alert(const char *dev, const char *zone)
{
    pwc_record r;
    memset(&r, 0, sizeof(r));
    r.kind = PWC_ALERT;
    strcpy(r.device, dev);
    strcpy(r.zone, zone);
    strcpy(r.severity, "warning");
    strcpy(r.code, "OVERHEAT");
    strcpy(r.day, "2026-11-25");
    r.hour_ms = HOUR;
    return r;
}

static void test_keys(void **state)
{
    (void)state;
    pwc_record r = reading("dev-1", "zone-a", 1), a = alert("dev-2", "zone-b");
    char k[PWC_ROLLUP_KEY_LEN];
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, &r, k, sizeof(k)), 0);
    assert_string_equal(k, "1795600800000|zone-a|temperature");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, &r, k, sizeof(k)), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, &a, k, sizeof(k)), 0);
    assert_string_equal(k, "1795600800000|zone-b|warning|OVERHEAT");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_DEVICE_DAY, &a, k, sizeof(k)), 0);
    assert_string_equal(k, "2026-11-25|dev-2");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, &a, k, sizeof(k)), -1);
    assert_string_equal(pwc_rollup_collection(PWC_ROLLUP_DEVICE_DAY), "rollup_device_day");
}

static void test_grouping_skips_non_contributors(void **state)
{
    (void)state;
    pwc_record r[4] = {reading("d1", "z1", 1), reading("d2", "z2", 2), reading("d3", "z1", 3),
                       reading("d4", "z1", 4)};
    pwc_entry e[4];
    for (int i = 0; i < 4; i++)
        e[i] = (pwc_entry){&r[i], "sensor-telemetry", 0, 100 + i, i != 3};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 4, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.items[0].key, "1795600800000|z1|temperature");
    assert_int_equal(g.items[0].n, 2);
    assert_int_equal(g.items[0].idx[0], 0);
    assert_int_equal(g.items[0].idx[1], 2);
    assert_int_equal(g.items[1].n, 1);
    pwc_rollup_groups_free(&g);
}

/* Finds a value by a '/'-separated path (field names may contain dots). */
static int find_path(const bson_t *b, const char *path, bson_iter_t *out)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    bson_iter_t it, child;
    if (!bson_iter_init(&it, b))
        return 0;
    char *save = NULL;
    for (char *seg = strtok_r(buf, "/", &save); seg;) {
        if (!bson_iter_find(&it, seg))
            return 0;
        char *next = strtok_r(NULL, "/", &save);
        if (!next) {
            *out = it;
            return 1;
        }
        if (!bson_iter_recurse(&it, &child))
            return 0;
        it = child;
        seg = next;
    }
    return 0;
}

static int64_t get_i64(const bson_t *b, const char *path)
{
    bson_iter_t it;
    assert_true(find_path(b, path, &it));
    return bson_iter_as_int64(&it);
}

static double get_dbl(const bson_t *b, const char *path)
{
    bson_iter_t it;
    assert_true(find_path(b, path, &it));
    return bson_iter_double(&it);
}

static int has(const bson_t *b, const char *path)
{
    bson_iter_t it;
    return find_path(b, path, &it);
}

static void test_fast_op(void **state)
{
    (void)state;
    pwc_record r[3] = {reading("d1", "z1", 10), reading("d2", "z1", 30), reading("d3", "z1", 20)};
    pwc_entry e[3] = {{&r[0], "sensor-telemetry", 0, 7, 1},
                      {&r[1], "sensor-telemetry", 1, 40, 1},
                      {&r[2], "sensor-telemetry", 0, 9, 1}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 3, &g), 0);
    assert_int_equal(g.n, 1);
    bson_t filter, update;
    pwc_rollup_fast_op(PWC_ROLLUP_READINGS, &g.items[0], e, &filter, &update);
    /* guard: hw[p] < smallest offset of p in the batch */
    assert_int_equal(get_i64(&filter, "$and/0/$or/1/hw.sensor-telemetry:0/$lt"), 7);
    assert_int_equal(get_i64(&filter, "$and/1/$or/1/hw.sensor-telemetry:1/$lt"), 40);
    assert_int_equal(get_i64(&update, "$inc/count"), 3);
    assert_true(get_dbl(&update, "$inc/sum") == 60.0);
    assert_true(get_dbl(&update, "$min/min") == 10.0);
    assert_true(get_dbl(&update, "$max/max") == 30.0);
    assert_int_equal(get_i64(&update, "$max/hw.sensor-telemetry:0"), 9);
    assert_int_equal(get_i64(&update, "$max/hw.sensor-telemetry:1"), 40);
    bson_destroy(&filter);
    bson_destroy(&update);
    pwc_rollup_groups_free(&g);
}

static void test_exact_op_counts_only_above_hw(void **state)
{
    (void)state;
    pwc_record r[4] = {reading("d1", "z1", 1), reading("d1", "z1", 2), reading("d1", "z1", 4),
                       alert("d1", "z1")};
    pwc_entry e[4] = {{&r[0], "sensor-telemetry", 0, 5, 1},
                      {&r[1], "sensor-telemetry", 0, 6, 1},
                      {&r[2], "sensor-telemetry", 0, 7, 1},
                      {&r[3], "sensor-alerts", 1, 3, 1}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_DEVICE_DAY, e, 4, &g), 0);
    assert_int_equal(g.n, 1);
    /* the bucket already holds offsets <= 6 of telemetry:0 */
    bson_t *current = BCON_NEW("_id", "2026-11-25|d1", "readings", BCON_INT64(10), "hw", "{",
                               "sensor-telemetry:0", BCON_INT64(6), "}");
    bson_t filter, out;
    int insert = -1;
    size_t n =
        pwc_rollup_exact_op(PWC_ROLLUP_DEVICE_DAY, &g.items[0], e, current, &filter, &out, &insert);
    assert_int_equal(n, 2);
    assert_int_equal(insert, 0);
    assert_int_equal(get_i64(&filter, "hw.sensor-telemetry:0"), 6);
    assert_true(has(&filter, "hw.sensor-alerts:1/$exists"));
    assert_int_equal(get_i64(&out, "$inc/readings"), 1);
    assert_int_equal(get_i64(&out, "$inc/alerts"), 1);
    assert_int_equal(get_i64(&out, "$max/hw.sensor-telemetry:0"), 7);
    assert_int_equal(get_i64(&out, "$max/hw.sensor-alerts:1"), 3);
    bson_destroy(&filter);
    bson_destroy(&out);
    bson_destroy(current);

    /* everything already counted: nothing to do */
    current = BCON_NEW("_id", "2026-11-25|d1", "hw", "{", "sensor-telemetry:0", BCON_INT64(7),
                       "sensor-alerts:1", BCON_INT64(3), "}");
    assert_int_equal(
        pwc_rollup_exact_op(PWC_ROLLUP_DEVICE_DAY, &g.items[0], e, current, &filter, &out, &insert),
        0);
    bson_destroy(current);

    /* absent bucket: a whole document to insert */
    n = pwc_rollup_exact_op(PWC_ROLLUP_DEVICE_DAY, &g.items[0], e, NULL, &filter, &out, &insert);
    assert_int_equal(n, 4);
    assert_int_equal(insert, 1);
    assert_int_equal(get_i64(&out, "readings"), 3);
    assert_int_equal(get_i64(&out, "alerts"), 1);
    assert_int_equal(get_i64(&out, "hw/sensor-telemetry:0"), 7);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &out, "_id"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "2026-11-25|d1");
    bson_destroy(&out);
    pwc_rollup_groups_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_grouping_skips_non_contributors),
        cmocka_unit_test(test_fast_op),
        cmocka_unit_test(test_exact_op_counts_only_above_hw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

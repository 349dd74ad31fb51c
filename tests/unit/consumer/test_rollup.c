/* Unit tests for rollup bucket keys (per partition), grouping, folding a
 * batch into a bucket state above its hw offset, and the state update. */
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
    pwc_entry er = {&r, "sensor-telemetry", 2, 10, 1}, ea = {&a, "sensor-alerts", 1, 4, 1};
    char k[PWC_ROLLUP_KEY_LEN];
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, &er, k, sizeof(k)), 0);
    assert_string_equal(k, "1795600800000|zone-a|temperature|sensor-telemetry:2");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, &er, k, sizeof(k)), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, &ea, k, sizeof(k)), 0);
    assert_string_equal(k, "1795600800000|zone-b|warning|OVERHEAT|sensor-alerts:1");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, &ea, k, sizeof(k)), -1);
    assert_int_equal(pwc_device_day_key(&a, k, sizeof(k)), 0);
    assert_string_equal(k, "2026-11-25|dev-2");
    assert_int_equal(pwc_device_day_key(&a, k, 5), -1);
    assert_string_equal(pwc_rollup_collection(PWC_ROLLUP_ALERTS), "rollup_alerts");
}

static void test_grouping_skips_non_contributors(void **state)
{
    (void)state;
    pwc_record r[5] = {reading("d1", "z1", 1), reading("d2", "z2", 2), reading("d3", "z1", 3),
                       reading("d4", "z1", 4), reading("d5", "z1", 5)};
    pwc_entry e[5];
    for (int i = 0; i < 4; i++)
        e[i] = (pwc_entry){&r[i], "sensor-telemetry", 0, 100 + i, i != 3};
    e[4] = (pwc_entry){&r[4], "sensor-telemetry", 1, 7, 1}; /* other partition: own bucket */
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 5, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.items[0].key, "1795600800000|z1|temperature|sensor-telemetry:0");
    assert_int_equal(g.items[0].n, 2);
    assert_int_equal(g.items[0].idx[0], 0);
    assert_int_equal(g.items[0].idx[1], 2);
    assert_string_equal(g.items[1].key, "1795600800000|z1|temperature|sensor-telemetry:1");
    assert_int_equal(g.items[1].n, 1);
    assert_string_equal(g.items[2].key, "1795600800000|z2|temperature|sensor-telemetry:0");
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

static void test_fold_counts_only_above_hw(void **state)
{
    (void)state;
    pwc_record r[3] = {reading("d1", "z1", 10), reading("d2", "z1", 30), reading("d3", "z1", 20)};
    pwc_entry e[3] = {{&r[0], "sensor-telemetry", 0, 7, 1},
                      {&r[1], "sensor-telemetry", 0, 8, 1},
                      {&r[2], "sensor-telemetry", 0, 9, 1}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 3, &g), 0);
    assert_int_equal(g.n, 1);

    pwc_rollup_state st;
    pwc_rollup_state_from_doc(NULL, &st); /* absent bucket */
    assert_int_equal(st.hw, -1);
    assert_int_equal(pwc_rollup_fold(&st, &g.items[0], e), 3);
    assert_int_equal(st.count, 3);
    assert_true(st.sum == 60.0 && st.min == 10.0 && st.max == 30.0);
    assert_int_equal(st.hw, 9);
    /* the same deliveries again (redelivery, replay): nothing changes */
    pwc_rollup_state again = st;
    assert_int_equal(pwc_rollup_fold(&again, &g.items[0], e), 0);
    assert_memory_equal(&again, &st, sizeof(st));

    /* a stored bucket that already holds offsets <= 7 */
    bson_t *doc = BCON_NEW("_id", "x", "count", BCON_INT64(5), "sum", BCON_DOUBLE(50.0), "min",
                           BCON_DOUBLE(25.0), "max", BCON_DOUBLE(25.0), "hw", BCON_INT64(7));
    pwc_rollup_state_from_doc(doc, &st);
    assert_int_equal(st.hw, 7);
    assert_int_equal(st.count, 5);
    assert_int_equal(pwc_rollup_fold(&st, &g.items[0], e), 2);
    assert_int_equal(st.count, 7);
    assert_true(st.sum == 100.0 && st.min == 20.0 && st.max == 30.0);
    assert_int_equal(st.hw, 9);
    bson_destroy(doc);
    pwc_rollup_groups_free(&g);
}

static void test_set_op_writes_the_whole_state(void **state)
{
    (void)state;
    pwc_record r[2] = {reading("d1", "z1", 4), reading("d2", "z1", 6)};
    pwc_entry e[2] = {{&r[0], "sensor-telemetry", 2, 40, 1}, {&r[1], "sensor-telemetry", 2, 41, 1}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 2, &g), 0);
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    pwc_rollup_fold(&st, &g.items[0], e);
    bson_t update;
    pwc_rollup_set_op(PWC_ROLLUP_READINGS, &g.items[0], e, &st, &update);
    assert_int_equal(get_i64(&update, "$set/count"), 2);
    assert_true(get_dbl(&update, "$set/sum") == 10.0);
    assert_true(get_dbl(&update, "$set/min") == 4.0);
    assert_true(get_dbl(&update, "$set/max") == 6.0);
    assert_int_equal(get_i64(&update, "$set/hw"), 41);
    bson_iter_t it;
    assert_true(find_path(&update, "$set/tp", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "sensor-telemetry:2");
    assert_true(find_path(&update, "$set/type", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "temperature");
    assert_true(has(&update, "$set/hour") && has(&update, "$set/day") && has(&update, "$set/zone"));
    bson_destroy(&update);
    pwc_rollup_groups_free(&g);

    /* alerts carry counts only */
    pwc_record a = alert("d1", "z1");
    pwc_entry ea = {&a, "sensor-alerts", 0, 3, 1};
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_ALERTS, &ea, 1, &g), 0);
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(&st, &g.items[0], &ea), 1);
    pwc_rollup_set_op(PWC_ROLLUP_ALERTS, &g.items[0], &ea, &st, &update);
    assert_int_equal(get_i64(&update, "$set/count"), 1);
    assert_false(has(&update, "$set/sum"));
    assert_true(find_path(&update, "$set/code", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "OVERHEAT");
    bson_destroy(&update);
    pwc_rollup_groups_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_grouping_skips_non_contributors),
        cmocka_unit_test(test_fold_counts_only_above_hw),
        cmocka_unit_test(test_set_op_writes_the_whole_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

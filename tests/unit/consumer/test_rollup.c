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
    pwc_entry er = {&r, "sensor-telemetry", 2, 10, 1, 0}, ea = {&a, "sensor-alerts", 1, 4, 1, 0};
    char k[PWC_ROLLUP_KEY_LEN];
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, &er, k, sizeof(k)), 0);
    assert_string_equal(k, "1795600800000|sensor-telemetry:2");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, &er, k, sizeof(k)), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, &ea, k, sizeof(k)), 0);
    assert_string_equal(k, "1795600800000|sensor-alerts:1");
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
        e[i] = (pwc_entry){&r[i], "sensor-telemetry", 0, 100 + i, i != 3, 0};
    e[4] = (pwc_entry){&r[4], "sensor-telemetry", 1, 7, 1, 0}; /* other partition: own bucket */
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 5, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.items[0].key, "1795600800000|sensor-telemetry:0");
    assert_int_equal(g.items[0].n, 3);
    assert_int_equal(g.items[0].idx[0], 0);
    assert_int_equal(g.items[0].idx[1], 1);
    assert_int_equal(g.items[0].idx[2], 2);
    assert_string_equal(g.items[1].key, "1795600800000|sensor-telemetry:1");
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

/* The state a $set update writes, as the store would read it back. */
static void read_back(const bson_t *update, pwc_rollup_state *back)
{
    bson_iter_t set;
    assert_true(find_path(update, "$set", &set));
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&set, &len, &data);
    bson_t written;
    assert_true(bson_init_static(&written, data, len));
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &written, back), 0);
}

static const pwc_rollup_cell *cell(const pwc_rollup_state *s, const char *zone)
{
    for (size_t i = 0; i < s->cells.n; i++) {
        if (strcmp(s->cells.items[i].zone, zone) == 0)
            return &s->cells.items[i];
    }
    fail_msg("no cell for zone %s", zone);
    return NULL;
}

static void test_fold_counts_only_above_hw(void **state)
{
    (void)state;
    pwc_record r[4] = {reading("d1", "z1", 10), reading("d2", "z1", 30), reading("d3", "z2", 20),
                       reading("d3", "z1", 20)};
    pwc_entry e[4] = {{&r[0], "sensor-telemetry", 0, 7, 1, 0},
                      {&r[1], "sensor-telemetry", 0, 8, 1, 0},
                      {&r[2], "sensor-telemetry", 0, 9, 1, 0},
                      {&r[3], "sensor-telemetry", 0, 10, 1, 0}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 4, &g), 0);
    assert_int_equal(g.n, 1);

    pwc_rollup_state st;
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, NULL, &st), 0);
    assert_int_equal(st.hw, -1);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 4);
    assert_int_equal(st.count, 4);
    assert_int_equal(st.cells.n, 2);
    const pwc_rollup_cell *z1 = cell(&st, "z1");
    assert_int_equal(z1->count, 3);
    assert_true(z1->sum == 60.0 && z1->min == 10.0 && z1->max == 30.0);
    assert_string_equal(z1->label, "temperature");
    assert_int_equal(cell(&st, "z2")->count, 1);
    assert_int_equal(st.hw, 10);
    /* the same deliveries again (redelivery, replay): nothing changes */
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 0);
    assert_int_equal(st.count, 4);
    assert_int_equal(cell(&st, "z1")->count, 3);
    pwc_rollup_state_free(&st);

    /* a stored bucket that already holds offsets <= 8 */
    bson_t *doc =
        BCON_NEW("_id", "x", "count", BCON_INT64(5), "hw", BCON_INT64(8), "cells", "[", "{", "zone",
                 "z1", "type", "temperature", "count", BCON_INT64(5), "sum", BCON_DOUBLE(125.0),
                 "min", BCON_DOUBLE(25.0), "max", BCON_DOUBLE(25.0), "}", "]");
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), 0);
    assert_int_equal(st.hw, 8);
    assert_int_equal(st.count, 5);
    assert_int_equal(st.cells.n, 1);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 2);
    assert_int_equal(st.count, 7);
    z1 = cell(&st, "z1");
    assert_int_equal(z1->count, 6);
    assert_true(z1->sum == 145.0 && z1->min == 20.0 && z1->max == 25.0);
    assert_int_equal(cell(&st, "z2")->count, 1);
    assert_int_equal(st.hw, 10);
    bson_destroy(doc);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
}

static void test_set_op_writes_the_whole_state(void **state)
{
    (void)state;
    pwc_record r[2] = {reading("d1", "z1", 4), reading("d2", "z1", 6)};
    pwc_entry e[2] = {{&r[0], "sensor-telemetry", 2, 40, 1, 0},
                      {&r[1], "sensor-telemetry", 2, 41, 1, 0}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 2, &g), 0);
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 2);
    bson_t update;
    pwc_rollup_set_op(PWC_ROLLUP_READINGS, &g.items[0], e, &st, &update);
    assert_int_equal(get_i64(&update, "$set/count"), 2);
    assert_int_equal(get_i64(&update, "$set/hw"), 41);
    assert_int_equal(get_i64(&update, "$set/cells/0/count"), 2);
    assert_true(get_dbl(&update, "$set/cells/0/sum") == 10.0);
    assert_true(get_dbl(&update, "$set/cells/0/min") == 4.0);
    assert_true(get_dbl(&update, "$set/cells/0/max") == 6.0);
    assert_false(has(&update, "$set/cells/1"));
    bson_iter_t it;
    assert_true(find_path(&update, "$set/tp", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "sensor-telemetry:2");
    assert_true(find_path(&update, "$set/cells/0/type", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "temperature");
    assert_true(has(&update, "$set/hour") && has(&update, "$set/day"));
    /* what is written reads back as the same state */
    pwc_rollup_state back;
    read_back(&update, &back);
    assert_int_equal(back.hw, st.hw);
    assert_int_equal(back.count, st.count);
    assert_int_equal(back.cells.n, 1);
    assert_memory_equal(&back.cells.items[0], &st.cells.items[0], sizeof(pwc_rollup_cell));
    pwc_rollup_state_free(&back);
    bson_destroy(&update);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);

    /* alerts carry counts per (zone, severity, code) */
    pwc_record a = alert("d1", "z1");
    pwc_entry ea = {&a, "sensor-alerts", 0, 3, 1, 0};
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_ALERTS, &ea, 1, &g), 0);
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_ALERTS, &st, &g.items[0], &ea), 1);
    pwc_rollup_set_op(PWC_ROLLUP_ALERTS, &g.items[0], &ea, &st, &update);
    assert_int_equal(get_i64(&update, "$set/cells/0/count"), 1);
    assert_false(has(&update, "$set/cells/0/sum"));
    assert_true(find_path(&update, "$set/cells/0/code", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "OVERHEAT");
    assert_true(find_path(&update, "$set/cells/0/severity", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "warning");
    bson_destroy(&update);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
}

static void test_new_devices_count_once_per_delivery(void **state)
{
    (void)state;
    pwc_record r[3] = {reading("d1", "z1", 1), reading("d2", "z2", 2), reading("d1", "z1", 3)};
    /* d1 and d2 became active through offsets 5 and 6; offset 7 is a raw
     * duplicate that still carries nothing new, and is left out */
    pwc_entry e[3] = {{&r[0], "sensor-telemetry", 0, 5, 1, 1},
                      {&r[1], "sensor-telemetry", 0, 6, 0, 1},
                      {&r[2], "sensor-telemetry", 0, 7, 0, 0}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, e, 3, &g), 0);
    assert_int_equal(g.items[0].n, 2);
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 2);
    assert_int_equal(st.count, 1); /* only offset 5 contributes a reading */
    assert_int_equal(st.devices.n, 2);
    bson_t update;
    pwc_rollup_set_op(PWC_ROLLUP_READINGS, &g.items[0], e, &st, &update);
    assert_int_equal(get_i64(&update, "$set/devices/0/count"), 1);
    assert_int_equal(get_i64(&update, "$set/devices/1/count"), 1);
    pwc_rollup_state back;
    read_back(&update, &back);
    assert_int_equal(back.devices.n, 2);
    assert_string_equal(back.devices.items[1].zone, "z2");
    /* redelivered: nothing changes */
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &back, &g.items[0], e), 0);
    assert_int_equal(back.devices.items[0].count + back.devices.items[1].count, 2);
    pwc_rollup_state_free(&back);
    bson_destroy(&update);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_grouping_skips_non_contributors),
        cmocka_unit_test(test_fold_counts_only_above_hw),
        cmocka_unit_test(test_set_op_writes_the_whole_state),
        cmocka_unit_test(test_new_devices_count_once_per_delivery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

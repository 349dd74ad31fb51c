/* Unit tests for rollup: bucket keys per resolution (hour, day) and kind,
 * grouping a batch per resolution, folding a batch into a bucket state above
 * its hw offset, and the bucket documents with their packed state (fields;
 * the state deflated: subtype 0x80, length prefix, zlib stream; for_set;
 * doc → state → doc round trip; subtype-0 states still read; undecodable
 * states). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "iot/v1/storage.pb-c.h"
#include "pw_schema.h"
#include "pw_store.h"
#include "rollup.h"

#define HOUR 1795600800000LL      /* 2026-11-25T10:00:00Z */
#define DAY_START 1795564800000LL /* 2026-11-25T00:00:00Z */
#define H 3600000LL

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

static pwc_record alert(const char *dev, const char *zone, const char *severity, const char *code)
{
    pwc_record r;
    memset(&r, 0, sizeof(r));
    r.kind = PWC_ALERT;
    strcpy(r.device, dev);
    strcpy(r.zone, zone);
    strcpy(r.severity, severity);
    strcpy(r.code, code);
    strcpy(r.day, "2026-11-25");
    r.hour_ms = HOUR;
    r.ts_ms = HOUR + 2000;
    return r;
}

/* ---- document accessors ---------------------------------------------------- */

static const char *utf8_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, key));
    assert_true(BSON_ITER_HOLDS_UTF8(&it));
    return bson_iter_utf8(&it, NULL);
}

static int64_t i64_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, key));
    assert_true(BSON_ITER_HOLDS_INT64(&it));
    return bson_iter_int64(&it);
}

static int64_t date_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, key));
    assert_true(BSON_ITER_HOLDS_DATE_TIME(&it));
    return bson_iter_date_time(&it);
}

static int has(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key);
}

static const pwc_rollup_cell *cell(const pwc_rollup_state *s, const char *zone)
{
    for (size_t i = 0; i < s->cells.n; i++) {
        if (strcmp(s->cells.items[i].zone, zone) == 0) {
            return &s->cells.items[i];
        }
    }
    fail_msg("no cell for zone %s", zone);
    return NULL;
}

static const pwc_rollup_cell *devices(const pwc_rollup_state *s, const char *zone)
{
    for (size_t i = 0; i < s->devices.n; i++) {
        if (strcmp(s->devices.items[i].zone, zone) == 0) {
            return &s->devices.items[i];
        }
    }
    fail_msg("no device count for zone %s", zone);
    return NULL;
}

/* Asserts that a and b hold the same cells and device counts, in order. */
static void assert_same_state(const pwc_rollup_state *a, const pwc_rollup_state *b)
{
    assert_int_equal(a->hw, b->hw);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->cells.n, b->cells.n);
    for (size_t i = 0; i < a->cells.n; i++) {
        const pwc_rollup_cell *x = &a->cells.items[i], *y = &b->cells.items[i];
        assert_string_equal(x->zone, y->zone);
        assert_string_equal(x->label, y->label);
        assert_string_equal(x->code, y->code);
        assert_int_equal(x->count, y->count);
        assert_true(x->sum == y->sum);
        assert_true(x->min == y->min);
        assert_true(x->max == y->max);
    }
    assert_int_equal(a->devices.n, b->devices.n);
    for (size_t i = 0; i < a->devices.n; i++) {
        assert_string_equal(a->devices.items[i].zone, b->devices.items[i].zone);
        assert_int_equal(a->devices.items[i].count, b->devices.items[i].count);
    }
}

/* ---- keys and grouping -------------------------------------------------------- */

static void test_keys_per_resolution_and_kind(void **state)
{
    (void)state;
    pwc_record r = reading("dev-1", "zone-a", 1);
    pwc_record a = alert("dev-2", "zone-b", "warning", "OVERHEAT");
    pwc_entry er = {&r, "sensor-telemetry", 2, 10, 1, 0};
    pwc_entry ea = {&a, "sensor-alerts", 1, 4, 1, 0};
    char k[PWC_ROLLUP_KEY_LEN];

    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &er, k, sizeof(k)), 0);
    assert_string_equal(k, "h|1795600800000|sensor-telemetry:2");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_DAY, &er, k, sizeof(k)), 0);
    assert_string_equal(k, "d|2026-11-25|sensor-telemetry:2");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, PWC_RES_HOUR, &ea, k, sizeof(k)), 0);
    assert_string_equal(k, "h|1795600800000|sensor-alerts:1");
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, PWC_RES_DAY, &ea, k, sizeof(k)), 0);
    assert_string_equal(k, "d|2026-11-25|sensor-alerts:1");

    /* a record feeds only the buckets of its own kind */
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, PWC_RES_HOUR, &er, k, sizeof(k)), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_ALERTS, PWC_RES_DAY, &er, k, sizeof(k)), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &ea, k, sizeof(k)), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_DAY, &ea, k, sizeof(k)), -1);

    /* dots in the topic become '_' (the tp is a BSON-safe name) */
    pwc_entry dotted = {&r, "plant.telemetry", 0, 1, 1, 0};
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_DAY, &dotted, k, sizeof(k)), 0);
    assert_string_equal(k, "d|2026-11-25|plant_telemetry:0");

    /* a key that does not fit is refused */
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &er, k, 10), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_DAY, &er, k, 31), -1);
    assert_int_equal(pwc_rollup_key(PWC_ROLLUP_READINGS, PWC_RES_DAY, &er, k, 32), 0);
    assert_string_equal(k, "d|2026-11-25|sensor-telemetry:2");

    assert_int_equal(pwc_device_day_key(&a, k, sizeof(k)), 0);
    assert_string_equal(k, "2026-11-25|dev-2");
    assert_int_equal(pwc_device_day_key(&a, k, 5), -1);
    assert_string_equal(pwc_rollup_collection(PWC_ROLLUP_READINGS), "rollup_readings");
    assert_string_equal(pwc_rollup_collection(PWC_ROLLUP_ALERTS), "rollup_alerts");
}

static void test_grouping_per_resolution(void **state)
{
    (void)state;
    pwc_record r[7] = {reading("d1", "z1", 1), reading("d2", "z2", 2), reading("d3", "z1", 3),
                       reading("d4", "z1", 4), reading("d5", "z1", 5), reading("d6", "z1", 6),
                       reading("d7", "z1", 7)};
    r[2].hour_ms = HOUR + H;      /* 11:00, same day */
    r[5].hour_ms = HOUR + 14 * H; /* 2026-11-26T00:00 */
    strcpy(r[5].day, "2026-11-26");
    pwc_record a = alert("d8", "z1", "critical", "LEAK");
    pwc_entry e[8];
    for (int i = 0; i < 7; i++) {
        e[i] = (pwc_entry){&r[i], "sensor-telemetry", 0, 100 + i, 1, 0};
    }
    e[3].contributes = 0;                                     /* a duplicate: left out */
    e[4].partition = 1;                                       /* other partition: own bucket */
    e[6].contributes = 0;                                     /* not a new record, */
    e[6].new_device = 1;                                      /* but a new device: kept */
    e[7] = (pwc_entry){&a, "sensor-telemetry", 0, 107, 1, 0}; /* other kind: left out */

    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, 8, &g), 0);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.items[0].key, "h|1795600800000|sensor-telemetry:0");
    assert_int_equal(g.items[0].n, 3);
    assert_int_equal(g.items[0].idx[0], 0);
    assert_int_equal(g.items[0].idx[1], 1);
    assert_int_equal(g.items[0].idx[2], 6);
    assert_string_equal(g.items[1].key, "h|1795600800000|sensor-telemetry:1");
    assert_int_equal(g.items[1].n, 1);
    assert_int_equal(g.items[1].idx[0], 4);
    assert_string_equal(g.items[2].key, "h|1795604400000|sensor-telemetry:0");
    assert_int_equal(g.items[2].n, 1);
    assert_int_equal(g.items[2].idx[0], 2);
    assert_string_equal(g.items[3].key, "h|1795651200000|sensor-telemetry:0");
    assert_int_equal(g.items[3].n, 1);
    assert_int_equal(g.items[3].idx[0], 5);
    pwc_rollup_groups_free(&g);
    assert_int_equal(g.n, 0);
    assert_null(g.items);

    /* by day, the 10:00 and 11:00 hours share one bucket */
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_DAY, e, 8, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.items[0].key, "d|2026-11-25|sensor-telemetry:0");
    assert_int_equal(g.items[0].n, 4);
    assert_int_equal(g.items[0].idx[0], 0);
    assert_int_equal(g.items[0].idx[1], 1);
    assert_int_equal(g.items[0].idx[2], 2);
    assert_int_equal(g.items[0].idx[3], 6);
    assert_string_equal(g.items[1].key, "d|2026-11-25|sensor-telemetry:1");
    assert_int_equal(g.items[1].n, 1);
    assert_int_equal(g.items[1].idx[0], 4);
    assert_string_equal(g.items[2].key, "d|2026-11-26|sensor-telemetry:0");
    assert_int_equal(g.items[2].n, 1);
    assert_int_equal(g.items[2].idx[0], 5);
    pwc_rollup_groups_free(&g);

    /* the alerts kind sees only the alert */
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_ALERTS, PWC_RES_DAY, e, 8, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.items[0].key, "d|2026-11-25|sensor-telemetry:0");
    assert_int_equal(g.items[0].n, 1);
    assert_int_equal(g.items[0].idx[0], 7);
    pwc_rollup_groups_free(&g);

    /* an empty batch has no groups */
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, 0, &g), 0);
    assert_int_equal(g.n, 0);
    pwc_rollup_groups_free(&g);
}

/* ---- folding ------------------------------------------------------------------ */

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
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, 4, &g), 0);
    assert_int_equal(g.n, 1);

    pwc_rollup_state st;
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, NULL, &st), 0);
    assert_int_equal(st.stored, 0);
    assert_int_equal(st.hw, -1);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 4);
    assert_int_equal(st.count, 4);
    assert_int_equal(st.cells.n, 2);
    const pwc_rollup_cell *z1 = cell(&st, "z1");
    assert_int_equal(z1->count, 3);
    assert_true(z1->sum == 60.0 && z1->min == 10.0 && z1->max == 30.0);
    assert_string_equal(z1->label, "temperature");
    assert_string_equal(z1->code, "");
    assert_int_equal(cell(&st, "z2")->count, 1);
    assert_int_equal(st.hw, 10);
    assert_int_equal(st.devices.n, 0);
    /* the same deliveries again (redelivery, replay): nothing changes */
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 0);
    assert_int_equal(st.count, 4);
    assert_int_equal(cell(&st, "z1")->count, 3);
    assert_int_equal(st.hw, 10);
    pwc_rollup_state_free(&st);

    /* a stored bucket that already holds offsets <= 8 (written from the
     * first two deliveries) counts only offsets 9 and 10 */
    pwc_rollup_groups first;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, 2, &first), 0);
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &first.items[0], e), 2);
    bson_t doc;
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &first.items[0], e, &st, 0, &doc), 0);
    pwc_rollup_state_free(&st);
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &doc, &st), 0);
    assert_int_equal(st.stored, 1);
    assert_int_equal(st.stored_v, 8);
    assert_int_equal(st.hw, 8);
    assert_int_equal(st.count, 2);
    assert_int_equal(st.cells.n, 1);
    assert_int_equal(pwc_rollup_next_version(&st), 9); /* rewritten as is: a new version */
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 2);
    assert_int_equal(st.count, 4);
    z1 = cell(&st, "z1");
    assert_int_equal(z1->count, 3);
    assert_true(z1->sum == 60.0 && z1->min == 10.0 && z1->max == 30.0);
    assert_int_equal(cell(&st, "z2")->count, 1);
    assert_int_equal(st.hw, 10);
    assert_int_equal(st.stored_v, 8); /* the guard stays the stored version */
    assert_int_equal(pwc_rollup_next_version(&st), 10);
    bson_destroy(&doc);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&first);
    pwc_rollup_groups_free(&g);
}

static void test_new_devices_count_once_per_delivery(void **state)
{
    (void)state;
    pwc_record r[3] = {reading("d1", "z1", 1), reading("d2", "z2", 2), reading("d1", "z1", 3)};
    /* d1 and d2 became active through offsets 5 and 6; offset 7 is a raw
     * duplicate that carries nothing new, and is left out */
    pwc_entry e[3] = {{&r[0], "sensor-telemetry", 0, 5, 1, 1},
                      {&r[1], "sensor-telemetry", 0, 6, 0, 1},
                      {&r[2], "sensor-telemetry", 0, 7, 0, 0}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, 3, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.items[0].n, 2);
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 2);
    assert_int_equal(st.count, 1); /* only offset 5 contributes a reading */
    assert_int_equal(st.cells.n, 1);
    assert_int_equal(st.devices.n, 2);
    assert_int_equal(devices(&st, "z1")->count, 1);
    assert_int_equal(devices(&st, "z2")->count, 1);
    assert_int_equal(st.hw, 6);

    bson_t doc;
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &g.items[0], e, &st, 1, &doc), 0);
    pwc_rollup_state back;
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &doc, &back), 0);
    assert_same_state(&st, &back);
    /* redelivered: nothing changes */
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &back, &g.items[0], e), 0);
    assert_int_equal(devices(&back, "z1")->count + devices(&back, "z2")->count, 2);
    assert_int_equal(back.count, 1);
    pwc_rollup_state_free(&back);
    bson_destroy(&doc);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
}

/* ---- documents ------------------------------------------------------------------ */

static void test_hour_doc_round_trip(void **state)
{
    (void)state;
    pwc_record r[4] = {reading("d1", "z1", 4), reading("d2", "z1", 6), reading("d3", "z2", -2.5),
                       reading("d3", "z2", 1)};
    strcpy(r[3].type, "humidity");
    pwc_entry e[4] = {{&r[0], "sensor-telemetry", 2, 40, 1, 1},
                      {&r[1], "sensor-telemetry", 2, 41, 1, 1},
                      {&r[2], "sensor-telemetry", 2, 42, 1, 1},
                      {&r[3], "sensor-telemetry", 2, 43, 1, 0}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, 4, &g), 0);
    assert_int_equal(g.n, 1);
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 4);
    assert_int_equal(st.cells.n, 3);
    assert_int_equal(st.devices.n, 2);

    bson_t doc;
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &g.items[0], e, &st, 0, &doc), 0);
    assert_string_equal(utf8_of(&doc, PW_F_ID), "h|1795600800000|sensor-telemetry:2");
    assert_string_equal(utf8_of(&doc, PW_F_RES), "hour");
    assert_int_equal(date_of(&doc, PW_F_START), HOUR); /* hour docs start at their hour */
    assert_int_equal(date_of(&doc, PW_F_HOUR), HOUR);
    assert_string_equal(utf8_of(&doc, PW_F_DAY), "2026-11-25");
    assert_false(has(&doc, PW_F_MONTH));
    assert_string_equal(utf8_of(&doc, PW_F_TP), "sensor-telemetry:2");
    assert_int_equal(i64_of(&doc, PW_F_HW), 43);
    assert_int_equal(i64_of(&doc, PW_F_VERSION), 43);
    assert_int_equal(i64_of(&doc, PW_F_COUNT), 4);
    assert_false(has(&doc, "cells")); /* the cells live in the packed state only */

    /* the state field: binary of subtype 0x80, the packed length as a
     * little-endian uint32, then the iot.v1.RollupState deflated */
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &doc, PW_F_STATE));
    assert_true(BSON_ITER_HOLDS_BINARY(&it));
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(&it, &sub, &len, &data);
    assert_int_equal(sub, PW_STORE_SUBTYPE_DEFLATED);
    assert_true(len > 4);
    uLongf raw_len =
        (uLongf)data[0] | (uLongf)data[1] << 8 | (uLongf)data[2] << 16 | (uLongf)data[3] << 24;
    uint8_t *raw = malloc(raw_len + 1);
    assert_non_null(raw);
    uLongf got = raw_len + 1; /* room for one more byte than the prefix says */
    assert_int_equal(uncompress(raw, &got, data + 4, len - 4), Z_OK);
    assert_int_equal(got, raw_len);
    Iot__V1__RollupState *pb = iot__v1__rollup_state__unpack(NULL, got, raw);
    free(raw);
    assert_non_null(pb);
    assert_int_equal(protobuf_c_message_get_packed_size(&pb->base), raw_len);
    assert_int_equal(pb->n_cells, 3);
    assert_int_equal(pb->n_devices, 2);
    assert_string_equal(pb->cells[0]->zone, "z1");
    assert_string_equal(pb->cells[0]->label, "temperature");
    assert_int_equal(pb->cells[0]->count, 2);
    assert_true(pb->cells[0]->sum == 10.0);

    /* a state of subtype 0 (the message as is, from before the change)
     * reads the same */
    size_t plen = protobuf_c_message_get_packed_size(&pb->base);
    uint8_t *plain = malloc(plen);
    assert_non_null(plain);
    protobuf_c_message_pack(&pb->base, plain);
    iot__v1__rollup_state__free_unpacked(pb, NULL);
    bson_t *old = BCON_NEW("hw", BCON_INT64(43), "_v", BCON_INT64(43), "count", BCON_INT64(4));
    BSON_APPEND_BINARY(old, PW_F_STATE, BSON_SUBTYPE_BINARY, plain, plen);
    free(plain);
    pwc_rollup_state from_old;
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, old, &from_old), 0);
    assert_same_state(&st, &from_old);
    pwc_rollup_state_free(&from_old);
    bson_destroy(old);

    /* doc → state: the same state, stored at version hw */
    pwc_rollup_state back;
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &doc, &back), 0);
    assert_int_equal(back.stored, 1);
    assert_int_equal(back.stored_v, 43);
    assert_same_state(&st, &back);
    const pwc_rollup_cell *z2 = cell(&back, "z2");
    assert_string_equal(z2->label, "temperature");
    assert_true(z2->sum == -2.5 && z2->min == -2.5 && z2->max == -2.5);
    assert_int_equal(devices(&back, "z1")->count, 2);
    assert_int_equal(devices(&back, "z2")->count, 1);

    /* state → doc again: the same document, at the next version */
    assert_int_equal(pwc_rollup_next_version(&back), 44);
    bson_t again;
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &g.items[0], e, &back, 0, &again), 0);
    assert_int_equal(again.len, doc.len);
    assert_int_equal(i64_of(&again, PW_F_VERSION), 44);
    assert_int_equal(i64_of(&again, PW_F_HW), 43);
    assert_int_equal(bson_count_keys(&again), bson_count_keys(&doc));
    const char *same[] = {PW_F_ID, PW_F_RES, PW_F_DAY, PW_F_TP};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_string_equal(utf8_of(&again, same[i]), utf8_of(&doc, same[i]));
    }
    assert_int_equal(date_of(&again, PW_F_START), HOUR);
    assert_int_equal(date_of(&again, PW_F_HOUR), HOUR);
    assert_int_equal(i64_of(&again, PW_F_COUNT), 4);
    uint32_t len2 = 0;
    const uint8_t *data2 = NULL;
    assert_true(bson_iter_init_find(&it, &again, PW_F_STATE));
    bson_iter_binary(&it, &sub, &len2, &data2);
    assert_true(bson_iter_init_find(&it, &doc, PW_F_STATE));
    bson_iter_binary(&it, &sub, &len, &data);
    assert_int_equal(len2, len);
    assert_memory_equal(data2, data, len); /* the same packed state, byte for byte */
    bson_destroy(&again);
    pwc_rollup_state_free(&back);
    bson_destroy(&doc);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
}

static void test_day_doc_fields(void **state)
{
    (void)state;
    pwc_record r[2] = {reading("d1", "z1", 4), reading("d2", "z1", 8)};
    r[1].hour_ms = HOUR + 13 * H; /* 23:00, same day */
    pwc_entry e[2] = {{&r[0], "sensor-telemetry", 1, 5, 1, 0},
                      {&r[1], "sensor-telemetry", 1, 9, 1, 0}};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_DAY, e, 2, &g), 0);
    assert_int_equal(g.n, 1);
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), 2);
    bson_t doc;
    assert_int_equal(pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_DAY, &g.items[0], e, &st, 0, &doc),
                     0);
    assert_string_equal(utf8_of(&doc, PW_F_ID), "d|2026-11-25|sensor-telemetry:1");
    assert_string_equal(utf8_of(&doc, PW_F_RES), "day");
    assert_int_equal(date_of(&doc, PW_F_START), DAY_START); /* day docs start at their day */
    assert_string_equal(utf8_of(&doc, PW_F_DAY), "2026-11-25");
    assert_string_equal(utf8_of(&doc, PW_F_MONTH), "2026-11");
    assert_false(has(&doc, PW_F_HOUR));
    assert_string_equal(utf8_of(&doc, PW_F_TP), "sensor-telemetry:1");
    assert_int_equal(i64_of(&doc, PW_F_HW), 9);
    assert_int_equal(i64_of(&doc, PW_F_VERSION), 9);
    assert_int_equal(i64_of(&doc, PW_F_COUNT), 2);
    pwc_rollup_state back;
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &doc, &back), 0);
    assert_same_state(&st, &back);
    assert_true(cell(&back, "z1")->sum == 12.0);
    pwc_rollup_state_free(&back);
    bson_destroy(&doc);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);

    /* the first day of a year: month and start */
    pwc_record j = reading("d9", "z9", 1);
    j.hour_ms = 1798761600000LL + 5 * H; /* 2027-01-01T05:00:00Z */
    strcpy(j.day, "2027-01-01");
    pwc_entry ej = {&j, "sensor-telemetry", 0, 0, 1, 0};
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_DAY, &ej, 1, &g), 0);
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], &ej), 1);
    assert_int_equal(st.hw, 0);
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_DAY, &g.items[0], &ej, &st, 0, &doc), 0);
    assert_string_equal(utf8_of(&doc, PW_F_MONTH), "2027-01");
    assert_int_equal(date_of(&doc, PW_F_START), 1798761600000LL);
    assert_int_equal(i64_of(&doc, PW_F_HW), 0);
    bson_destroy(&doc);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
}

static void test_for_set_omits_id(void **state)
{
    (void)state;
    pwc_record a[3] = {alert("d1", "z1", "warning", "OVERHEAT"),
                       alert("d2", "z1", "warning", "OVERHEAT"),
                       alert("d2", "z1", "critical", "LEAK")};
    pwc_entry e[3] = {{&a[0], "sensor-alerts", 0, 3, 1, 1},
                      {&a[1], "sensor-alerts", 0, 4, 1, 1},
                      {&a[2], "sensor-alerts", 0, 6, 1, 0}};
    for (int res = PWC_RES_HOUR; res <= PWC_RES_DAY; res++) {
        pwc_rollup_groups g;
        assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_ALERTS, res, e, 3, &g), 0);
        assert_int_equal(g.n, 1);
        pwc_rollup_state st;
        pwc_rollup_state_init(&st);
        assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_ALERTS, &st, &g.items[0], e), 3);
        assert_int_equal(st.cells.n, 2);
        bson_t full, set;
        assert_int_equal(pwc_rollup_doc(PWC_ROLLUP_ALERTS, res, &g.items[0], e, &st, 0, &full), 0);
        assert_int_equal(pwc_rollup_doc(PWC_ROLLUP_ALERTS, res, &g.items[0], e, &st, 1, &set), 0);
        assert_true(has(&full, PW_F_ID));
        assert_false(has(&set, PW_F_ID));
        assert_int_equal(bson_count_keys(&full), bson_count_keys(&set) + 1);
        /* otherwise the same fields with the same values */
        assert_string_equal(utf8_of(&set, PW_F_RES), res == PWC_RES_HOUR ? "hour" : "day");
        assert_string_equal(utf8_of(&set, PW_F_TP), "sensor-alerts:0");
        assert_int_equal(i64_of(&set, PW_F_HW), 6);
        assert_int_equal(i64_of(&set, PW_F_VERSION), 6);
        assert_int_equal(i64_of(&set, PW_F_COUNT), 3);
        assert_int_equal(date_of(&set, PW_F_START), res == PWC_RES_HOUR ? HOUR : DAY_START);
        pwc_rollup_state back;
        assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_ALERTS, &set, &back), 0);
        assert_same_state(&st, &back);
        /* alert cells: (zone, severity, code) with counts, no values */
        for (size_t i = 0; i < back.cells.n; i++) {
            const pwc_rollup_cell *c = &back.cells.items[i];
            assert_string_equal(c->zone, "z1");
            if (strcmp(c->code, "OVERHEAT") == 0) {
                assert_string_equal(c->label, "warning");
                assert_int_equal(c->count, 2);
            } else {
                assert_string_equal(c->code, "LEAK");
                assert_string_equal(c->label, "critical");
                assert_int_equal(c->count, 1);
            }
            assert_true(c->sum == 0.0);
        }
        assert_int_equal(devices(&back, "z1")->count, 2);
        pwc_rollup_state_free(&back);
        bson_destroy(&set);
        bson_destroy(&full);
        pwc_rollup_state_free(&st);
        pwc_rollup_groups_free(&g);
    }
}

static void test_state_that_does_not_decode(void **state)
{
    (void)state;
    pwc_rollup_state st;

    /* not binary */
    bson_t *doc = BCON_NEW("_id", "x", "hw", BCON_INT64(8), "_v", BCON_INT64(8), "count",
                           BCON_INT64(5), "state", "not a state");
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), -1);
    assert_int_equal(st.cells.n, 0); /* left empty, nothing to free */
    assert_null(st.cells.items);
    assert_int_equal(st.hw, -1);
    bson_destroy(doc);

    /* binary that is no RollupState: a length-delimited field longer than the data */
    static const uint8_t garbage[] = {0x0a, 0x7f, 0x01, 0x02};
    doc = BCON_NEW("_id", "x", "hw", BCON_INT64(8), "count", BCON_INT64(5));
    BSON_APPEND_BINARY(doc, PW_F_STATE, BSON_SUBTYPE_BINARY, garbage, sizeof(garbage));
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_ALERTS, doc, &st), -1);
    assert_int_equal(st.cells.n, 0);
    assert_int_equal(st.devices.n, 0);
    bson_destroy(doc);

    /* an invalid wire type */
    static const uint8_t bad_wire[] = {0x0f, 0x00};
    doc = BCON_NEW("hw", BCON_INT64(8));
    BSON_APPEND_BINARY(doc, PW_F_STATE, BSON_SUBTYPE_BINARY, bad_wire, sizeof(bad_wire));
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), -1);
    bson_destroy(doc);

    /* subtype 0x80 that does not inflate: shorter than the length prefix,
     * not a zlib stream, a length above PW_STORE_PACKED_MAX, a stream of
     * another length than the prefix says */
    static const uint8_t short2[] = {0x04, 0x00};
    static const uint8_t not_zlib[] = {0x04, 0x00, 0x00, 0x00, 0x0a, 0x02, 'z', '1'};
    static const uint8_t too_long[] = {0x01, 0x00, 0x00, 0x04, 0x78, 0x01}; /* 64 MiB + 1 */
    const uint8_t *bins[] = {short2, not_zlib, too_long};
    const size_t lens[] = {sizeof(short2), sizeof(not_zlib), sizeof(too_long)};
    for (size_t i = 0; i < 3; i++) {
        doc = BCON_NEW("hw", BCON_INT64(8));
        assert_true(
            bson_append_binary(doc, PW_F_STATE, -1, PW_STORE_SUBTYPE_DEFLATED, bins[i], lens[i]));
        assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), -1);
        assert_int_equal(st.cells.n, 0);
        assert_null(st.cells.items);
        bson_destroy(doc);
    }
    /* a real state whose prefix claims one byte less than the stream holds */
    pwc_record r = reading("d1", "z1", 1);
    pwc_entry e = {&r, "sensor-telemetry", 0, 5, 1, 1};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &e, 1, &g), 0);
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], &e), 1);
    bson_t good;
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &g.items[0], &e, &st, 0, &good), 0);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &good, PW_F_STATE));
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(&it, &sub, &len, &data);
    assert_int_equal(sub, PW_STORE_SUBTYPE_DEFLATED);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, data, len);
    assert_true(copy[0] > 0);
    copy[0]--;
    doc = BCON_NEW("hw", BCON_INT64(8));
    assert_true(bson_append_binary(doc, PW_F_STATE, -1, PW_STORE_SUBTYPE_DEFLATED, copy, len));
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), -1);
    assert_int_equal(st.cells.n, 0);
    bson_destroy(doc);
    /* ... and the copy as it was reads */
    copy[0]++;
    doc = BCON_NEW("hw", BCON_INT64(8));
    assert_true(bson_append_binary(doc, PW_F_STATE, -1, PW_STORE_SUBTYPE_DEFLATED, copy, len));
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), 0);
    assert_int_equal(st.cells.n, 1);
    assert_int_equal(st.devices.n, 1);
    pwc_rollup_state_free(&st);
    bson_destroy(doc);
    free(copy);
    bson_destroy(&good);

    /* no state field: a stored bucket without cells (hw, _v and count kept) */
    doc = BCON_NEW("_id", "x", "hw", BCON_INT64(8), "_v", BCON_INT64(7), "count", BCON_INT64(5));
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), 0);
    assert_int_equal(st.stored, 1);
    assert_int_equal(st.hw, 8);
    assert_int_equal(st.stored_v, 7);
    assert_int_equal(st.count, 5);
    assert_int_equal(st.cells.n, 0);
    pwc_rollup_state_free(&st);
    bson_destroy(doc);

    /* an empty state (zero bytes of subtype 0) decodes to no cells */
    doc = BCON_NEW("hw", BCON_INT64(3));
    BSON_APPEND_BINARY(doc, PW_F_STATE, BSON_SUBTYPE_BINARY, garbage, 0);
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, doc, &st), 0);
    assert_int_equal(st.hw, 3);
    assert_int_equal(st.stored_v, 3); /* no _v: the hw */
    assert_int_equal(st.cells.n, 0);
    assert_int_equal(st.devices.n, 0);
    pwc_rollup_state_free(&st);
    bson_destroy(doc);
}

static void test_next_version_only_grows(void **state)
{
    (void)state;
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_next_version(&st), -1); /* nothing folded, nothing stored */
    st.hw = 5;
    assert_int_equal(pwc_rollup_next_version(&st), 5); /* new document: its hw */
    st.stored = 1;
    st.stored_v = 3;
    assert_int_equal(pwc_rollup_next_version(&st), 5); /* stored below hw: hw */
    st.stored_v = 5;
    assert_int_equal(pwc_rollup_next_version(&st), 6); /* stored at hw: one more */
    st.stored_v = 9;
    assert_int_equal(pwc_rollup_next_version(&st), 10); /* stored above hw: one more */

    /* the document carries it */
    pwc_record r = reading("d1", "z1", 1);
    pwc_entry e = {&r, "sensor-telemetry", 0, 5, 1, 0};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &e, 1, &g), 0);
    bson_t doc;
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &g.items[0], &e, &st, 1, &doc), 0);
    assert_int_equal(i64_of(&doc, PW_F_HW), 5);
    assert_int_equal(i64_of(&doc, PW_F_VERSION), 10);
    pwc_rollup_state back;
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &doc, &back), 0);
    assert_int_equal(back.hw, 5);
    assert_int_equal(back.stored_v, 10);
    assert_int_equal(pwc_rollup_next_version(&back), 11);
    pwc_rollup_state_free(&back);
    bson_destroy(&doc);
    pwc_rollup_groups_free(&g);
    pwc_rollup_state_free(&st);
}

/* One sensor floods distinct zones: every batch is folded, written and read
 * back as the store would; no bucket document exceeds its bound, the
 * records and new devices past the budget are counted in the overflow cells,
 * and the totals stay exact. */
static void test_bucket_bound_under_a_zone_flood(void **state)
{
    (void)state;
    enum { BATCH = 2000, BATCHES = 12 };
    pwc_record *r = calloc(BATCH, sizeof(*r));
    pwc_entry *e = calloc(BATCH, sizeof(*e));
    assert_non_null(r);
    assert_non_null(e);
    uint32_t x = 2463534242u;
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    bson_t doc = BSON_INITIALIZER;
    int64_t offset = 0, total = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            char zone[61];
            for (int j = 0; j < 60; j++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift: zones deflate poorly */
                zone[j] = "0123456789abcdefghijklmnopqrstuvwxyz"[x % 36];
            }
            zone[60] = '\0';
            r[i] = reading("flood", zone, (double)(i % 100));
            snprintf(r[i].consumer, sizeof(r[i].consumer), "key-%d", b % 6); /* six keys */
            e[i] = (pwc_entry){&r[i], "sensor-telemetry", 0, offset++, 1, 1};
        }
        pwc_rollup_groups g;
        assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, BATCH, &g),
                         0);
        assert_int_equal(g.n, 1);
        assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), BATCH);
        total += BATCH;
        bson_destroy(&doc);
        assert_int_equal(
            pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &g.items[0], e, &st, 0, &doc), 0);
        assert_true(doc.len <= PWC_ROLLUP_DOC_BOUND);
        pwc_rollup_state_free(&st);
        assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &doc, &st), 0);
        assert_true(st.bytes <= PWC_ROLLUP_STATE_BUDGET + 256);
        pwc_rollup_groups_free(&g);
    }
    /* the flood did reach the budget (the stored bytes are deflated) */
    assert_true(st.bytes > PWC_ROLLUP_STATE_BUDGET - 64 * 1024 - 1024);
    assert_true(doc.len > PWC_ROLLUP_DOC_BOUND / 4);
    int64_t cells = 0, devices = 0;
    const pwc_rollup_cell *over = NULL;
    for (size_t i = 0; i < st.cells.n; i++) {
        cells += st.cells.items[i].count;
        if (strcmp(st.cells.items[i].zone, PWC_ROLLUP_OVERFLOW_ZONE) == 0) {
            over = &st.cells.items[i];
        }
    }
    for (size_t i = 0; i < st.devices.n; i++) {
        devices += st.devices.items[i].count;
    }
    assert_int_equal(st.count, total);
    assert_int_equal(cells, total);
    assert_int_equal(devices, total);
    assert_non_null(over);
    assert_string_equal(over->label, "temperature");
    assert_true(over->count > total / 2);
    assert_true(over->min == 0.0 && over->max == 99.0);
    bson_destroy(&doc);
    pwc_rollup_state_free(&st);
    free(r);
    free(e);
}

/* One key floods new zones: it fills its share of the bucket only, and a
 * record of another key still gets a cell of its own. */
static void test_one_key_fills_only_its_share(void **state)
{
    (void)state;
    enum { N = 20000 };
    pwc_record *r = calloc(N + 1, sizeof(*r));
    pwc_entry *e = calloc(N + 1, sizeof(*e));
    assert_non_null(r);
    assert_non_null(e);
    for (int i = 0; i < N; i++) {
        char zone[64];
        snprintf(zone, sizeof(zone), "flood-zone-%06d-with-a-longer-name", i);
        r[i] = reading("flood", zone, 1.0);
        strcpy(r[i].consumer, "flooder");
        e[i] = (pwc_entry){&r[i], "sensor-telemetry", 0, i, 1, 0};
    }
    r[N] = reading("steady", "steady-zone", 5.0);
    strcpy(r[N].consumer, "plant-b");
    e[N] = (pwc_entry){&r[N], "sensor-telemetry", 0, N, 1, 0};
    pwc_rollup_groups g;
    assert_int_equal(pwc_rollup_group_entries(PWC_ROLLUP_READINGS, PWC_RES_HOUR, e, N + 1, &g), 0);
    pwc_rollup_state st;
    pwc_rollup_state_init(&st);
    assert_int_equal(pwc_rollup_fold(PWC_ROLLUP_READINGS, &st, &g.items[0], e), N + 1);
    assert_true(st.overflowed > 0);
    assert_true(st.bytes < PWC_ROLLUP_KEY_SHARE + 4096);
    assert_int_equal(st.shares.n, 2);
    assert_string_equal(st.shares.items[0].consumer, "flooder");
    assert_true(st.shares.items[0].bytes <= PWC_ROLLUP_KEY_SHARE);
    const pwc_rollup_cell *steady = cell(&st, "steady-zone");
    assert_int_equal(steady->count, 1);
    assert_true(steady->sum == 5.0);
    /* the shares survive the document */
    bson_t doc;
    assert_int_equal(
        pwc_rollup_doc(PWC_ROLLUP_READINGS, PWC_RES_HOUR, &g.items[0], e, &st, 0, &doc), 0);
    size_t bytes = st.bytes;
    uint64_t flooder = st.shares.items[0].bytes;
    pwc_rollup_state_free(&st);
    assert_int_equal(pwc_rollup_state_from_doc(PWC_ROLLUP_READINGS, &doc, &st), 0);
    assert_int_equal(st.bytes, bytes);
    assert_int_equal(st.shares.n, 2);
    assert_true(st.shares.items[0].bytes == flooder);
    bson_destroy(&doc);
    pwc_rollup_state_free(&st);
    pwc_rollup_groups_free(&g);
    free(r);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_per_resolution_and_kind),
        cmocka_unit_test(test_grouping_per_resolution),
        cmocka_unit_test(test_fold_counts_only_above_hw),
        cmocka_unit_test(test_new_devices_count_once_per_delivery),
        cmocka_unit_test(test_hour_doc_round_trip),
        cmocka_unit_test(test_day_doc_fields),
        cmocka_unit_test(test_for_set_omits_id),
        cmocka_unit_test(test_state_that_does_not_decode),
        cmocka_unit_test(test_next_version_only_grows),
        cmocka_unit_test(test_bucket_bound_under_a_zone_flood),
        cmocka_unit_test(test_one_key_fills_only_its_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

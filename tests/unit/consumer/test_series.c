/* Unit tests for series: document ids and sk, the hour and minute of a
 * reading at hour and UTC day edges, folding (per-minute count, sum, min,
 * max, first and last ts; offsets at or below hw skipped), the documents and
 * their packed state (fields, subtype 0x80, doc → state → doc round trip,
 * the bound of a full document), the re-fold after a lost race, and the
 * zone admission with its overflow series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iot/v1/storage.pb-c.h"
#include "pw_schema.h"
#include "pw_store.h"
#include "series.h"

#define HOUR 1795600800000LL      /* 2026-11-25T10:00:00Z */
#define DAY_START 1795564800000LL /* 2026-11-25T00:00:00Z */
#define H 3600000LL
#define M 60000LL
#define TP "sensor-telemetry:1"

static pwc_record reading(int64_t ts_ms, double v)
{
    pwc_record r;
    memset(&r, 0, sizeof(r));
    r.kind = PWC_READING;
    strcpy(r.device, "press-7");
    strcpy(r.zone, "hall-a");
    strcpy(r.type, "temperature");
    strcpy(r.unit, "C");
    r.ts_ms = ts_ms;
    r.value = v;
    return r;
}

static pwc_entry entry(const pwc_record *r, int64_t offset)
{
    pwc_entry e = {r, "sensor-telemetry", 1, offset, 1, 0};
    return e;
}

static const pwc_series_ref REF = {PWC_SERIES_DEVICE, "press-7", "temperature", HOUR, TP};

static void assert_same_state(const pwc_series_state *a, const pwc_series_state *b)
{
    assert_int_equal(a->hw, b->hw);
    assert_string_equal(a->unit, b->unit);
    for (int m = 0; m < PWC_SERIES_MINUTES; m++) {
        const pwc_series_cell *x = &a->cells[m], *y = &b->cells[m];
        assert_int_equal(x->count, y->count);
        if (x->count) {
            assert_true(x->sum == y->sum);
            assert_true(x->min == y->min);
            assert_true(x->max == y->max);
            assert_int_equal(x->first_ms, y->first_ms);
            assert_int_equal(x->last_ms, y->last_ms);
        }
    }
}

/* The document of s as the store would hold it (for_set = 0), then read. */
static void round_trip(const pwc_series_state *s, pwc_series_state *out)
{
    bson_t doc;
    assert_int_equal(pwc_series_doc(&REF, s, 0, &doc), 0);
    assert_int_equal(pwc_series_state_from_doc(&doc, out), 0);
    bson_destroy(&doc);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_ids_and_sk(void **state)
{
    (void)state;
    char out[PWC_SERIES_KEY_LEN];
    assert_int_equal(
        pwc_series_id(PWC_SERIES_DEVICE, "press-7", "temperature", HOUR, TP, out, sizeof(out)), 0);
    assert_string_equal(out, "d\x1fpress-7\x1ftemperature\x1f"
                             "1795600800000\x1f" TP);
    assert_int_equal(
        pwc_series_id(PWC_SERIES_ZONE, "halle-süd", "pressure", HOUR, TP, out, sizeof(out)), 0);
    assert_string_equal(out, "z\x1fhalle-süd\x1fpressure\x1f"
                             "1795600800000\x1f" TP);
    assert_int_equal(
        pwc_series_sk(PWC_SERIES_ZONE, "hall-a", "temperature", HOUR, out, sizeof(out)), 0);
    assert_string_equal(out, "z\x1fhall-a\x1ftemperature\x1f"
                             "2026-11-25");
    assert_int_equal(pwc_series_zones_id(HOUR, TP, out, sizeof(out)), 0);
    assert_string_equal(out, "a\x1f"
                             "1795600800000\x1f" TP);
    /* a key that does not fit is refused, never cut */
    assert_int_equal(pwc_series_sk(PWC_SERIES_ZONE, "hall-a", "temperature", HOUR, out, 31), -1);
    assert_int_equal(pwc_series_sk(PWC_SERIES_ZONE, "hall-a", "temperature", HOUR, out, 32), 0);
    assert_int_equal(pwc_series_id(PWC_SERIES_DEVICE, "press-7", "t", HOUR, TP, out, 12), -1);
    /* the longest accepted device and type fit */
    char dev[PW_MAX_ID_BYTES + 1], type[PW_MAX_TYPE_BYTES + 1], tp[PWC_ORIGIN_LEN];
    memset(dev, 'd', sizeof(dev) - 1);
    dev[sizeof(dev) - 1] = '\0';
    memset(type, 't', sizeof(type) - 1);
    type[sizeof(type) - 1] = '\0';
    memset(tp, 'p', sizeof(tp) - 1);
    tp[sizeof(tp) - 1] = '\0';
    assert_int_equal(pwc_series_id(PWC_SERIES_DEVICE, dev, type, HOUR, tp, out, sizeof(out)), 0);
}

static void test_hour_and_minute_at_the_edges(void **state)
{
    (void)state;
    /* 10:59:59.999 is minute 59 of 10:00; 11:00:00.000 minute 0 of 11:00 */
    assert_int_equal(pwc_series_hour(HOUR + H - 1), HOUR);
    assert_int_equal(pwc_series_minute(HOUR + H - 1), 59);
    assert_int_equal(pwc_series_hour(HOUR + H), HOUR + H);
    assert_int_equal(pwc_series_minute(HOUR + H), 0);
    assert_int_equal(pwc_series_minute(HOUR), 0);
    assert_int_equal(pwc_series_minute(HOUR + M - 1), 0);
    assert_int_equal(pwc_series_minute(HOUR + M), 1);
    assert_int_equal(pwc_series_minute(HOUR + 30 * M + 59999), 30);

    /* the UTC day change: 23:59:59.999 is in 2026-11-25, 00:00:00.000 not */
    int64_t midnight = DAY_START + 24 * H;
    char id[PWC_SERIES_KEY_LEN], sk[PWC_SERIES_KEY_LEN];
    assert_int_equal(pwc_series_hour(midnight - 1), midnight - H);
    assert_int_equal(pwc_series_minute(midnight - 1), 59);
    assert_int_equal(
        pwc_series_sk(PWC_SERIES_DEVICE, "d", "t", pwc_series_hour(midnight - 1), sk, sizeof(sk)),
        0);
    assert_string_equal(sk, "d\x1f"
                            "d\x1ft\x1f"
                            "2026-11-25");
    assert_int_equal(
        pwc_series_sk(PWC_SERIES_DEVICE, "d", "t", pwc_series_hour(midnight), sk, sizeof(sk)), 0);
    assert_string_equal(sk, "d\x1f"
                            "d\x1ft\x1f"
                            "2026-11-26");
    assert_int_equal(
        pwc_series_id(PWC_SERIES_DEVICE, "d", "t", pwc_series_hour(midnight), TP, id, sizeof(id)),
        0);
    assert_string_equal(id, "d\x1f"
                            "d\x1ft\x1f"
                            "1795651200000\x1f" TP);
}

/* ---- folding --------------------------------------------------------------- */

static void test_fold_per_minute(void **state)
{
    (void)state;
    pwc_record r[6] = {
        reading(HOUR + 5 * M + 30000, 20.5),   /* minute 5 */
        reading(HOUR + 5 * M + 10000, 19.0),   /* minute 5, earlier ts at a later offset */
        reading(HOUR + 5 * M + 59999, 22.0),   /* minute 5, last */
        reading(HOUR + 59 * M + 59999, -3.25), /* minute 59 */
        reading(HOUR + 6 * M, 7.0),            /* minute 6 */
        reading(HOUR + 6 * M, 9.0),
    };
    strcpy(r[4].unit, "F"); /* the series keeps the first reading's unit */
    pwc_series_state s;
    pwc_series_state_init(&s);
    assert_int_equal(s.hw, -1);
    for (int i = 0; i < 6; i++) {
        pwc_entry e = entry(&r[i], 100 + i);
        assert_int_equal(pwc_series_fold(&s, &e), 1);
    }
    assert_int_equal(s.hw, 105);
    assert_string_equal(s.unit, "C");
    const pwc_series_cell *c5 = &s.cells[5], *c6 = &s.cells[6], *c59 = &s.cells[59];
    assert_int_equal(c5->count, 3);
    assert_true(c5->sum == 61.5);
    assert_true(c5->min == 19.0);
    assert_true(c5->max == 22.0);
    assert_int_equal(c5->first_ms, HOUR + 5 * M + 10000);
    assert_int_equal(c5->last_ms, HOUR + 5 * M + 59999);
    assert_int_equal(c6->count, 2);
    assert_true(c6->sum == 16.0);
    assert_int_equal(c6->first_ms, HOUR + 6 * M);
    assert_int_equal(c6->last_ms, HOUR + 6 * M);
    assert_int_equal(c59->count, 1);
    assert_true(c59->min == -3.25 && c59->max == -3.25);
    for (int m = 0; m < PWC_SERIES_MINUTES; m++) {
        if (m != 5 && m != 6 && m != 59) {
            assert_int_equal(s.cells[m].count, 0);
        }
    }
    /* a redelivered offset (at or below hw) is not counted again */
    pwc_entry again = entry(&r[0], 103);
    assert_int_equal(pwc_series_fold(&s, &again), 0);
    again.offset = 105;
    assert_int_equal(pwc_series_fold(&s, &again), 0);
    assert_int_equal(c5->count, 3);
    assert_int_equal(s.hw, 105);
}

static void test_next_version_only_grows(void **state)
{
    (void)state;
    pwc_series_state s;
    pwc_series_state_init(&s);
    s.hw = 40;
    assert_int_equal(pwc_series_next_version(&s), 40); /* new document: _v = hw */
    s.stored = 1;
    s.stored_v = 40;
    assert_int_equal(pwc_series_next_version(&s), 41);
    s.stored_v = 12;
    assert_int_equal(pwc_series_next_version(&s), 40);
}

/* ---- documents ------------------------------------------------------------------ */

static int64_t i64_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, key));
    assert_true(BSON_ITER_HOLDS_INT64(&it));
    return bson_iter_int64(&it);
}

static void test_document_fields_and_round_trip(void **state)
{
    (void)state;
    pwc_record r[3] = {reading(HOUR + 1000, 1.5), reading(HOUR + 2 * M, 2.5),
                       reading(HOUR + 59 * M, 3.5)};
    pwc_series_state s, back;
    pwc_series_state_init(&s);
    for (int i = 0; i < 3; i++) {
        pwc_entry e = entry(&r[i], 7 + i);
        pwc_series_fold(&s, &e);
    }
    bson_t doc;
    assert_int_equal(pwc_series_doc(&REF, &s, 0, &doc), 0);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &doc, PW_F_ID));
    assert_string_equal(bson_iter_utf8(&it, NULL), "d\x1fpress-7\x1ftemperature\x1f"
                                                   "1795600800000\x1f" TP);
    assert_true(bson_iter_init_find(&it, &doc, PW_F_SK));
    assert_string_equal(bson_iter_utf8(&it, NULL), "d\x1fpress-7\x1ftemperature\x1f"
                                                   "2026-11-25");
    assert_true(bson_iter_init_find(&it, &doc, PW_F_HOUR) && BSON_ITER_HOLDS_DATE_TIME(&it));
    assert_int_equal(bson_iter_date_time(&it), HOUR);
    assert_true(bson_iter_init_find(&it, &doc, PW_F_START) && BSON_ITER_HOLDS_DATE_TIME(&it));
    assert_int_equal(bson_iter_date_time(&it), HOUR);
    assert_true(bson_iter_init_find(&it, &doc, PW_F_TP));
    assert_string_equal(bson_iter_utf8(&it, NULL), TP);
    assert_int_equal(i64_of(&doc, PW_F_HW), 9);
    assert_int_equal(i64_of(&doc, PW_F_VERSION), 9);
    /* the state: deflated (subtype 0x80), only the minutes with readings */
    bson_subtype_t sub;
    uint32_t len;
    const uint8_t *bin;
    assert_true(bson_iter_init_find(&it, &doc, PW_F_STATE) && BSON_ITER_HOLDS_BINARY(&it));
    bson_iter_binary(&it, &sub, &len, &bin);
    assert_int_equal(sub, PW_STORE_SUBTYPE_DEFLATED);
    int bad = 0;
    Iot__V1__SeriesState *st = (Iot__V1__SeriesState *)pw_store_unpack(
        &doc, PW_F_STATE, &iot__v1__series_state__descriptor, &bad);
    assert_non_null(st);
    assert_int_equal(st->n_minute, 3);
    assert_int_equal(st->minute[0], 0);
    assert_int_equal(st->minute[1], 2);
    assert_int_equal(st->minute[2], 59);
    assert_int_equal(st->count[2], 1);
    assert_true(st->sum[1] == 2.5);
    assert_int_equal(st->first_ms[0], HOUR + 1000);
    assert_int_equal(st->last_ms[2], HOUR + 59 * M);
    assert_string_equal(st->unit, "C");
    protobuf_c_message_free_unpacked(&st->base, NULL);

    assert_int_equal(pwc_series_state_from_doc(&doc, &back), 0);
    assert_true(back.stored);
    assert_int_equal(back.stored_v, 9);
    assert_same_state(&s, &back);
    bson_destroy(&doc);

    /* for_set: the $set body carries everything but the _id */
    assert_int_equal(pwc_series_doc(&REF, &s, 1, &doc), 0);
    assert_false(bson_iter_init_find(&it, &doc, PW_F_ID));
    assert_true(bson_iter_init_find(&it, &doc, PW_F_SK));
    bson_destroy(&doc);

    /* no document: an empty state */
    assert_int_equal(pwc_series_state_from_doc(NULL, &back), 0);
    assert_false(back.stored);
    assert_int_equal(back.hw, -1);
}

static void test_a_full_document_is_bounded(void **state)
{
    (void)state;
    /* every minute of the hour holds readings, with the longest accepted ids */
    char dev[PW_MAX_ID_BYTES + 1], type[PW_MAX_TYPE_BYTES + 1];
    memset(dev, 'd', sizeof(dev) - 1);
    dev[sizeof(dev) - 1] = '\0';
    memset(type, 't', sizeof(type) - 1);
    type[sizeof(type) - 1] = '\0';
    pwc_series_state s;
    pwc_series_state_init(&s);
    for (int i = 0; i < 3600; i++) {
        pwc_record r = reading(HOUR + i * 1000LL, 1000.0 / (i + 3));
        memset(r.unit, 'u', PW_MAX_UNIT_BYTES);
        pwc_entry e = entry(&r, i);
        assert_int_equal(pwc_series_fold(&s, &e), 1);
    }
    pwc_series_ref ref = {PWC_SERIES_DEVICE, dev, type, HOUR, TP};
    bson_t doc;
    assert_int_equal(pwc_series_doc(&ref, &s, 0, &doc), 0);
    assert_true(doc.len < 8192); /* ids twice (_id, sk) and 60 cells */
    pwc_series_state back;
    assert_int_equal(pwc_series_state_from_doc(&doc, &back), 0);
    assert_same_state(&s, &back);
    for (int m = 0; m < PWC_SERIES_MINUTES; m++) {
        assert_int_equal(back.cells[m].count, 60);
        assert_int_equal(back.cells[m].first_ms, HOUR + m * M);
        assert_int_equal(back.cells[m].last_ms, HOUR + m * M + 59000);
    }
    bson_destroy(&doc);
}

static void test_state_that_does_not_decode(void **state)
{
    (void)state;
    /* repeated fields of different lengths */
    Iot__V1__SeriesState st = IOT__V1__SERIES_STATE__INIT;
    uint32_t minute[2] = {1, 2};
    uint64_t count[1] = {1};
    st.n_minute = 2;
    st.minute = minute;
    st.n_count = 1;
    st.count = count;
    bson_t doc = BSON_INITIALIZER;
    assert_int_equal(pw_store_append_packed(&doc, PW_F_STATE, &st.base), 0);
    pwc_series_state s;
    assert_int_equal(pwc_series_state_from_doc(&doc, &s), -1);
    bson_destroy(&doc);
    /* a minute out of range */
    uint32_t late[1] = {60};
    double d[1] = {0};
    int64_t t[1] = {0};
    Iot__V1__SeriesState one = IOT__V1__SERIES_STATE__INIT;
    one.n_minute = one.n_count = one.n_sum = one.n_min = one.n_max = 1;
    one.n_first_ms = one.n_last_ms = 1;
    one.minute = late;
    one.count = count;
    one.sum = one.min = one.max = d;
    one.first_ms = one.last_ms = t;
    bson_init(&doc);
    assert_int_equal(pw_store_append_packed(&doc, PW_F_STATE, &one.base), 0);
    assert_int_equal(pwc_series_state_from_doc(&doc, &s), -1);
    bson_destroy(&doc);
    /* bytes that are no deflated message */
    bson_init(&doc);
    uint8_t junk[8] = {8, 0, 0, 0, 1, 2, 3, 4};
    bson_append_binary(&doc, PW_F_STATE, -1, PW_STORE_SUBTYPE_DEFLATED, junk, sizeof(junk));
    assert_int_equal(pwc_series_state_from_doc(&doc, &s), -1);
    bson_destroy(&doc);
}

/* ---- lost race ---------------------------------------------------------------- */

static void test_refold_after_a_lost_race(void **state)
{
    (void)state;
    pwc_record r[10];
    for (int i = 0; i < 10; i++) {
        r[i] = reading(HOUR + i * 7000LL, i * 1.25);
    }
    /* writer a folded offsets 0..4 and lost its write to writer b, which had
     * stored offsets 0..7 */
    pwc_series_state a, b, reread, once;
    pwc_series_state_init(&a);
    pwc_series_state_init(&b);
    pwc_series_state_init(&once);
    for (int i = 0; i < 10; i++) {
        pwc_entry e = entry(&r[i], i);
        if (i < 5) {
            pwc_series_fold(&a, &e);
        }
        if (i < 8) {
            pwc_series_fold(&b, &e);
        }
        pwc_series_fold(&once, &e);
    }
    round_trip(&b, &reread);
    assert_int_equal(reread.hw, 7);
    /* a reads b's document again and folds its whole batch 0..9 again: only
     * 8 and 9 count */
    int counted = 0;
    for (int i = 0; i < 10; i++) {
        pwc_entry e = entry(&r[i], i);
        counted += pwc_series_fold(&reread, &e);
    }
    assert_int_equal(counted, 2);
    assert_same_state(&reread, &once);
    assert_int_equal(reread.cells[0].count + reread.cells[1].count, 10);
    /* its next write is guarded by b's version and raises it */
    assert_int_equal(reread.stored_v, 7);
    assert_int_equal(pwc_series_next_version(&reread), 9);
    /* the same batch once more (a redelivery) changes nothing */
    for (int i = 0; i < 10; i++) {
        pwc_entry e = entry(&r[i], i);
        assert_int_equal(pwc_series_fold(&reread, &e), 0);
    }
}

/* ---- zone admission -------------------------------------------------------------- */

static void test_zone_admission_and_overflow(void **state)
{
    (void)state;
    pwc_series_zones z;
    pwc_series_zones_init(&z, HOUR, TP);
    char name[32];
    for (int i = 0; i < PWC_SERIES_ZONES_MAX; i++) {
        snprintf(name, sizeof(name), "zone-%d", i);
        assert_string_equal(pwc_series_zone_decide(&z, name), name);
    }
    assert_true(z.changed);
    assert_int_equal(z.n, PWC_SERIES_ZONES_MAX);
    /* full: a new zone counts in the overflow series, admitted ones in theirs */
    assert_string_equal(pwc_series_zone_decide(&z, "late-zone"), PWC_SERIES_OTHER_ZONE);
    assert_string_equal(pwc_series_zone_decide(&z, "zone-7"), "zone-7");
    assert_int_equal(z.n, PWC_SERIES_ZONES_MAX);

    /* stored and read again (another writer, a restart): the same decisions */
    bson_t doc;
    assert_int_equal(pwc_series_zones_doc(&z, 0, &doc), 0);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &doc, PW_F_ID));
    assert_string_equal(bson_iter_utf8(&it, NULL), "a\x1f"
                                                   "1795600800000\x1f" TP);
    assert_false(bson_iter_init_find(&it, &doc, PW_F_SK)); /* readers never see it */
    assert_int_equal(i64_of(&doc, PW_F_VERSION), 1);
    pwc_series_zones back;
    assert_int_equal(pwc_series_zones_from_doc(&doc, HOUR, TP, &back), 0);
    bson_destroy(&doc);
    assert_true(back.stored);
    assert_false(back.changed);
    assert_int_equal(back.n, PWC_SERIES_ZONES_MAX);
    assert_string_equal(pwc_series_zone_decide(&back, "late-zone"), PWC_SERIES_OTHER_ZONE);
    assert_string_equal(pwc_series_zone_decide(&back, "zone-511"), "zone-511");
    assert_false(back.changed);
    assert_int_equal(pwc_series_zones_doc(&back, 1, &doc), 0);
    assert_false(bson_iter_init_find(&it, &doc, PW_F_ID));
    assert_int_equal(i64_of(&doc, PW_F_VERSION), 2);
    bson_destroy(&doc);
    pwc_series_zones_free(&back);
    pwc_series_zones_free(&z);

    /* no document: nothing admitted yet */
    assert_int_equal(pwc_series_zones_from_doc(NULL, HOUR, TP, &z), 0);
    assert_false(z.stored);
    assert_int_equal(z.n, 0);
    assert_string_equal(pwc_series_zone_decide(&z, "hall-a"), "hall-a");
    assert_string_equal(pwc_series_zone_decide(&z, "hall-a"), "hall-a");
    assert_int_equal(z.n, 1);
    pwc_series_zones_free(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_sk),
        cmocka_unit_test(test_hour_and_minute_at_the_edges),
        cmocka_unit_test(test_fold_per_minute),
        cmocka_unit_test(test_next_version_only_grows),
        cmocka_unit_test(test_document_fields_and_round_trip),
        cmocka_unit_test(test_a_full_document_is_bounded),
        cmocka_unit_test(test_state_that_does_not_decode),
        cmocka_unit_test(test_refold_after_a_lost_race),
        cmocka_unit_test(test_zone_admission_and_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

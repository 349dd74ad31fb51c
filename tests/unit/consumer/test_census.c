/* Unit tests for census: the device census per (partition, shard) — shard
 * and _id, folding deliveries (newest record wins zone and firmware, ties go
 * to the later offset, first seen is the oldest, offsets at or below hw are
 * ignored), when a write is due (resolution, new devices, zone or firmware
 * changes), the versions written, the document → state round trip through
 * the columnar iot.v1.DeviceCensus (entries sorted by last seen then device
 * id, sorted distinct zone and firmware dictionaries, last seen as deltas,
 * first seen as last seen minus seen_for), states whose columns disagree,
 * and growth to thousands of devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "census.h"
#include "iot/v1/storage.pb-c.h"
#include "pw_schema.h"
#include "pw_store.h"

#define T0 1795600800000LL /* 2026-11-25T10:00:00Z */
#define RES PWC_CENSUS_RESOLUTION_MS

/* Folds one delivery of device at (ts, offset) on sensor-telemetry:0. */
static int fold(pwc_census *c, const char *device, const char *zone, const char *firmware,
                int64_t ts, int64_t offset)
{
    pwc_record r;
    memset(&r, 0, sizeof(r));
    r.kind = PWC_READING;
    snprintf(r.device, sizeof(r.device), "%s", device);
    snprintf(r.zone, sizeof(r.zone), "%s", zone);
    snprintf(r.firmware, sizeof(r.firmware), "%s", firmware);
    r.ts_ms = ts;
    pwc_entry e = {&r, "sensor-telemetry", 0, offset, 1, 0};
    return pwc_census_fold(c, &e);
}

static const pwc_census_entry *must_find(const pwc_census *c, const char *device)
{
    const pwc_census_entry *d = pwc_census_find(c, device);
    if (d == NULL) {
        fail_msg("device %s not in the census", device);
    }
    return d;
}

static void assert_entry(const pwc_census *c, const char *device, const char *zone,
                         const char *firmware, int64_t first_ms, int64_t last_ms)
{
    const pwc_census_entry *d = must_find(c, device);
    assert_string_equal(d->device, device);
    assert_string_equal(d->zone, zone);
    assert_string_equal(d->firmware, firmware);
    assert_int_equal(d->first_ms, first_ms);
    assert_int_equal(d->last_ms, last_ms);
}

/* FNV-1a, 32 bits, written out independently of census.c. */
static uint32_t fnv1a(const char *s)
{
    uint32_t h = 0x811c9dc5u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x01000193u;
    }
    return h;
}

static int64_t i64_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, key));
    return bson_iter_as_int64(&it);
}

static const char *utf8_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, key));
    assert_true(BSON_ITER_HOLDS_UTF8(&it));
    return bson_iter_utf8(&it, NULL);
}

/* The packed state of a census document: binary of subtype 0x80 (checked),
 * unpacked with pw_store_unpack. Free with iot__v1__device_census__free_unpacked. */
static Iot__V1__DeviceCensus *state_of(const bson_t *doc, uint32_t *binary_len)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, PW_F_STATE));
    assert_true(BSON_ITER_HOLDS_BINARY(&it));
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(&it, &sub, &len, &data);
    assert_int_equal(sub, PW_STORE_SUBTYPE_DEFLATED);
    assert_true(len > 4);
    if (binary_len) {
        *binary_len = len;
    }
    int bad = 0;
    Iot__V1__DeviceCensus *m = (Iot__V1__DeviceCensus *)pw_store_unpack(
        doc, PW_F_STATE, &iot__v1__device_census__descriptor, &bad);
    assert_int_equal(bad, 0);
    assert_non_null(m);
    /* the length prefix is the packed message's */
    assert_int_equal((uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                         (uint32_t)data[3] << 24,
                     protobuf_c_message_get_packed_size(&m->base));
    return m;
}

/* Asserts that every column of m has n entries. */
static void assert_columns(const Iot__V1__DeviceCensus *m, size_t n)
{
    assert_int_equal(m->n_device_ids, n);
    assert_int_equal(m->n_zone, n);
    assert_int_equal(m->n_firmware, n);
    assert_int_equal(m->n_last_seen_delta_ms, n);
    assert_int_equal(m->n_seen_for_ms, n);
}

static void assert_dictionary(char **got, size_t n_got, const char *const *want, size_t n)
{
    assert_int_equal(n_got, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(got[i], want[i]);
    }
}

/* A stored census document (hw 50) holding m as its state, deflated. */
static bson_t *doc_with_state(const Iot__V1__DeviceCensus *m)
{
    bson_t *doc = BCON_NEW("_id", "sensor-telemetry:0|2", "hw", BCON_INT64(50));
    assert_int_equal(pw_store_append_packed(doc, PW_F_STATE, &m->base), 0);
    return doc;
}

/* Columns of a hand-made census message. */
typedef struct {
    char *ids[8], *zones[8], *firmwares[8];
    uint32_t zone[8], firmware[8];
    int64_t delta[8], seen_for[8];
} columns;

static Iot__V1__DeviceCensus message_of(columns *c, size_t n, size_t nzones, size_t nfirmwares)
{
    Iot__V1__DeviceCensus m = IOT__V1__DEVICE_CENSUS__INIT;
    m.n_device_ids = m.n_zone = m.n_firmware = m.n_last_seen_delta_ms = m.n_seen_for_ms = n;
    m.device_ids = c->ids;
    m.n_zones = nzones;
    m.zones = c->zones;
    m.n_firmwares = nfirmwares;
    m.firmwares = c->firmwares;
    m.zone = c->zone;
    m.firmware = c->firmware;
    m.last_seen_delta_ms = c->delta;
    m.seen_for_ms = c->seen_for;
    return m;
}

static void test_shard_and_key(void **state)
{
    (void)state;
    assert_int_equal(PW_CENSUS_SHARDS, 8);
    /* FNV-1a("") is the offset basis: 2166136261 % 8 = 5 */
    assert_int_equal(pwc_census_shard(""), 5);
    /* FNV-1a("a") = 0xe40c292c: % 8 = 4 (it was 12 of 16) */
    assert_int_equal(pwc_census_shard("a"), 4);
    assert_int_equal(pwc_census_shard("a"), (int)(0xe40c292cu % PW_CENSUS_SHARDS));
    int seen[PW_CENSUS_SHARDS] = {0};
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "dev-%04d", i);
        int s = pwc_census_shard(id);
        assert_in_range(s, 0, PW_CENSUS_SHARDS - 1);
        assert_int_equal(s, (int)(fnv1a(id) % PW_CENSUS_SHARDS));
        assert_int_equal(s, (int)(fnv1a(id) & 7u)); /* the hash's low three bits */
        seen[s]++;
    }
    for (int s = 0; s < PW_CENSUS_SHARDS; s++) {
        /* 1000 ids reach every shard, about evenly (125 each) */
        assert_in_range(seen[s], 80, 170);
    }
    /* no id lands beyond the 8 shards, however long */
    char longid[PW_MAX_ID_LEN + 1];
    memset(longid, 'z', PW_MAX_ID_LEN);
    longid[PW_MAX_ID_LEN] = '\0';
    assert_int_equal(pwc_census_shard(longid), (int)(fnv1a(longid) % 8));

    char key[PWC_CENSUS_KEY_LEN];
    pwc_census_key("sensor-telemetry", 2, 7, key, sizeof(key));
    assert_string_equal(key, "sensor-telemetry:2|7");
    pwc_census_key("plant.alerts", 0, PW_CENSUS_SHARDS - 1, key, sizeof(key));
    assert_string_equal(key, "plant_alerts:0|7");
    pwc_census_key("sensor-telemetry", 11, 0, key, sizeof(key));
    assert_string_equal(key, "sensor-telemetry:11|0");

    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-alerts", 1, 6), 0);
    assert_string_equal(c.key, "sensor-alerts:1|6");
    assert_string_equal(c.tp, "sensor-alerts:1");
    assert_int_equal(c.shard, 6);
    assert_int_equal(c.hw, -1);
    assert_int_equal(c.stored, 0);
    assert_int_equal(c.stored_v, -1);
    assert_int_equal(c.due, 0);
    assert_int_equal(c.n, 0);
    assert_null(pwc_census_find(&c, "dev-1")); /* no index yet */
    pwc_census_free(&c);
}

static void test_newest_record_wins(void **state)
{
    (void)state;
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 0, 0), 0);
    assert_int_equal(fold(&c, "d1", "zone-a", "1.0.0", T0 + 1000, 10), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.hw, 10);
    assert_entry(&c, "d1", "zone-a", "1.0.0", T0 + 1000, T0 + 1000);
    assert_int_equal(must_find(&c, "d1")->last_offset, 10);

    /* an older record (delivered later): first seen moves, zone and firmware stay */
    assert_int_equal(fold(&c, "d1", "zone-b", "0.9.0", T0 + 500, 11), 0);
    assert_entry(&c, "d1", "zone-a", "1.0.0", T0 + 500, T0 + 1000);
    assert_int_equal(must_find(&c, "d1")->last_offset, 10);
    assert_int_equal(c.hw, 11);

    /* the same time as the newest: the later offset wins */
    assert_int_equal(fold(&c, "d1", "zone-c", "1.1.0", T0 + 1000, 12), 0);
    assert_entry(&c, "d1", "zone-c", "1.1.0", T0 + 500, T0 + 1000);
    assert_int_equal(must_find(&c, "d1")->last_offset, 12);

    /* a newer record wins */
    assert_int_equal(fold(&c, "d1", "zone-d", "1.2.0", T0 + 2000, 13), 0);
    assert_entry(&c, "d1", "zone-d", "1.2.0", T0 + 500, T0 + 2000);
    assert_int_equal(c.hw, 13);

    /* offsets at or below hw are ignored, however new their record */
    assert_int_equal(fold(&c, "d1", "zone-x", "9.9.9", T0 + 9000, 13), 0);
    assert_int_equal(fold(&c, "d1", "zone-y", "9.9.9", T0 - 9000, 3), 0);
    assert_int_equal(fold(&c, "d2", "zone-y", "9.9.9", T0, 12), 0);
    assert_entry(&c, "d1", "zone-d", "1.2.0", T0 + 500, T0 + 2000);
    assert_null(pwc_census_find(&c, "d2"));
    assert_int_equal(c.n, 1);
    assert_int_equal(c.hw, 13);

    /* devices are kept apart */
    assert_int_equal(fold(&c, "d2", "zone-e", "2.0.0", T0 - 100, 20), 0);
    assert_int_equal(c.n, 2);
    assert_entry(&c, "d2", "zone-e", "2.0.0", T0 - 100, T0 - 100);
    assert_entry(&c, "d1", "zone-d", "1.2.0", T0 + 500, T0 + 2000);
    assert_null(pwc_census_find(&c, "d3"));
    pwc_census_free(&c);
    assert_int_equal(c.n, 0);
    assert_null(c.entries);
}

static void test_due_only_beyond_resolution(void **state)
{
    (void)state;
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 0, 3), 0);
    /* a new device is due */
    assert_int_equal(fold(&c, "d1", "z1", "1.0.0", T0, 1), 0);
    assert_int_equal(c.due, 1);
    assert_int_equal(must_find(&c, "d1")->unwritten, 1);
    assert_int_equal(pwc_census_next_version(&c), 1); /* new document: its hw */
    pwc_census_mark_written(&c, 0);
    assert_int_equal(c.due, 0);
    assert_int_equal(c.stored, 1);
    assert_int_equal(c.stored_v, 1);
    const pwc_census_entry *d = must_find(&c, "d1");
    assert_int_equal(d->unwritten, 0);
    assert_int_equal(d->w_first_ms, T0);
    assert_int_equal(d->w_last_ms, T0);

    /* last seen moves by less than the resolution: folded, not due */
    assert_int_equal(fold(&c, "d1", "z1", "1.0.0", T0 + RES / 2, 2), 0);
    assert_int_equal(c.due, 0);
    assert_int_equal(must_find(&c, "d1")->last_ms, T0 + RES / 2);
    assert_int_equal(must_find(&c, "d1")->w_last_ms, T0);
    assert_int_equal(fold(&c, "d1", "z1", "1.0.0", T0 + RES - 1, 3), 0);
    assert_int_equal(c.due, 0);
    /* ... and by the resolution from what was written (not from the last fold): due */
    assert_int_equal(fold(&c, "d1", "z1", "1.0.0", T0 + RES, 4), 0);
    assert_int_equal(c.due, 1);
    assert_int_equal(pwc_census_next_version(&c), 4);
    pwc_census_mark_written(&c, 0);
    assert_int_equal(c.due, 0);
    assert_int_equal(c.stored_v, 4);
    assert_int_equal(must_find(&c, "d1")->w_last_ms, T0 + RES);

    /* a zone change in a newer record is due at once */
    assert_int_equal(fold(&c, "d1", "z2", "1.0.0", T0 + RES + 1, 5), 0);
    assert_int_equal(c.due, 1);
    assert_int_equal(must_find(&c, "d1")->unwritten, 1);
    pwc_census_mark_written(&c, 0);
    assert_int_equal(c.stored_v, 5);
    /* so is a firmware change */
    assert_int_equal(fold(&c, "d1", "z2", "1.0.1", T0 + RES + 2, 6), 0);
    assert_int_equal(c.due, 1);
    pwc_census_mark_written(&c, 0);
    /* a change in an older record is no change */
    assert_int_equal(fold(&c, "d1", "z9", "0.0.1", T0 + RES - 5, 7), 0);
    assert_int_equal(c.due, 0);
    assert_entry(&c, "d1", "z2", "1.0.1", T0, T0 + RES + 2);
    /* the same zone and firmware again is no change either */
    assert_int_equal(fold(&c, "d1", "z2", "1.0.1", T0 + RES + 3, 8), 0);
    assert_int_equal(c.due, 0);
    /* first seen moving back by the resolution is due */
    assert_int_equal(fold(&c, "d1", "z2", "1.0.1", T0 - RES + 1, 9), 0);
    assert_int_equal(c.due, 0);
    assert_int_equal(fold(&c, "d1", "z2", "1.0.1", T0 - RES, 10), 0);
    assert_int_equal(c.due, 1);
    assert_entry(&c, "d1", "z2", "1.0.1", T0 - RES, T0 + RES + 3);
    pwc_census_mark_written(&c, 0);
    /* an ignored delivery changes nothing */
    assert_int_equal(fold(&c, "d9", "z9", "9.9.9", T0, 10), 0);
    assert_int_equal(c.due, 0);
    assert_int_equal(c.n, 1);
    /* another new device is due */
    assert_int_equal(fold(&c, "d2", "z2", "1.0.1", T0, 11), 0);
    assert_int_equal(c.due, 1);
    assert_int_equal(c.n, 2);

    /* written again with nothing new (hw unchanged): the version still grows */
    pwc_census_mark_written(&c, 0);
    assert_int_equal(c.stored_v, 11);
    assert_int_equal(pwc_census_next_version(&c), 12);
    pwc_census_mark_written(&c, 0);
    assert_int_equal(c.stored_v, 12);
    assert_int_equal(c.hw, 11);
    pwc_census_free(&c);
}

/* Time moves alone are written at most once per resolution; a new device,
 * a zone or a firmware change is written with its batch. */
static void test_write_due_throttles_time_moves(void **state)
{
    (void)state;
    const int64_t us = RES * 1000LL; /* the resolution in microseconds */
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 1, 2), 0);
    assert_int_equal(pwc_census_write_due(&c, 0), 0); /* nothing folded */
    assert_int_equal(fold(&c, "d1", "z1", "1.0.0", T0, 1), 0);
    assert_int_equal(c.urgent, 1); /* a new device */
    assert_int_equal(pwc_census_write_due(&c, 5), 1);
    pwc_census_mark_written(&c, 5);
    assert_int_equal(c.urgent, 0);
    assert_int_equal(c.written_us, 5);
    /* a time move beyond the resolution, soon after the write: waits */
    assert_int_equal(fold(&c, "d1", "z1", "1.0.0", T0 + RES, 2), 0);
    assert_int_equal(c.due, 1);
    assert_int_equal(c.urgent, 0);
    assert_int_equal(pwc_census_write_due(&c, 5 + us - 1), 0);
    assert_int_equal(pwc_census_write_due(&c, 5 + us), 1);
    /* a firmware change cannot wait */
    assert_int_equal(fold(&c, "d1", "z1", "1.0.1", T0 + RES + 1, 3), 0);
    assert_int_equal(c.urgent, 1);
    assert_int_equal(pwc_census_write_due(&c, 6), 1);
    pwc_census_mark_written(&c, 6);
    /* nor does a new device */
    assert_int_equal(fold(&c, "d2", "z1", "1.0.1", T0, 4), 0);
    assert_int_equal(pwc_census_write_due(&c, 7), 1);
    pwc_census_mark_written(&c, 7);
    /* small moves are never due, whatever the time */
    assert_int_equal(fold(&c, "d2", "z1", "1.0.1", T0 + RES / 2, 5), 0);
    assert_int_equal(pwc_census_write_due(&c, 7 + 10 * us), 0);
    pwc_census_free(&c);
}

static void test_doc_round_trip(void **state)
{
    (void)state;
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-alerts", 1, 5), 0);
    assert_int_equal(fold(&c, "d1", "zone-a", "1.0.0", T0 + 1000, 40), 0);
    assert_int_equal(fold(&c, "d2", "zone-b", "2.0.0-rc.1", T0 + 5000, 41), 0);
    assert_int_equal(fold(&c, "d1", "zone-a", "1.0.1", T0 + 90000, 42), 0);
    assert_int_equal(fold(&c, "d3", "", "", T0 - 7, 44), 0);

    bson_t doc;
    assert_int_equal(pwc_census_doc(&c, 0, &doc), 0);
    assert_string_equal(utf8_of(&doc, PW_F_ID), "sensor-alerts:1|5");
    assert_string_equal(utf8_of(&doc, PW_F_TP), "sensor-alerts:1");
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &doc, PW_F_SHARD));
    assert_true(BSON_ITER_HOLDS_INT32(&it));
    assert_int_equal(bson_iter_int32(&it), 5);
    assert_int_equal(i64_of(&doc, PW_F_HW), 44);
    assert_int_equal(i64_of(&doc, PW_F_VERSION), 44);
    assert_int_equal(i64_of(&doc, PW_F_COUNT), 3);

    /* the packed state: an iot.v1.DeviceCensus in columns, sorted by last
     * seen — d3 (T0 - 7), d2 (T0 + 5000), d1 (T0 + 90000) */
    Iot__V1__DeviceCensus *m = state_of(&doc, NULL);
    assert_columns(m, 3);
    const char *ids[] = {"d3", "d2", "d1"};
    assert_dictionary(m->device_ids, m->n_device_ids, ids, 3);
    const char *zones[] = {"", "zone-a", "zone-b"};
    assert_dictionary(m->zones, m->n_zones, zones, 3);
    const char *firmwares[] = {"", "1.0.1", "2.0.0-rc.1"};
    assert_dictionary(m->firmwares, m->n_firmwares, firmwares, 3);
    const uint32_t zone[] = {0, 2, 1}, firmware[] = {0, 2, 1};
    const int64_t delta[] = {T0 - 7, 5007, 85000}, seen_for[] = {0, 0, 89000};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(m->zone[i], zone[i]);
        assert_int_equal(m->firmware[i], firmware[i]);
        assert_int_equal(m->last_seen_delta_ms[i], delta[i]);
        assert_int_equal(m->seen_for_ms[i], seen_for[i]);
    }
    iot__v1__device_census__free_unpacked(m, NULL);

    /* for_set: the same without _id */
    bson_t set;
    assert_int_equal(pwc_census_doc(&c, 1, &set), 0);
    assert_false(bson_iter_init_find(&it, &set, PW_F_ID));
    assert_int_equal(bson_count_keys(&set) + 1, bson_count_keys(&doc));
    assert_int_equal(i64_of(&set, PW_F_HW), 44);

    /* doc → state */
    pwc_census back;
    assert_int_equal(pwc_census_init(&back, "sensor-alerts", 1, 5), 0);
    assert_int_equal(pwc_census_from_doc(&back, &doc), 0);
    assert_string_equal(back.key, "sensor-alerts:1|5");
    assert_int_equal(back.shard, 5);
    assert_int_equal(back.stored, 1);
    assert_int_equal(back.stored_v, 44);
    assert_int_equal(back.hw, 44);
    assert_int_equal(back.due, 0);
    assert_int_equal(back.n, 3);
    assert_entry(&back, "d1", "zone-a", "1.0.1", T0 + 1000, T0 + 90000);
    assert_entry(&back, "d2", "zone-b", "2.0.0-rc.1", T0 + 5000, T0 + 5000);
    assert_entry(&back, "d3", "", "", T0 - 7, T0 - 7);
    for (size_t i = 0; i < back.n; i++) {
        assert_int_equal(back.entries[i].unwritten, 0);
        assert_int_equal(back.entries[i].w_first_ms, back.entries[i].first_ms);
        assert_int_equal(back.entries[i].w_last_ms, back.entries[i].last_ms);
    }
    /* what was read counts as written: a small move is not due, a new device is */
    assert_int_equal(fold(&back, "d2", "zone-b", "2.0.0-rc.1", T0 + 6000, 45), 0);
    assert_int_equal(back.due, 0);
    assert_int_equal(fold(&back, "d4", "zone-b", "2.0.0", T0, 46), 0);
    assert_int_equal(back.due, 1);
    /* redelivered offsets of the stored document are ignored */
    assert_int_equal(fold(&back, "d5", "zone-b", "2.0.0", T0, 44), 0);
    assert_null(pwc_census_find(&back, "d5"));

    /* state → doc → state: the same entries */
    bson_t doc2;
    assert_int_equal(pwc_census_doc(&back, 0, &doc2), 0);
    assert_int_equal(i64_of(&doc2, PW_F_HW), 46);
    assert_int_equal(i64_of(&doc2, PW_F_VERSION), 46);
    assert_int_equal(i64_of(&doc2, PW_F_COUNT), 4);
    assert_int_equal(pwc_census_from_doc(&back, &doc2), 0); /* replaces the entries */
    assert_int_equal(back.n, 4);
    assert_entry(&back, "d2", "zone-b", "2.0.0-rc.1", T0 + 5000, T0 + 6000);
    assert_entry(&back, "d4", "zone-b", "2.0.0", T0, T0);
    /* rewriting a stored state as it is raises the version past the stored one */
    assert_int_equal(pwc_census_next_version(&back), 47);
    bson_t doc3;
    assert_int_equal(pwc_census_doc(&back, 1, &doc3), 0);
    assert_int_equal(i64_of(&doc3, PW_F_VERSION), 47);
    assert_int_equal(i64_of(&doc3, PW_F_HW), 46);

    /* no document: an empty state */
    assert_int_equal(pwc_census_from_doc(&back, NULL), 0);
    assert_int_equal(back.n, 0);
    assert_int_equal(back.stored, 0);
    assert_int_equal(back.hw, -1);
    assert_int_equal(back.stored_v, -1);
    assert_null(pwc_census_find(&back, "d1"));
    assert_string_equal(back.key, "sensor-alerts:1|5");

    bson_destroy(&doc3);
    bson_destroy(&doc2);
    bson_destroy(&set);
    bson_destroy(&doc);
    pwc_census_free(&back);
    pwc_census_free(&c);
}

static void test_doc_sorted_columns_and_ties(void **state)
{
    (void)state;
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 3, 2), 0);
    /* folded out of order; three devices share last seen T0 + 300, two T0 + 100 */
    assert_int_equal(fold(&c, "m", "zone-b", "1.0.0", T0, 1), 0);
    assert_int_equal(fold(&c, "m", "zone-b", "1.0.0", T0 + 300, 2), 0);
    assert_int_equal(fold(&c, "z", "zone-a", "2.0.0", T0 + 100, 3), 0);
    assert_int_equal(fold(&c, "z", "zone-x", "9.0.0", T0 - 1000, 4), 0); /* older: first only */
    assert_int_equal(fold(&c, "b", "zone-b", "0.9.0", T0 + 50, 5), 0);
    assert_int_equal(fold(&c, "k", "zone-a", "1.0.0", T0 + 300, 6), 0);
    assert_int_equal(fold(&c, "b", "zone-b", "0.9.0", T0 + 5000, 7), 0);
    assert_int_equal(fold(&c, "a", "Zone-C", "1.0.0", T0 + 300, 8), 0);
    assert_int_equal(fold(&c, "c", "zone-a", "2.0.0", T0 + 100, 9), 0);
    assert_int_equal(c.n, 6);

    bson_t doc;
    assert_int_equal(pwc_census_doc(&c, 0, &doc), 0);
    uint32_t len1 = 0;
    Iot__V1__DeviceCensus *m = state_of(&doc, &len1);
    assert_columns(m, 6);
    /* by last seen, ties by device id */
    const char *ids[] = {"c", "z", "a", "k", "m", "b"};
    assert_dictionary(m->device_ids, m->n_device_ids, ids, 6);
    /* the dictionaries: distinct, sorted bytewise ('Z' < 'z'); "zone-x" and
     * "9.0.0" came with an older record and are nobody's */
    const char *zones[] = {"Zone-C", "zone-a", "zone-b"};
    assert_dictionary(m->zones, m->n_zones, zones, 3);
    const char *firmwares[] = {"0.9.0", "1.0.0", "2.0.0"};
    assert_dictionary(m->firmwares, m->n_firmwares, firmwares, 3);
    const uint32_t zone[] = {1, 1, 0, 1, 2, 2}, firmware[] = {2, 2, 1, 1, 1, 0};
    /* the first entry's last seen minus 0, then differences (0 for ties) */
    const int64_t delta[] = {T0 + 100, 0, 200, 0, 0, 4700};
    const int64_t seen_for[] = {0, 1100, 0, 0, 300, 4950};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(m->zone[i], zone[i]);
        assert_int_equal(m->firmware[i], firmware[i]);
        assert_int_equal(m->last_seen_delta_ms[i], delta[i]);
        assert_int_equal(m->seen_for_ms[i], seen_for[i]);
    }
    iot__v1__device_census__free_unpacked(m, NULL);

    /* doc → state: last seen is the running sum, first seen last - seen_for */
    pwc_census back;
    assert_int_equal(pwc_census_init(&back, "sensor-telemetry", 3, 2), 0);
    assert_int_equal(pwc_census_from_doc(&back, &doc), 0);
    assert_int_equal(back.n, 6);
    assert_entry(&back, "c", "zone-a", "2.0.0", T0 + 100, T0 + 100);
    assert_entry(&back, "z", "zone-a", "2.0.0", T0 - 1000, T0 + 100);
    assert_entry(&back, "a", "Zone-C", "1.0.0", T0 + 300, T0 + 300);
    assert_entry(&back, "k", "zone-a", "1.0.0", T0 + 300, T0 + 300);
    assert_entry(&back, "m", "zone-b", "1.0.0", T0, T0 + 300);
    assert_entry(&back, "b", "zone-b", "0.9.0", T0 + 50, T0 + 5000);

    /* the state does not depend on the order the entries were added in:
     * back holds them sorted, c in folding order, and both pack the same */
    bson_t doc2;
    assert_int_equal(pwc_census_doc(&back, 0, &doc2), 0);
    bson_iter_t a, b;
    assert_true(bson_iter_init_find(&a, &doc, PW_F_STATE));
    assert_true(bson_iter_init_find(&b, &doc2, PW_F_STATE));
    bson_subtype_t sub;
    uint32_t la = 0, lb = 0;
    const uint8_t *da = NULL, *db = NULL;
    bson_iter_binary(&a, &sub, &la, &da);
    bson_iter_binary(&b, &sub, &lb, &db);
    assert_int_equal(la, len1);
    assert_int_equal(lb, la);
    assert_memory_equal(da, db, la);

    bson_destroy(&doc2);
    bson_destroy(&doc);
    pwc_census_free(&back);
    pwc_census_free(&c);
}

static void test_from_doc_decodes_columns(void **state)
{
    (void)state;
    /* written by hand: deltas are summed in order (whatever their sign),
     * dictionary entries are shared */
    columns k = {
        .ids = {"p", "q", "r", "s", "t"},
        .zones = {"z0", "z1"},
        .firmwares = {"f0"},
        .zone = {1, 0, 1, 1, 0},
        .firmware = {0, 0, 0, 0, 0},
        .delta = {T0, 0, 1500, 1LL << 33, -20},
        .seen_for = {10, 0, 3000, (1LL << 33) + 1500, 0},
    };
    Iot__V1__DeviceCensus m = message_of(&k, 5, 2, 1);
    bson_t *doc = doc_with_state(&m);
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 0, 2), 0);
    assert_int_equal(pwc_census_from_doc(&c, doc), 0);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.hw, 50);
    assert_entry(&c, "p", "z1", "f0", T0 - 10, T0);
    assert_entry(&c, "q", "z0", "f0", T0, T0);
    assert_entry(&c, "r", "z1", "f0", T0 - 1500, T0 + 1500);
    assert_entry(&c, "s", "z1", "f0", T0, T0 + 1500 + (1LL << 33));
    assert_entry(&c, "t", "z0", "f0", T0 + 1480 + (1LL << 33), T0 + 1480 + (1LL << 33));
    for (size_t i = 0; i < c.n; i++) {
        assert_int_equal(c.entries[i].unwritten, 0);
        assert_int_equal(c.entries[i].w_first_ms, c.entries[i].first_ms);
        assert_int_equal(c.entries[i].w_last_ms, c.entries[i].last_ms);
    }
    bson_destroy(doc);

    /* a state of subtype 0 (the message as is, from before the change) reads the same */
    size_t len = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *raw = malloc(len);
    assert_non_null(raw);
    protobuf_c_message_pack(&m.base, raw);
    doc = BCON_NEW("hw", BCON_INT64(51));
    BSON_APPEND_BINARY(doc, PW_F_STATE, BSON_SUBTYPE_BINARY, raw, len);
    free(raw);
    assert_int_equal(pwc_census_from_doc(&c, doc), 0);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.hw, 51);
    assert_entry(&c, "s", "z1", "f0", T0, T0 + 1500 + (1LL << 33));
    assert_entry(&c, "t", "z0", "f0", T0 + 1480 + (1LL << 33), T0 + 1480 + (1LL << 33));
    bson_destroy(doc);

    /* no entries at all (dictionaries without users are harmless) */
    m = message_of(&k, 0, 2, 1);
    doc = doc_with_state(&m);
    assert_int_equal(pwc_census_from_doc(&c, doc), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(c.stored, 1);
    bson_destroy(doc);
    pwc_census_free(&c);
}

static void test_columns_that_disagree(void **state)
{
    (void)state;
    columns k = {
        .ids = {"d1", "d2", "d3"},
        .zones = {"za", "zb"},
        .firmwares = {"1.0.0", "2.0.0"},
        .zone = {0, 1, 1},
        .firmware = {1, 0, 1},
        .delta = {T0, 10, 20},
        .seen_for = {0, 5, 5},
    };
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 0, 2), 0);

    /* the reference: consistent columns are read */
    Iot__V1__DeviceCensus m = message_of(&k, 3, 2, 2);
    bson_t *doc = doc_with_state(&m);
    assert_int_equal(pwc_census_from_doc(&c, doc), 0);
    assert_int_equal(c.n, 3);
    assert_entry(&c, "d3", "zb", "2.0.0", T0 + 25, T0 + 30);
    bson_destroy(doc);

    for (int which = 0; which < 11; which++) {
        m = message_of(&k, 3, 2, 2);
        switch (which) {
        case 0: /* one device id fewer than the other columns */
            m.n_device_ids = 2;
            break;
        case 1: /* a zone index missing */
            m.n_zone = 2;
            break;
        case 2: /* a firmware index too many */
            m.n_firmware = 4;
            break;
        case 3: /* a last seen missing */
            m.n_last_seen_delta_ms = 2;
            break;
        case 4: /* no seen_for at all */
            m.n_seen_for_ms = 0;
            break;
        case 5: /* only device ids */
            m.n_zone = m.n_firmware = m.n_last_seen_delta_ms = m.n_seen_for_ms = 0;
            break;
        case 6: /* a zone index just beyond its dictionary */
            k.zone[2] = 2;
            break;
        case 7: /* a firmware index far beyond it */
            k.firmware[0] = 1000;
            break;
        case 8: /* an empty zone dictionary */
            m.n_zones = 0;
            break;
        case 9: /* an empty firmware dictionary */
            m.n_firmwares = 0;
            break;
        case 10: /* the largest index */
            k.zone[1] = UINT32_MAX;
            break;
        }
        doc = doc_with_state(&m);
        if (pwc_census_from_doc(&c, doc) != -1) {
            fail_msg("columns case %d was read", which);
        }
        bson_destroy(doc);
        k.zone[0] = 0, k.zone[1] = 1, k.zone[2] = 1;
        k.firmware[0] = 1;
    }
    pwc_census_free(&c);
}

static void test_state_that_does_not_decode(void **state)
{
    (void)state;
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 0, 1), 0);
    bson_t *doc = BCON_NEW("_id", "sensor-telemetry:0|1", "hw", BCON_INT64(3), "state", "text");
    assert_int_equal(pwc_census_from_doc(&c, doc), -1);
    assert_int_equal(c.n, 0);
    bson_destroy(doc);

    static const uint8_t garbage[] = {0x0a, 0x40, 0x0a, 0x02, 'd'};
    doc = BCON_NEW("hw", BCON_INT64(3));
    BSON_APPEND_BINARY(doc, PW_F_STATE, BSON_SUBTYPE_BINARY, garbage, sizeof(garbage));
    assert_int_equal(pwc_census_from_doc(&c, doc), -1);
    assert_int_equal(c.n, 0);
    bson_destroy(doc);

    /* subtype 0x80 that is no deflated message: too short, not a zlib
     * stream, or a stream of another length than its prefix says */
    static const uint8_t short3[] = {0x05, 0x00, 0x00};
    static const uint8_t not_zlib[] = {0x05, 0x00, 0x00, 0x00, 0x0a, 0x03, 'd', 'e', 'v'};
    const uint8_t *bins[] = {short3, not_zlib};
    const size_t lens[] = {sizeof(short3), sizeof(not_zlib)};
    for (size_t i = 0; i < 2; i++) {
        doc = BCON_NEW("hw", BCON_INT64(3));
        assert_true(
            bson_append_binary(doc, PW_F_STATE, -1, PW_STORE_SUBTYPE_DEFLATED, bins[i], lens[i]));
        assert_int_equal(pwc_census_from_doc(&c, doc), -1);
        assert_int_equal(c.n, 0);
        bson_destroy(doc);
    }
    /* a valid census deflated with a prefix one byte too long */
    columns k = {.ids = {"d1"}, .zones = {"z"}, .firmwares = {"f"}, .delta = {T0}};
    Iot__V1__DeviceCensus m = message_of(&k, 1, 1, 1);
    doc = doc_with_state(&m);
    assert_int_equal(pwc_census_from_doc(&c, doc), 0); /* as written: read */
    assert_int_equal(c.n, 1);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, PW_F_STATE));
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(&it, &sub, &len, &data);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, data, len);
    copy[0]++;
    bson_destroy(doc);
    doc = BCON_NEW("hw", BCON_INT64(3));
    assert_true(bson_append_binary(doc, PW_F_STATE, -1, PW_STORE_SUBTYPE_DEFLATED, copy, len));
    free(copy);
    assert_int_equal(pwc_census_from_doc(&c, doc), -1);
    assert_int_equal(c.n, 0);
    bson_destroy(doc);

    /* no state: a stored document without devices */
    doc = BCON_NEW("hw", BCON_INT64(3), "_v", BCON_INT64(5));
    assert_int_equal(pwc_census_from_doc(&c, doc), 0);
    assert_int_equal(c.stored, 1);
    assert_int_equal(c.hw, 3);
    assert_int_equal(c.stored_v, 5);
    assert_int_equal(c.n, 0);
    assert_int_equal(pwc_census_next_version(&c), 6);
    bson_destroy(doc);
    pwc_census_free(&c);
}

static void test_many_devices(void **state)
{
    (void)state;
    enum { N = 5000, SHARD = 3 };
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 0, SHARD), 0);
    /* the ids of one shard, as the consumer feeds them (they share their
     * hash's low bits) */
    static char ids[N][24];
    int n = 0;
    for (int i = 0; n < N; i++) {
        char id[24];
        snprintf(id, sizeof(id), "device-%06d", i);
        if (pwc_census_shard(id) == SHARD) {
            memcpy(ids[n++], id, sizeof(id));
        }
    }
    for (int i = 0; i < N; i++) {
        char zone[16], fw[16];
        snprintf(zone, sizeof(zone), "zone-%d", i % 7);
        snprintf(fw, sizeof(fw), "1.%d.0", i % 5);
        assert_int_equal(fold(&c, ids[i], zone, fw, T0 + i, 1000 + i), 0);
    }
    /* every device a second time, newer: zone and firmware move on */
    for (int i = 0; i < N; i++) {
        assert_int_equal(fold(&c, ids[i], "zone-new", "2.0.0", T0 + N + i, 1000 + N + i), 0);
    }
    assert_int_equal(c.n, N);
    assert_true(c.nindex >= 2 * c.n); /* at most half full */
    assert_int_equal(c.hw, 1000 + 2 * N - 1);
    for (int i = 0; i < N; i++) {
        assert_entry(&c, ids[i], "zone-new", "2.0.0", T0 + i, T0 + N + i);
    }
    assert_null(pwc_census_find(&c, "device-missing"));

    bson_t doc;
    assert_int_equal(pwc_census_doc(&c, 0, &doc), 0);
    assert_int_equal(i64_of(&doc, PW_F_COUNT), N);
    /* in columns: the order of last seen is the order of ids[], one zone and
     * one firmware, last seen one apart, each seen for N ms */
    uint32_t len = 0;
    Iot__V1__DeviceCensus *m = state_of(&doc, &len);
    assert_columns(m, N);
    assert_int_equal(m->n_zones, 1);
    assert_string_equal(m->zones[0], "zone-new");
    assert_int_equal(m->n_firmwares, 1);
    assert_string_equal(m->firmwares[0], "2.0.0");
    for (int i = 0; i < N; i++) {
        assert_string_equal(m->device_ids[i], ids[i]);
        assert_int_equal(m->zone[i], 0);
        assert_int_equal(m->firmware[i], 0);
        assert_int_equal(m->last_seen_delta_ms[i], i == 0 ? T0 + N : 1);
        assert_int_equal(m->seen_for_ms[i], N);
    }
    /* deflating pays: the columns of ids that differ in a few digits */
    assert_true(len < protobuf_c_message_get_packed_size(&m->base) / 2);
    iot__v1__device_census__free_unpacked(m, NULL);
    pwc_census back;
    assert_int_equal(pwc_census_init(&back, "sensor-telemetry", 0, SHARD), 0);
    assert_int_equal(pwc_census_from_doc(&back, &doc), 0);
    assert_int_equal(back.n, N);
    for (int i = 0; i < N; i++) {
        assert_entry(&back, ids[i], "zone-new", "2.0.0", T0 + i, T0 + N + i);
    }
    bson_destroy(&doc);
    pwc_census_free(&back);
    pwc_census_free(&c);
}

/* A flood of new devices with long ids into one shard: the document stays
 * within its bound, what did not fit is counted, the devices already in the
 * census keep being updated, and a round trip through the document keeps
 * the accounting. */
static void test_bound_under_a_device_flood(void **state)
{
    (void)state;
    enum { N = 6000, SHARD = 5 };
    pwc_census c;
    assert_int_equal(pwc_census_init(&c, "sensor-telemetry", 0, SHARD), 0);
    char pad[201];
    memset(pad, 'x', 200);
    pad[200] = '\0';
    int64_t off = 0, folded = 0;
    char first[PW_MAX_ID_BYTES + 1] = "";
    for (int i = 0; folded < N; i++) {
        char id[PW_MAX_ID_BYTES + 1];
        snprintf(id, sizeof(id), "flood-%07d-%s", i, pad);
        if (pwc_census_shard(id) != SHARD) {
            continue;
        }
        if (!first[0]) {
            snprintf(first, sizeof(first), "%s", id);
        }
        assert_int_equal(fold(&c, id, "zone-a", "1.0.0", T0 + folded, off++), 0);
        folded++;
    }
    assert_true(c.n < N);
    assert_true(c.n > 2000);
    assert_int_equal(c.overflowed, N - (int64_t)c.n);
    assert_true(c.bytes <= PWC_CENSUS_BUDGET - PWC_CENSUS_RESERVE);
    /* a device already in the census still moves on */
    assert_int_equal(fold(&c, first, "zone-b", "2.0.0", T0 + N, off++), 0);
    assert_entry(&c, first, "zone-b", "2.0.0", T0, T0 + N);
    bson_t doc;
    assert_int_equal(pwc_census_doc(&c, 0, &doc), 0);
    assert_true(doc.len <= 1024 * 1024);
    size_t n = c.n, bytes = c.bytes;
    assert_int_equal(pwc_census_from_doc(&c, &doc), 0);
    assert_int_equal(c.n, n);
    assert_true(c.bytes == bytes);
    bson_destroy(&doc);
    pwc_census_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_and_key),
        cmocka_unit_test(test_newest_record_wins),
        cmocka_unit_test(test_due_only_beyond_resolution),
        cmocka_unit_test(test_write_due_throttles_time_moves),
        cmocka_unit_test(test_doc_round_trip),
        cmocka_unit_test(test_doc_sorted_columns_and_ties),
        cmocka_unit_test(test_from_doc_decodes_columns),
        cmocka_unit_test(test_columns_that_disagree),
        cmocka_unit_test(test_state_that_does_not_decode),
        cmocka_unit_test(test_many_devices),
        cmocka_unit_test(test_bound_under_a_device_flood),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for mx_fleet: merging device census shards (as the store hands
 * them, packed iot.v1.DeviceCensus messages unpacked with protobuf-c) into
 * one entry per device — the newest last seen wins zone and firmware, a tie
 * goes to the greater "<topic>:<partition>", first seen is the oldest — and
 * a fleet of thousands of devices over many shards (index growth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iot/v1/storage.pb-c.h"
#include "mx_fleet.h"

#define T0 1795600800000LL /* 2026-11-25T10:00:00Z */

typedef struct {
    const char *device, *zone, *firmware;
    int64_t first_ms, last_ms;
} spec;

/* The census message of specs as the store holds it: packed, then unpacked
 * (the fleet frees it with protobuf_c_message_free_unpacked). */
static Iot__V1__DeviceCensus *census_of(const spec *specs, size_t n)
{
    Iot__V1__DeviceEntry *items = calloc(n ? n : 1, sizeof(*items));
    Iot__V1__DeviceEntry **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    assert_non_null(items);
    assert_non_null(ptrs);
    for (size_t i = 0; i < n; i++) {
        iot__v1__device_entry__init(&items[i]);
        items[i].device_id = (char *)specs[i].device;
        items[i].zone = (char *)specs[i].zone;
        items[i].firmware = (char *)specs[i].firmware;
        items[i].first_seen_ms = specs[i].first_ms;
        items[i].last_seen_ms = specs[i].last_ms;
        ptrs[i] = &items[i];
    }
    Iot__V1__DeviceCensus m = IOT__V1__DEVICE_CENSUS__INIT;
    m.n_devices = n;
    m.devices = ptrs;
    size_t len = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(&m.base, buf), len);
    free(items);
    free(ptrs);
    ProtobufCMessage *out =
        protobuf_c_message_unpack(&iot__v1__device_census__descriptor, NULL, len, buf);
    free(buf);
    assert_non_null(out);
    return (Iot__V1__DeviceCensus *)out;
}

static void add(mx_fleet *f, const char *tp, const spec *specs, size_t n)
{
    assert_int_equal(mx_fleet_add_shard(f, census_of(specs, n), tp), 0);
}

static const mx_device *find(const mx_fleet *f, const char *device)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i].device, device) == 0) {
            return &f->v[i];
        }
    }
    fail_msg("device %s not in the fleet", device);
    return NULL;
}

static void assert_device(const mx_fleet *f, const char *device, const char *zone,
                          const char *firmware, const char *tp, int64_t first_ms, int64_t last_ms)
{
    const mx_device *d = find(f, device);
    assert_string_equal(d->zone, zone);
    assert_string_equal(d->firmware, firmware);
    assert_string_equal(d->tp, tp);
    assert_int_equal(d->first_ms, first_ms);
    assert_int_equal(d->last_ms, last_ms);
}

static void test_newest_entry_wins(void **state)
{
    (void)state;
    mx_fleet f;
    mx_fleet_init(&f);
    const spec tele[] = {
        {"d1", "zone-a", "1.0.0", T0 + 100, T0 + 500},
        {"d2", "zone-a", "1.0.0", T0 + 100, T0 + 200},
        {"d3", "zone-c", "3.0.0", T0, T0 + 50},
    };
    const spec alerts[] = {
        {"d1", "zone-b", "1.1.0", T0 + 50, T0 + 400},  /* older last seen: loses, oldest first */
        {"d2", "zone-b", "1.1.0", T0 + 150, T0 + 900}, /* newer: wins zone and firmware */
        {"d4", "zone-d", "4.0.0", T0 + 7, T0 + 8},     /* only here */
    };
    add(&f, "sensor-telemetry:0", tele, 3);
    assert_int_equal(f.n, 3);
    add(&f, "sensor-alerts:1", alerts, 3);
    assert_int_equal(f.n, 4);
    assert_int_equal(f.nshards, 2);
    assert_device(&f, "d1", "zone-a", "1.0.0", "sensor-telemetry:0", T0 + 50, T0 + 500);
    assert_device(&f, "d2", "zone-b", "1.1.0", "sensor-alerts:1", T0 + 100, T0 + 900);
    assert_device(&f, "d3", "zone-c", "3.0.0", "sensor-telemetry:0", T0, T0 + 50);
    assert_device(&f, "d4", "zone-d", "4.0.0", "sensor-alerts:1", T0 + 7, T0 + 8);

    /* the same merged the other way round */
    mx_fleet g;
    mx_fleet_init(&g);
    add(&g, "sensor-alerts:1", alerts, 3);
    add(&g, "sensor-telemetry:0", tele, 3);
    assert_int_equal(g.n, 4);
    assert_device(&g, "d1", "zone-a", "1.0.0", "sensor-telemetry:0", T0 + 50, T0 + 500);
    assert_device(&g, "d2", "zone-b", "1.1.0", "sensor-alerts:1", T0 + 100, T0 + 900);
    assert_device(&g, "d4", "zone-d", "4.0.0", "sensor-alerts:1", T0 + 7, T0 + 8);
    mx_fleet_free(&g);

    mx_fleet_free(&f);
    assert_int_equal(f.n, 0);
    assert_int_equal(f.nshards, 0);
    assert_null(f.v);
    assert_null(f.shards);
}

static void test_tie_goes_to_the_greater_partition(void **state)
{
    (void)state;
    const spec a[] = {{"d1", "zone-a", "1.0.0", T0 + 10, T0 + 500}};
    const spec b[] = {{"d1", "zone-b", "2.0.0", T0 + 20, T0 + 500}};
    for (int order = 0; order < 2; order++) {
        mx_fleet f;
        mx_fleet_init(&f);
        if (order == 0) {
            add(&f, "sensor-alerts:1", a, 1);
            add(&f, "sensor-telemetry:0", b, 1);
        } else {
            add(&f, "sensor-telemetry:0", b, 1);
            add(&f, "sensor-alerts:1", a, 1);
        }
        assert_int_equal(f.n, 1);
        /* "sensor-telemetry:0" > "sensor-alerts:1" */
        assert_device(&f, "d1", "zone-b", "2.0.0", "sensor-telemetry:0", T0 + 10, T0 + 500);
        mx_fleet_free(&f);
    }
    /* the comparison is of the strings: ":2" > ":10" */
    mx_fleet f;
    mx_fleet_init(&f);
    add(&f, "sensor-telemetry:2", a, 1);
    add(&f, "sensor-telemetry:10", b, 1);
    assert_device(&f, "d1", "zone-a", "1.0.0", "sensor-telemetry:2", T0 + 10, T0 + 500);
    mx_fleet_free(&f);
}

static void test_partition_is_copied_and_empty_shards_count(void **state)
{
    (void)state;
    mx_fleet f;
    mx_fleet_init(&f);
    char tp[32];
    snprintf(tp, sizeof(tp), "sensor-telemetry:0");
    const spec s[] = {{"d1", "zone-a", "", T0, T0}};
    add(&f, tp, s, 1);
    snprintf(tp, sizeof(tp), "overwritten:9");
    assert_device(&f, "d1", "zone-a", "", "sensor-telemetry:0", T0, T0);
    add(&f, "sensor-telemetry:1", s, 0); /* a shard without devices */
    assert_int_equal(f.nshards, 2);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.tps[0], "sensor-telemetry:0");
    assert_string_equal(f.tps[1], "sensor-telemetry:1");
    mx_fleet_free(&f);
}

static void test_many_devices_over_many_shards(void **state)
{
    (void)state;
    enum { N = 6000, SHARDS = 16, TELE = 3, ALERTS = 2 };
    static char ids[N][16];
    static char fws[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "dev-%05d", i);
        snprintf(fws[i], sizeof(fws[i]), "1.%d.0", i % 10);
    }
    spec *specs = calloc(N, sizeof(*specs));
    assert_non_null(specs);
    mx_fleet f;
    mx_fleet_init(&f);
    char tp[32];
    /* telemetry: every device, on partition i % 3 */
    for (int p = 0; p < TELE; p++) {
        snprintf(tp, sizeof(tp), "sensor-telemetry:%d", p);
        for (int s = 0; s < SHARDS; s++) {
            size_t n = 0;
            for (int i = 0; i < N; i++) {
                if (i % TELE == p && i % SHARDS == s) {
                    specs[n++] =
                        (spec){ids[i], "zone-t", fws[i], T0 + i, T0 + 1000000 + (i % 4) * 10};
                }
            }
            add(&f, tp, specs, n);
        }
    }
    assert_int_equal(f.n, N);
    /* alerts: the devices with i % 7 != 0, on partition i % 2 */
    for (int p = 0; p < ALERTS; p++) {
        snprintf(tp, sizeof(tp), "sensor-alerts:%d", p);
        for (int s = 0; s < SHARDS; s++) {
            size_t n = 0;
            for (int i = 0; i < N; i++) {
                if (i % 7 != 0 && i % ALERTS == p && i % SHARDS == s) {
                    int64_t first = i % 5 == 0 ? T0 + i - 1 : T0 + i + 1;
                    specs[n++] =
                        (spec){ids[i], "zone-a", "2.0.0", first, T0 + 1000000 + (i % 3) * 10};
                }
            }
            add(&f, tp, specs, n);
        }
    }
    free(specs);
    assert_int_equal(f.nshards, (TELE + ALERTS) * SHARDS);
    assert_int_equal(f.n, N); /* every device once */
    assert_true(f.nindex >= 2 * f.n);

    static int seen[N];
    memset(seen, 0, sizeof(seen));
    int alerts_won = 0;
    for (size_t k = 0; k < f.n; k++) {
        const mx_device *d = &f.v[k];
        int i = atoi(d->device + 4);
        assert_in_range(i, 0, N - 1);
        assert_string_equal(d->device, ids[i]);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        int64_t tlast = T0 + 1000000 + (i % 4) * 10, alast = T0 + 1000000 + (i % 3) * 10;
        int in_alerts = i % 7 != 0;
        int64_t afirst = i % 5 == 0 ? T0 + i - 1 : T0 + i + 1;
        /* ties (equal last seen) go to telemetry: "sensor-telemetry" > "sensor-alerts" */
        if (in_alerts && alast > tlast) {
            alerts_won++;
            assert_string_equal(d->zone, "zone-a");
            assert_string_equal(d->firmware, "2.0.0");
            assert_int_equal(d->last_ms, alast);
            snprintf(tp, sizeof(tp), "sensor-alerts:%d", i % ALERTS);
        } else {
            assert_string_equal(d->zone, "zone-t");
            assert_string_equal(d->firmware, fws[i]);
            assert_int_equal(d->last_ms, tlast);
            snprintf(tp, sizeof(tp), "sensor-telemetry:%d", i % TELE);
        }
        assert_string_equal(d->tp, tp);
        assert_int_equal(d->first_ms, in_alerts && afirst < T0 + i ? afirst : T0 + i);
    }
    assert_true(alerts_won > 0 && alerts_won < N);
    mx_fleet_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newest_entry_wins),
        cmocka_unit_test(test_tie_goes_to_the_greater_partition),
        cmocka_unit_test(test_partition_is_copied_and_empty_shards_count),
        cmocka_unit_test(test_many_devices_over_many_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for mx_fleet: merging device census shards (as the store hands
 * them: columnar iot.v1.DeviceCensus messages written with
 * pw_store_append_packed and read with pw_store_unpack) into one entry per
 * device — the newest last seen wins zone and firmware, a tie goes to the
 * greater "<topic>:<partition>", first seen is the oldest — the columns
 * decoded (dictionaries, last seen as deltas, first seen = last seen -
 * seen_for), shards whose columns disagree refused, and a fleet of
 * thousands of devices over the PW_CENSUS_SHARDS shards of several
 * partitions (index growth). */
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
#include "pw_schema.h"
#include "pw_store.h"

#define T0 1795600800000LL /* 2026-11-25T10:00:00Z */

typedef struct {
    const char *device, *zone, *firmware;
    int64_t first_ms, last_ms;
} spec;

/* m as the store hands it: written with pw_store_append_packed (deflated),
 * read back with pw_store_unpack (the fleet frees it with
 * protobuf_c_message_free_unpacked). */
static Iot__V1__DeviceCensus *through_store(const Iot__V1__DeviceCensus *m)
{
    bson_t doc = BSON_INITIALIZER;
    assert_int_equal(pw_store_append_packed(&doc, PW_F_STATE, &m->base), 0);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &doc, PW_F_STATE));
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(&it, &sub, &len, &data);
    assert_int_equal(sub, PW_STORE_SUBTYPE_DEFLATED);
    int bad = 0;
    ProtobufCMessage *out =
        pw_store_unpack(&doc, PW_F_STATE, &iot__v1__device_census__descriptor, &bad);
    assert_int_equal(bad, 0);
    assert_non_null(out);
    bson_destroy(&doc);
    return (Iot__V1__DeviceCensus *)out;
}

static int by_last_seen(const void *a, const void *b)
{
    const spec *x = a, *y = b;
    if (x->last_ms != y->last_ms) {
        return x->last_ms < y->last_ms ? -1 : 1;
    }
    return strcmp(x->device, y->device);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted distinct strings of in[0..n) into out (room for n); their number. */
static size_t dictionary(char **in, size_t n, char **out)
{
    memcpy(out, in, n * sizeof(*out));
    qsort(out, n, sizeof(*out), by_string);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m == 0 || strcmp(out[m - 1], out[i]) != 0) {
            out[m++] = out[i];
        }
    }
    return m;
}

static uint32_t index_in(char **dict, size_t n, const char *s)
{
    char **hit = bsearch(&s, dict, n, sizeof(*dict), by_string);
    assert_non_null(hit);
    return (uint32_t)(hit - dict);
}

/* The census message of specs in the consumer's layout — entries sorted by
 * last seen then device id, sorted distinct zone and firmware dictionaries,
 * last seen as deltas, seen_for = last - first — as the store hands it. */
static Iot__V1__DeviceCensus *census_of(const spec *specs, size_t n)
{
    size_t cap = n ? n : 1;
    spec *sorted = malloc(cap * sizeof(*sorted));
    char **ids = malloc(cap * sizeof(char *)), **scratch = malloc(cap * sizeof(char *));
    char **zones = malloc(cap * sizeof(char *)), **fws = malloc(cap * sizeof(char *));
    uint32_t *zone = malloc(cap * sizeof(uint32_t)), *fw = malloc(cap * sizeof(uint32_t));
    int64_t *delta = malloc(cap * sizeof(int64_t)), *seen_for = malloc(cap * sizeof(int64_t));
    assert_true(sorted && ids && scratch && zones && fws && zone && fw && delta && seen_for);
    memcpy(sorted, specs, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_last_seen);
    for (size_t i = 0; i < n; i++) {
        scratch[i] = (char *)sorted[i].zone;
    }
    size_t nz = dictionary(scratch, n, zones);
    for (size_t i = 0; i < n; i++) {
        scratch[i] = (char *)sorted[i].firmware;
    }
    size_t nf = dictionary(scratch, n, fws);
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = (char *)sorted[i].device;
        zone[i] = index_in(zones, nz, sorted[i].zone);
        fw[i] = index_in(fws, nf, sorted[i].firmware);
        delta[i] = sorted[i].last_ms - prev;
        seen_for[i] = sorted[i].last_ms - sorted[i].first_ms;
        prev = sorted[i].last_ms;
    }
    Iot__V1__DeviceCensus m = IOT__V1__DEVICE_CENSUS__INIT;
    m.n_device_ids = m.n_zone = m.n_firmware = m.n_last_seen_delta_ms = m.n_seen_for_ms = n;
    m.device_ids = ids;
    m.n_zones = nz;
    m.zones = zones;
    m.n_firmwares = nf;
    m.firmwares = fws;
    m.zone = zone;
    m.firmware = fw;
    m.last_seen_delta_ms = delta;
    m.seen_for_ms = seen_for;
    Iot__V1__DeviceCensus *out = through_store(&m);
    free(sorted);
    free(ids);
    free(scratch);
    free(zones);
    free(fws);
    free(zone);
    free(fw);
    free(delta);
    free(seen_for);
    return out;
}

/* FNV-1a, 32 bits: the census shard of a device is this mod PW_CENSUS_SHARDS. */
static uint32_t fnv1a(const char *s)
{
    uint32_t h = 0x811c9dc5u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x01000193u;
    }
    return h;
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

static void test_census_layout_of_a_shard(void **state)
{
    (void)state;
    /* the helper writes what the consumer writes: checked once here */
    const spec s[] = {
        {"d9", "zone-b", "2.0.0", T0 + 100, T0 + 900},
        {"d2", "zone-a", "1.0.0", T0, T0 + 300},
        {"d1", "zone-b", "1.0.0", T0 + 300, T0 + 300}, /* ties with d2: d1 first */
        {"d5", "Zone-Z", "", T0 - 50, T0 - 10},
    };
    Iot__V1__DeviceCensus *m = census_of(s, 4);
    assert_int_equal(m->n_device_ids, 4);
    const char *ids[] = {"d5", "d1", "d2", "d9"};
    const char *zones[] = {"Zone-Z", "zone-a", "zone-b"};
    const char *fws[] = {"", "1.0.0", "2.0.0"};
    const uint32_t zone[] = {0, 2, 1, 2}, fw[] = {0, 1, 1, 2};
    const int64_t delta[] = {T0 - 10, 310, 0, 600}, seen_for[] = {40, 0, 300, 800};
    assert_int_equal(m->n_zones, 3);
    assert_int_equal(m->n_firmwares, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(m->zones[i], zones[i]);
        assert_string_equal(m->firmwares[i], fws[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(m->device_ids[i], ids[i]);
        assert_int_equal(m->zone[i], zone[i]);
        assert_int_equal(m->firmware[i], fw[i]);
        assert_int_equal(m->last_seen_delta_ms[i], delta[i]);
        assert_int_equal(m->seen_for_ms[i], seen_for[i]);
    }
    /* and the fleet decodes it back to the specs */
    mx_fleet f;
    mx_fleet_init(&f);
    assert_int_equal(mx_fleet_add_shard(&f, m, "sensor-telemetry:4"), 0);
    assert_int_equal(f.n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_device(&f, s[i].device, s[i].zone, s[i].firmware, "sensor-telemetry:4",
                      s[i].first_ms, s[i].last_ms);
    }
    mx_fleet_free(&f);
}

/* The columns of a hand-made census message (all of length n). */
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

static void test_columns_decoded(void **state)
{
    (void)state;
    /* deltas are summed in order (whatever their sign: the fleet does not
     * rely on the order), first seen is last seen minus seen_for, entries
     * share dictionary strings */
    columns k = {
        .ids = {"p", "q", "r", "s", "t"},
        .zones = {"z0", "z1"},
        .firmwares = {"f0", "f1"},
        .zone = {1, 0, 1, 1, 0},
        .firmware = {0, 1, 1, 0, 0},
        .delta = {T0, 0, 1500, 1LL << 33, -20},
        .seen_for = {10, 0, 3000, (1LL << 33) + 1500, 0},
    };
    Iot__V1__DeviceCensus m = message_of(&k, 5, 2, 2);
    mx_fleet f;
    mx_fleet_init(&f);
    assert_int_equal(mx_fleet_add_shard(&f, through_store(&m), "sensor-alerts:0"), 0);
    assert_int_equal(f.n, 5);
    assert_device(&f, "p", "z1", "f0", "sensor-alerts:0", T0 - 10, T0);
    assert_device(&f, "q", "z0", "f1", "sensor-alerts:0", T0, T0);
    assert_device(&f, "r", "z1", "f1", "sensor-alerts:0", T0 - 1500, T0 + 1500);
    assert_device(&f, "s", "z1", "f0", "sensor-alerts:0", T0, T0 + 1500 + (1LL << 33));
    assert_device(&f, "t", "z0", "f0", "sensor-alerts:0", T0 + 1480 + (1LL << 33),
                  T0 + 1480 + (1LL << 33));
    /* the strings point into the shard's dictionaries */
    const Iot__V1__DeviceCensus *kept = f.shards[0];
    assert_ptr_equal(find(&f, "p")->zone, kept->zones[1]);
    assert_ptr_equal(find(&f, "r")->zone, kept->zones[1]);
    assert_ptr_equal(find(&f, "q")->firmware, kept->firmwares[1]);

    /* a second shard of the same devices: the columns of each decoded apart */
    columns k2 = {
        .ids = {"q", "p"},
        .zones = {"z9"},
        .firmwares = {"f9"},
        .delta = {T0 + 1, 0},
        .seen_for = {2, 100},
    };
    m = message_of(&k2, 2, 1, 1);
    assert_int_equal(mx_fleet_add_shard(&f, through_store(&m), "sensor-alerts:1"), 0);
    assert_int_equal(f.n, 5);
    assert_device(&f, "q", "z9", "f9", "sensor-alerts:1", T0 - 1, T0 + 1);
    assert_device(&f, "p", "z9", "f9", "sensor-alerts:1", T0 - 99, T0 + 1);
    mx_fleet_free(&f);
}

static void test_columns_that_disagree_fail(void **state)
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
    mx_fleet f;
    mx_fleet_init(&f);
    const spec s[] = {{"d0", "zone-a", "1.0.0", T0, T0}};
    add(&f, "sensor-telemetry:0", s, 1);

    for (int which = 0; which < 11; which++) {
        Iot__V1__DeviceCensus m = message_of(&k, 3, 2, 2);
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
        Iot__V1__DeviceCensus *in = through_store(&m);
        size_t nshards = f.nshards;
        if (mx_fleet_add_shard(&f, in, "sensor-telemetry:1") != -1) {
            fail_msg("columns case %d was merged", which);
        }
        /* owned by the fleet all the same (mx_fleet_free frees it: the
         * sanitizer build's leak check would see it otherwise), and none of
         * its devices merged */
        assert_int_equal(f.nshards, nshards + 1);
        assert_ptr_equal(f.shards[nshards], in);
        assert_int_equal(f.n, 1);
        k.zone[0] = 0, k.zone[1] = 1, k.zone[2] = 1;
        k.firmware[0] = 1;
    }
    /* the reference: the same columns, consistent, merge */
    Iot__V1__DeviceCensus m = message_of(&k, 3, 2, 2);
    assert_int_equal(mx_fleet_add_shard(&f, through_store(&m), "sensor-telemetry:1"), 0);
    assert_int_equal(f.n, 4);
    assert_device(&f, "d3", "zb", "2.0.0", "sensor-telemetry:1", T0 + 25, T0 + 30);
    assert_device(&f, "d0", "zone-a", "1.0.0", "sensor-telemetry:0", T0, T0);
    mx_fleet_free(&f);
}

static void test_many_devices_over_many_shards(void **state)
{
    (void)state;
    enum { N = 6000, SHARDS = PW_CENSUS_SHARDS, TELE = 3, ALERTS = 2 };
    assert_int_equal(SHARDS, 8);
    static char ids[N][16];
    static char fws[N][16];
    static int shard[N];
    int per_shard[SHARDS] = {0};
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "dev-%05d", i);
        snprintf(fws[i], sizeof(fws[i]), "1.%d.0", i % 10);
        shard[i] = (int)(fnv1a(ids[i]) % SHARDS); /* as the consumer shards them */
        per_shard[shard[i]]++;
    }
    for (int s = 0; s < SHARDS; s++) {
        assert_true(per_shard[s] > N / SHARDS / 2); /* every shard holds devices */
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
                if (i % TELE == p && shard[i] == s) {
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
                if (i % 7 != 0 && i % ALERTS == p && shard[i] == s) {
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
        cmocka_unit_test(test_census_layout_of_a_shard),
        cmocka_unit_test(test_columns_decoded),
        cmocka_unit_test(test_columns_that_disagree_fail),
        cmocka_unit_test(test_many_devices_over_many_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

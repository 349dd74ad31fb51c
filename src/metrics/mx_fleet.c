/* mx_fleet: merging census shards into one entry per device (see mx_fleet.h). */
#include "mx_fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_schema.h"

void mx_fleet_init(mx_fleet *f)
{
    memset(f, 0, sizeof(*f));
}

void mx_fleet_free(mx_fleet *f)
{
    for (size_t i = 0; i < f->nshards; i++) {
        protobuf_c_message_free_unpacked(&f->shards[i]->base, NULL);
        free(f->tps[i]);
    }
    free(f->shards);
    free(f->tps);
    free(f->v);
    free(f->index);
    mx_fleet_init(f);
}

static uint32_t *slot_of(const mx_fleet *f, const char *device)
{
    size_t mask = f->nindex - 1;
    for (size_t i = pw_store_fnv1a32(device) & mask;; i = (i + 1) & mask) {
        uint32_t v = f->index[i];
        if (v == 0 || strcmp(f->v[v - 1].device, device) == 0) {
            return &f->index[i];
        }
    }
}

static int reserve(mx_fleet *f, size_t more)
{
    if (f->n + more > f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap < f->n + more) {
            cap *= 2;
        }
        mx_device *v = realloc(f->v, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        f->v = v;
        f->cap = cap;
    }
    if ((f->n + more) * 2 <= f->nindex) {
        return 0;
    }
    size_t n = f->nindex ? f->nindex : 512;
    while ((f->n + more) * 2 > n) {
        n *= 2;
    }
    uint32_t *idx = calloc(n, sizeof(*idx));
    if (idx == NULL) {
        return -1;
    }
    free(f->index);
    f->index = idx;
    f->nindex = n;
    for (size_t i = 0; i < f->n; i++) {
        *slot_of(f, f->v[i].device) = (uint32_t)(i + 1);
    }
    return 0;
}

/* 1 when the entry (last_ms, tp) is newer than d. */
static int newer(const mx_device *d, int64_t last_ms, const char *tp)
{
    return last_ms > d->last_ms || (last_ms == d->last_ms && strcmp(tp, d->tp) > 0);
}

/* One census entry, as the shard's columns give it. */
typedef struct {
    const char *device, *zone, *firmware;
    int64_t first_ms, last_ms;
} census_entry;

static void merge(mx_fleet *f, const census_entry *e, const char *tp)
{
    uint32_t *slot = slot_of(f, e->device);
    if (*slot == 0) {
        mx_device *d = &f->v[f->n];
        d->device = e->device;
        d->zone = e->zone;
        d->firmware = e->firmware;
        d->first_ms = e->first_ms;
        d->last_ms = e->last_ms;
        d->tp = tp;
        *slot = (uint32_t)(++f->n);
        return;
    }
    mx_device *d = &f->v[*slot - 1];
    if (e->first_ms < d->first_ms) {
        d->first_ms = e->first_ms;
    }
    if (newer(d, e->last_ms, tp)) {
        d->zone = e->zone;
        d->firmware = e->firmware;
        d->last_ms = e->last_ms;
        d->tp = tp;
    }
}

/* 1 when the shard's columns agree with each other. */
static int columns_valid(const Iot__V1__DeviceCensus *m)
{
    size_t n = m->n_device_ids;
    if (m->n_zone != n || m->n_firmware != n || m->n_last_seen_delta_ms != n ||
        m->n_seen_for_ms != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (m->zone[i] >= m->n_zones || m->firmware[i] >= m->n_firmwares) {
            return 0;
        }
    }
    return 1;
}

int mx_fleet_add_shard(mx_fleet *f, Iot__V1__DeviceCensus *m, const char *tp)
{
    char *tpc = strdup(tp);
    if (f->nshards == f->capshards && tpc != NULL) {
        size_t cap = f->capshards ? f->capshards * 2 : 16;
        Iot__V1__DeviceCensus **s = realloc(f->shards, cap * sizeof(*s));
        char **t = s ? realloc(f->tps, cap * sizeof(*t)) : NULL;
        if (s != NULL) {
            f->shards = s;
        }
        if (t != NULL) {
            f->tps = t;
            f->capshards = cap;
        }
    }
    if (tpc == NULL || f->nshards == f->capshards) {
        free(tpc);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return -1;
    }
    f->tps[f->nshards] = tpc;
    f->shards[f->nshards++] = m;
    if (!columns_valid(m) || reserve(f, m->n_device_ids) != 0) {
        return -1;
    }
    int64_t last = 0, first;
    for (size_t i = 0; i < m->n_device_ids; i++) {
        if (__builtin_add_overflow(last, m->last_seen_delta_ms[i], &last) ||
            __builtin_sub_overflow(last, m->seen_for_ms[i], &first)) {
            return -1; /* a corrupt shard: times beyond int64 */
        }
        census_entry e = {m->device_ids[i], m->zones[m->zone[i]], m->firmwares[m->firmware[i]],
                          first, last};
        merge(f, &e, tpc);
    }
    return 0;
}

int mx_fleet_load(mx_store *store, mx_fleet *f, int64_t deadline_us, char *err, size_t errlen)
{
    bson_t *opts = BCON_NEW("projection", "{", PW_F_ID, BCON_INT32(0), PW_F_TP, BCON_INT32(1),
                            PW_F_STATE, BCON_INT32(1), "}");
    int rc = mx_store_limit(store, opts, deadline_us, err, errlen);
    if (rc != 0) {
        bson_destroy(opts);
        return rc;
    }
    mongoc_client_t *client = mx_store_pop(store);
    mongoc_collection_t *coll = mx_store_collection(store, client, PW_COLL_CENSUS);
    bson_t filter = BSON_INITIALIZER;
    mx_store_check(store, coll, &filter, "device census", 1);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
    const bson_t *doc;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        int bad = 0;
        Iot__V1__DeviceCensus *m = (Iot__V1__DeviceCensus *)pw_store_unpack(
            doc, PW_F_STATE, &iot__v1__device_census__descriptor, &bad);
        if (bad) {
            snprintf(err, errlen, "a %s document does not decode", PW_COLL_CENSUS);
            rc = -1;
        } else if (m != NULL && mx_fleet_add_shard(f, m, mx_bson_str(doc, PW_F_TP, "")) != 0) {
            snprintf(err, errlen, "a %s document is inconsistent (or out of memory)",
                     PW_COLL_CENSUS);
            rc = -1;
        }
    }
    bson_error_t error;
    if (mongoc_cursor_error(cur, &error)) {
        rc = mx_store_failure(store, &error, deadline_us, err, errlen);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    mx_store_push(store, client);
    return rc;
}

/* census: device census states per partition shard — keys, folding,
 * documents with their packed state (see census.h). */
#include "census.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iot/v1/storage.pb-c.h"
#include "pw_schema.h"
#include "pw_store.h"

int pwc_census_shard(const char *device)
{
    return (int)(pw_store_fnv1a32(device) % PW_CENSUS_SHARDS);
}

void pwc_census_key(const char *topic, int32_t partition, int shard, char *out, size_t outlen)
{
    char tp[PWC_ORIGIN_LEN];
    pwc_tp_key(topic, partition, tp, sizeof(tp));
    snprintf(out, outlen, "%s|%d", tp, shard);
}

int pwc_census_init(pwc_census *c, const char *topic, int32_t partition, int shard)
{
    memset(c, 0, sizeof(*c));
    pwc_census_key(topic, partition, shard, c->key, sizeof(c->key));
    pwc_tp_key(topic, partition, c->tp, sizeof(c->tp));
    c->shard = shard;
    c->hw = -1;
    c->stored_v = -1;
    return 0;
}

void pwc_census_free(pwc_census *c)
{
    free(c->entries);
    free(c->index);
    c->entries = NULL;
    c->index = NULL;
    c->n = c->cap = c->nindex = 0;
    c->bytes = 0;
}

/* The index's start slot: the shard hash mixed (all devices of one shard
 * share its low bits). */
static size_t index_start(const char *device)
{
    uint32_t h = pw_store_fnv1a32(device);
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

static uint32_t *slot_of(const pwc_census *c, const char *device)
{
    size_t mask = c->nindex - 1;
    for (size_t i = index_start(device) & mask;; i = (i + 1) & mask) {
        uint32_t v = c->index[i];
        if (v == 0 || strcmp(c->entries[v - 1].device, device) == 0) {
            return &c->index[i];
        }
    }
}

/* Keeps the index at most half full. 0 or -1. */
static int index_grow(pwc_census *c)
{
    if (c->nindex && (c->n + 1) * 2 <= c->nindex) {
        return 0;
    }
    size_t n = c->nindex ? c->nindex * 2 : 64;
    uint32_t *idx = calloc(n, sizeof(*idx));
    if (!idx) {
        return -1;
    }
    free(c->index);
    c->index = idx;
    c->nindex = n;
    for (size_t i = 0; i < c->n; i++) {
        *slot_of(c, c->entries[i].device) = (uint32_t)(i + 1);
    }
    return 0;
}

/* The entry of device, added empty (first_ms = INT64_MAX) when missing. */
static pwc_census_entry *entry_get(pwc_census *c, const char *device)
{
    if (index_grow(c) != 0) {
        return NULL;
    }
    uint32_t *slot = slot_of(c, device);
    if (*slot) {
        return &c->entries[*slot - 1];
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        pwc_census_entry *e = realloc(c->entries, cap * sizeof(*e));
        if (!e) {
            return NULL;
        }
        c->entries = e;
        c->cap = cap;
    }
    pwc_census_entry *e = &c->entries[c->n];
    memset(e, 0, sizeof(*e));
    snprintf(e->device, sizeof(e->device), "%s", device);
    e->first_ms = INT64_MAX;
    e->last_ms = INT64_MIN;
    e->last_offset = -1;
    e->unwritten = 1;
    *slot = (uint32_t)(++c->n);
    return e;
}

const pwc_census_entry *pwc_census_find(const pwc_census *c, const char *device)
{
    if (c->nindex == 0) {
        return NULL;
    }
    uint32_t v = *slot_of(c, device);
    return v ? &c->entries[v - 1] : NULL;
}

static int moved(int64_t now, int64_t written)
{
    int64_t d = now > written ? now - written : written - now;
    return d >= PWC_CENSUS_RESOLUTION_MS;
}

static size_t entry_bytes(const char *device, const char *zone, const char *firmware)
{
    return strlen(device) + strlen(zone) + strlen(firmware) + 32;
}

/* The newest zone and firmware of d, when the shard's bound allows the
 * change; else the old ones stay (counted in overflowed). */
static void take_zone_firmware(pwc_census *c, pwc_census_entry *d, const pwc_record *r)
{
    if (strcmp(d->zone, r->zone) == 0 && strcmp(d->firmware, r->firmware) == 0) {
        return;
    }
    size_t old = entry_bytes(d->device, d->zone, d->firmware);
    size_t now = entry_bytes(d->device, r->zone, r->firmware);
    if (now > old && c->bytes + (now - old) > PWC_CENSUS_BUDGET) {
        c->overflowed++;
        return;
    }
    c->bytes = c->bytes - old + now;
    d->unwritten = 1;
    snprintf(d->zone, sizeof(d->zone), "%s", r->zone);
    snprintf(d->firmware, sizeof(d->firmware), "%s", r->firmware);
}

int pwc_census_fold(pwc_census *c, const pwc_entry *e)
{
    if (e->offset <= c->hw) {
        return 0;
    }
    const pwc_record *r = e->rec;
    c->hw = e->offset;
    int fresh = pwc_census_find(c, r->device) == NULL;
    if (fresh && c->bytes + entry_bytes(r->device, r->zone, r->firmware) >
                     PWC_CENSUS_BUDGET - PWC_CENSUS_RESERVE) {
        c->overflowed++;
        return 0;
    }
    pwc_census_entry *d = entry_get(c, r->device);
    if (!d) {
        return -1;
    }
    if (fresh) {
        c->bytes += entry_bytes(d->device, "", ""); /* zone and firmware: take_zone_firmware */
    }
    if (r->ts_ms < d->first_ms) {
        d->first_ms = r->ts_ms;
    }
    if (r->ts_ms >= d->last_ms) {
        d->last_ms = r->ts_ms;
        d->last_offset = e->offset;
        take_zone_firmware(c, d, r);
    }
    if (d->unwritten) {
        c->urgent = 1; /* a new device, or its zone or firmware changed */
    }
    if (d->unwritten || moved(d->first_ms, d->w_first_ms) || moved(d->last_ms, d->w_last_ms)) {
        c->due = 1;
    }
    return 0;
}

int64_t pwc_census_next_version(const pwc_census *c)
{
    return c->stored && c->stored_v >= c->hw ? c->stored_v + 1 : c->hw;
}

int pwc_census_write_due(const pwc_census *c, int64_t now_us)
{
    return c->urgent || (c->due && now_us - c->written_us >= PWC_CENSUS_RESOLUTION_MS * 1000LL);
}

void pwc_census_mark_written(pwc_census *c, int64_t now_us)
{
    int64_t v = pwc_census_next_version(c);
    for (size_t i = 0; i < c->n; i++) {
        c->entries[i].w_first_ms = c->entries[i].first_ms;
        c->entries[i].w_last_ms = c->entries[i].last_ms;
        c->entries[i].unwritten = 0;
    }
    c->due = 0;
    c->urgent = 0;
    c->written_us = now_us;
    c->stored = 1;
    c->stored_v = v;
}

/* Adds the entries of a census message to c (as written). 0 or -1. */
static int entries_from_pb(pwc_census *c, const Iot__V1__DeviceCensus *m)
{
    int64_t last = 0;
    size_t n = m->n_device_ids;
    if (m->n_zone != n || m->n_firmware != n || m->n_last_seen_delta_ms != n ||
        m->n_seen_for_ms != n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (m->zone[i] >= m->n_zones || m->firmware[i] >= m->n_firmwares) {
            return -1;
        }
        pwc_census_entry *d = entry_get(c, m->device_ids[i]);
        if (!d) {
            return -1;
        }
        int64_t first;
        if (__builtin_add_overflow(last, m->last_seen_delta_ms[i], &last) ||
            __builtin_sub_overflow(last, m->seen_for_ms[i], &first)) {
            return -1;
        }
        snprintf(d->zone, sizeof(d->zone), "%s", m->zones[m->zone[i]]);
        snprintf(d->firmware, sizeof(d->firmware), "%s", m->firmwares[m->firmware[i]]);
        c->bytes += entry_bytes(d->device, d->zone, d->firmware);
        d->last_ms = d->w_last_ms = last;
        d->first_ms = d->w_first_ms = first;
        d->unwritten = 0;
    }
    return 0;
}

int pwc_census_from_doc(pwc_census *c, const bson_t *doc)
{
    pwc_census_free(c);
    c->hw = -1;
    c->stored = doc != NULL;
    c->stored_v = -1;
    c->due = 0;
    c->urgent = 0;
    if (!doc) {
        return 0;
    }
    pw_store_versions(doc, &c->hw, &c->stored_v);
    int bad = 0;
    Iot__V1__DeviceCensus *m = (Iot__V1__DeviceCensus *)pw_store_unpack(
        doc, PW_F_STATE, &iot__v1__device_census__descriptor, &bad);
    int rc = bad ? -1 : 0;
    if (m) {
        rc = entries_from_pb(c, m);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    return rc;
}

/* The columns of a census message, pointing into c's entries. */
typedef struct {
    Iot__V1__DeviceCensus msg;
    const pwc_census_entry **order; /* by last seen */
    char **ids, **zones, **firmwares;
    uint32_t *zone, *firmware;
    int64_t *delta, *seen_for;
} census_pb;

static int cmp_last(const void *a, const void *b)
{
    const pwc_census_entry *x = *(const pwc_census_entry *const *)a;
    const pwc_census_entry *y = *(const pwc_census_entry *const *)b;
    if (x->last_ms != y->last_ms) {
        return x->last_ms < y->last_ms ? -1 : 1;
    }
    return strcmp(x->device, y->device);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted distinct strings of in[0..n) into out; their number. */
static size_t dictionary(char **in, size_t n, char **out)
{
    memcpy(out, in, n * sizeof(*out));
    qsort(out, n, sizeof(*out), cmp_str);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m == 0 || strcmp(out[m - 1], out[i]) != 0) {
            out[m++] = out[i];
        }
    }
    return m;
}

static uint32_t dict_index(char **dict, size_t n, const char *s)
{
    char **hit = bsearch(&s, dict, n, sizeof(*dict), cmp_str);
    return hit ? (uint32_t)(hit - dict) : 0;
}

static void census_pb_free(census_pb *p)
{
    free(p->order);
    free(p->ids);
    free(p->zones);
    free(p->firmwares);
    free(p->zone);
    free(p->firmware);
    free(p->delta);
    free(p->seen_for);
}

static int census_pb_fill(const pwc_census *c, census_pb *p)
{
    size_t n = c->n, cap = n ? n : 1;
    memset(p, 0, sizeof(*p));
    iot__v1__device_census__init(&p->msg);
    p->order = malloc(cap * sizeof(*p->order));
    p->ids = malloc(cap * sizeof(char *));
    p->zones = malloc(cap * sizeof(char *));
    p->firmwares = malloc(cap * sizeof(char *));
    p->zone = malloc(cap * sizeof(uint32_t));
    p->firmware = malloc(cap * sizeof(uint32_t));
    p->delta = malloc(cap * sizeof(int64_t));
    p->seen_for = malloc(cap * sizeof(int64_t));
    if (!p->order || !p->ids || !p->zones || !p->firmwares || !p->zone || !p->firmware ||
        !p->delta || !p->seen_for) {
        census_pb_free(p);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        p->order[i] = &c->entries[i];
    }
    qsort(p->order, n, sizeof(*p->order), cmp_last);
    for (size_t i = 0; i < n; i++) {
        p->ids[i] = (char *)p->order[i]->zone; /* scratch: the zone column first */
    }
    size_t nz = dictionary(p->ids, n, p->zones);
    for (size_t i = 0; i < n; i++) {
        p->ids[i] = (char *)p->order[i]->firmware;
    }
    size_t nf = dictionary(p->ids, n, p->firmwares);
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        const pwc_census_entry *d = p->order[i];
        p->ids[i] = (char *)d->device;
        p->zone[i] = dict_index(p->zones, nz, d->zone);
        p->firmware[i] = dict_index(p->firmwares, nf, d->firmware);
        p->delta[i] = d->last_ms - prev;
        p->seen_for[i] = d->last_ms - d->first_ms;
        prev = d->last_ms;
    }
    p->msg.n_device_ids = n;
    p->msg.device_ids = p->ids;
    p->msg.n_zones = nz;
    p->msg.zones = p->zones;
    p->msg.n_firmwares = nf;
    p->msg.firmwares = p->firmwares;
    p->msg.n_zone = n;
    p->msg.zone = p->zone;
    p->msg.n_firmware = n;
    p->msg.firmware = p->firmware;
    p->msg.n_last_seen_delta_ms = n;
    p->msg.last_seen_delta_ms = p->delta;
    p->msg.n_seen_for_ms = n;
    p->msg.seen_for_ms = p->seen_for;
    return 0;
}

int pwc_census_doc(const pwc_census *c, int for_set, bson_t *doc)
{
    census_pb p;
    if (census_pb_fill(c, &p) != 0) {
        return -1;
    }
    bson_init(doc);
    if (!for_set) {
        BSON_APPEND_UTF8(doc, PW_F_ID, c->key);
    }
    BSON_APPEND_UTF8(doc, PW_F_TP, c->tp);
    BSON_APPEND_INT32(doc, PW_F_SHARD, c->shard);
    BSON_APPEND_INT64(doc, PW_F_HW, c->hw);
    BSON_APPEND_INT64(doc, PW_F_VERSION, pwc_census_next_version(c));
    BSON_APPEND_INT64(doc, PW_F_COUNT, (int64_t)c->n);
    int rc = pw_store_append_packed(doc, PW_F_STATE, &p.msg.base);
    census_pb_free(&p);
    if (rc != 0) {
        bson_destroy(doc);
    }
    return rc;
}

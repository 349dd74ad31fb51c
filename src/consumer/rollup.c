/* rollup: bucket keys, grouping, state folding, and the bucket documents
 * with their packed state (see rollup.h). */
#include "rollup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iot/v1/storage.pb-c.h"
#include "pw_schema.h"
#include "pw_store.h"

static const char *const collections[PWC_ROLLUP_KINDS] = {PW_COLL_ROLLUP_READINGS,
                                                          PW_COLL_ROLLUP_ALERTS};

const char *pwc_rollup_collection(pwc_rollup_kind k)
{
    return collections[k];
}

int pwc_rollup_key(pwc_rollup_kind k, pwc_rollup_res res, const pwc_entry *e, char *out,
                   size_t outlen)
{
    if (e->rec->kind != (k == PWC_ROLLUP_READINGS ? PWC_READING : PWC_ALERT)) {
        return -1;
    }
    char tp[PWC_ORIGIN_LEN];
    pwc_tp_key(e->topic, e->partition, tp, sizeof(tp));
    int n = res == PWC_RES_HOUR ? snprintf(out, outlen, "h|%lld|%s", (long long)e->rec->hour_ms, tp)
                                : snprintf(out, outlen, "d|%s|%s", e->rec->day, tp);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

int pwc_device_day_key(const pwc_record *r, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s|%s", r->day, r->device);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

typedef struct {
    char key[PWC_ROLLUP_KEY_LEN];
    size_t idx;
} keyed_entry;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) {
        return c;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Fills out->items from m sorted keyed entries. 0 or -1. */
static int groups_from_sorted(const keyed_entry *ke, size_t m, pwc_rollup_groups *out)
{
    out->items = calloc(m ? m : 1, sizeof(*out->items));
    if (!out->items) {
        return -1;
    }
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && strcmp(ke[j].key, ke[i].key) == 0) {
            j++;
        }
        pwc_rollup_group *g = &out->items[out->n++];
        memcpy(g->key, ke[i].key, sizeof(g->key));
        g->idx = malloc((j - i) * sizeof(size_t));
        if (!g->idx) {
            return -1;
        }
        for (size_t q = i; q < j; q++) {
            g->idx[g->n++] = ke[q].idx;
        }
        i = j;
    }
    return 0;
}

int pwc_rollup_group_entries(pwc_rollup_kind k, pwc_rollup_res res, const pwc_entry *entries,
                             size_t n, pwc_rollup_groups *out)
{
    memset(out, 0, sizeof(*out));
    keyed_entry *ke = calloc(n ? n : 1, sizeof(*ke));
    if (!ke) {
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!entries[i].contributes && !entries[i].new_device) {
            continue;
        }
        if (pwc_rollup_key(k, res, &entries[i], ke[m].key, sizeof(ke[m].key)) != 0) {
            continue;
        }
        ke[m++].idx = i;
    }
    qsort(ke, m, sizeof(*ke), keyed_cmp);
    int rc = groups_from_sorted(ke, m, out);
    free(ke);
    if (rc != 0) {
        pwc_rollup_groups_free(out);
    }
    return rc;
}

void pwc_rollup_groups_free(pwc_rollup_groups *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->items[i].idx);
    }
    free(g->items);
    memset(g, 0, sizeof(*g));
}

void pwc_rollup_state_init(pwc_rollup_state *s)
{
    memset(s, 0, sizeof(*s));
    s->hw = -1;
}

void pwc_rollup_state_free(pwc_rollup_state *s)
{
    for (size_t i = 0; i < s->shares.n; i++) {
        free(s->shares.items[i].consumer);
    }
    free(s->shares.items);
    free(s->cells.items);
    free(s->devices.items);
    pwc_rollup_state_init(s);
}

static pwc_rollup_cell *cell_add(pwc_rollup_cells *a)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        pwc_rollup_cell *c = realloc(a->items, cap * sizeof(*c));
        if (!c) {
            return NULL;
        }
        a->items = c;
        a->cap = cap;
    }
    pwc_rollup_cell *c = &a->items[a->n++];
    memset(c, 0, sizeof(*c));
    return c;
}

/* Packed size of a cell: its strings plus field tags, lengths, the count
 * varint and three doubles, with room to spare. */
static size_t cell_bytes(const char *zone, const char *label, const char *code)
{
    return strlen(zone) + strlen(label) + strlen(code) + 48;
}

/* Packed size of a share: the consumer name plus tags, length and varint. */
static size_t share_bytes(const char *consumer)
{
    return strlen(consumer) + 16;
}

static size_t state_bytes(const pwc_rollup_state *s)
{
    size_t b = 0;
    for (size_t i = 0; i < s->shares.n; i++) {
        b += share_bytes(s->shares.items[i].consumer);
    }
    for (size_t i = 0; i < s->cells.n; i++) {
        const pwc_rollup_cell *c = &s->cells.items[i];
        b += cell_bytes(c->zone, c->label, c->code);
    }
    for (size_t i = 0; i < s->devices.n; i++) {
        b += cell_bytes(s->devices.items[i].zone, "", "");
    }
    return b;
}

static int cells_from_pb(Iot__V1__RollupCell **in, size_t n, pwc_rollup_cells *a)
{
    for (size_t i = 0; i < n; i++) {
        pwc_rollup_cell *c = cell_add(a);
        if (!c) {
            return -1;
        }
        snprintf(c->zone, sizeof(c->zone), "%s", in[i]->zone);
        snprintf(c->label, sizeof(c->label), "%s", in[i]->label);
        snprintf(c->code, sizeof(c->code), "%s", in[i]->code);
        c->count = in[i]->count;
        c->sum = in[i]->sum;
        c->min = in[i]->min;
        c->max = in[i]->max;
    }
    return 0;
}

static pwc_rollup_share *share_add(pwc_rollup_shares *a, const char *consumer, uint64_t bytes)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        pwc_rollup_share *x = realloc(a->items, cap * sizeof(*x));
        if (!x) {
            return NULL;
        }
        a->items = x;
        a->cap = cap;
    }
    char *name = strdup(consumer);
    if (!name) {
        return NULL;
    }
    pwc_rollup_share *sh = &a->items[a->n++];
    sh->consumer = name;
    sh->bytes = bytes;
    return sh;
}

static int shares_from_pb(Iot__V1__KeyShare **in, size_t n, pwc_rollup_shares *a)
{
    for (size_t i = 0; i < n; i++) {
        if (!share_add(a, in[i]->consumer, in[i]->bytes)) {
            return -1;
        }
    }
    return 0;
}

static int devices_from_pb(Iot__V1__ZoneCount **in, size_t n, pwc_rollup_cells *a)
{
    for (size_t i = 0; i < n; i++) {
        pwc_rollup_cell *c = cell_add(a);
        if (!c) {
            return -1;
        }
        snprintf(c->zone, sizeof(c->zone), "%s", in[i]->zone);
        c->count = in[i]->count;
    }
    return 0;
}

int pwc_rollup_state_from_doc(pwc_rollup_kind k, const bson_t *doc, pwc_rollup_state *s)
{
    (void)k;
    bson_iter_t it;
    pwc_rollup_state_init(s);
    if (!doc) {
        return 0;
    }
    s->stored = 1;
    pw_store_versions(doc, &s->hw, &s->stored_v);
    if (bson_iter_init_find(&it, doc, PW_F_COUNT)) {
        s->count = bson_iter_as_int64(&it);
    }
    int bad = 0;
    Iot__V1__RollupState *st = (Iot__V1__RollupState *)pw_store_unpack(
        doc, PW_F_STATE, &iot__v1__rollup_state__descriptor, &bad);
    int rc = bad ? -1 : 0;
    if (st && (cells_from_pb(st->cells, st->n_cells, &s->cells) != 0 ||
               devices_from_pb(st->devices, st->n_devices, &s->devices) != 0 ||
               shares_from_pb(st->shares, st->n_shares, &s->shares) != 0)) {
        rc = -1;
    }
    if (st) {
        protobuf_c_message_free_unpacked(&st->base, NULL);
    }
    if (rc != 0) {
        pwc_rollup_state_free(s);
    } else {
        s->bytes = state_bytes(s);
    }
    return rc;
}

static pwc_rollup_cell *cell_lookup(pwc_rollup_cells *a, const char *zone, const char *label,
                                    const char *code)
{
    for (size_t i = 0; i < a->n; i++) {
        pwc_rollup_cell *c = &a->items[i];
        if (strcmp(c->zone, zone) == 0 && strcmp(c->label, label) == 0 &&
            strcmp(c->code, code) == 0) {
            return c;
        }
    }
    return NULL;
}

/* Room kept for the overflow cells of each type or severity. */
#define PWC_OVERFLOW_RESERVE (64u * 1024u)

/* Adds the cell when the state stays within limit bytes (0: always; the
 * last overflow cell, whose room the bound's margin keeps). */
static pwc_rollup_cell *cell_try_add(pwc_rollup_state *s, pwc_rollup_cells *a, const char *zone,
                                     const char *label, const char *code, size_t limit, int *nomem)
{
    size_t b = cell_bytes(zone, label, code);
    if (limit && s->bytes + b > limit) {
        return NULL;
    }
    pwc_rollup_cell *c = cell_add(a);
    if (!c) {
        *nomem = 1;
        return NULL;
    }
    snprintf(c->zone, sizeof(c->zone), "%s", zone);
    snprintf(c->label, sizeof(c->label), "%s", label);
    snprintf(c->code, sizeof(c->code), "%s", code);
    s->bytes += b;
    return c;
}

/* The share of consumer, added when missing and the state has room for
 * it. NULL when there is no room (or ENOMEM: *nomem). */
static pwc_rollup_share *share_of(pwc_rollup_state *s, const char *consumer, int *nomem)
{
    for (size_t i = 0; i < s->shares.n; i++) {
        if (strcmp(s->shares.items[i].consumer, consumer) == 0) {
            return &s->shares.items[i];
        }
    }
    size_t b = share_bytes(consumer);
    if (s->bytes + b > PWC_ROLLUP_STATE_BUDGET - PWC_OVERFLOW_RESERVE) {
        return NULL;
    }
    pwc_rollup_share *sh = share_add(&s->shares, consumer, 0);
    if (!sh) {
        *nomem = 1;
        return NULL;
    }
    s->bytes += b;
    return sh;
}

/* A new cell for a record of consumer, within the budget and the
 * consumer's share of it. NULL when it does not fit (or ENOMEM: *nomem). */
static pwc_rollup_cell *cell_new(pwc_rollup_state *s, pwc_rollup_cells *a, const char *zone,
                                 const char *label, const char *code, const char *consumer,
                                 int *nomem)
{
    size_t b = cell_bytes(zone, label, code);
    pwc_rollup_share *sh = share_of(s, consumer, nomem);
    if (!sh || sh->bytes + b > PWC_ROLLUP_KEY_SHARE) {
        return NULL;
    }
    pwc_rollup_cell *c = cell_try_add(s, a, zone, label, code,
                                      PWC_ROLLUP_STATE_BUDGET - PWC_OVERFLOW_RESERVE, nomem);
    if (c) {
        sh->bytes += b;
    }
    return c;
}

/* The cell (zone, label, code) of a, added when missing and within the
 * budget and consumer's share; else the overflow cell (see
 * PWC_ROLLUP_STATE_BUDGET), counted in s->overflowed. NULL on ENOMEM. */
static pwc_rollup_cell *cell_find(pwc_rollup_state *s, pwc_rollup_cells *a, const char *zone,
                                  const char *label, const char *code, const char *consumer)
{
    static const char *const none = PWC_ROLLUP_OVERFLOW_ZONE;
    int nomem = 0;
    pwc_rollup_cell *c = cell_lookup(a, zone, label, code);
    if (!c) {
        c = cell_new(s, a, zone, label, code, consumer, &nomem);
    }
    if (c || nomem) {
        return c;
    }
    s->overflowed++;
    c = cell_lookup(a, none, label, "");
    if (!c) {
        c = cell_try_add(s, a, none, label, "", PWC_ROLLUP_STATE_BUDGET, &nomem);
    }
    if (!c && !nomem && !(c = cell_lookup(a, none, "", ""))) {
        c = cell_try_add(s, a, none, "", "", 0, &nomem);
    }
    return c;
}

/* Counts one delivery: its record in its cell, its device when it made the
 * device active for the day. -1 on ENOMEM. */
static int fold_one(pwc_rollup_kind k, pwc_rollup_state *s, const pwc_entry *e)
{
    const pwc_record *r = e->rec;
    if (e->new_device) {
        pwc_rollup_cell *d = cell_find(s, &s->devices, r->zone, "", "", r->consumer);
        if (!d) {
            return -1;
        }
        d->count++;
    }
    if (!e->contributes) {
        return 0;
    }
    pwc_rollup_cell *c = k == PWC_ROLLUP_READINGS
                             ? cell_find(s, &s->cells, r->zone, r->type, "", r->consumer)
                             : cell_find(s, &s->cells, r->zone, r->severity, r->code, r->consumer);
    if (!c) {
        return -1;
    }
    if (k == PWC_ROLLUP_READINGS) {
        double v = r->value;
        if (c->count == 0 || v < c->min) {
            c->min = v;
        }
        if (c->count == 0 || v > c->max) {
            c->max = v;
        }
        c->sum += v;
    }
    c->count++;
    s->count++;
    return 0;
}

long pwc_rollup_fold(pwc_rollup_kind k, pwc_rollup_state *s, const pwc_rollup_group *g,
                     const pwc_entry *entries)
{
    long counted = 0;
    for (size_t i = 0; i < g->n; i++) {
        const pwc_entry *e = &entries[g->idx[i]];
        if (e->offset <= s->hw) {
            continue;
        }
        if (fold_one(k, s, e) != 0) {
            return -1;
        }
        s->hw = e->offset;
        counted++;
    }
    return counted;
}

/* s as an iot.v1.RollupState whose strings point into s. 0 or -1 (ENOMEM). */
typedef struct {
    Iot__V1__RollupState msg;
    Iot__V1__RollupCell *cells;
    Iot__V1__RollupCell **cellp;
    Iot__V1__ZoneCount *devs;
    Iot__V1__ZoneCount **devp;
    Iot__V1__KeyShare *shares;
    Iot__V1__KeyShare **sharep;
} state_pb;

static void state_pb_free(state_pb *p)
{
    free(p->cells);
    free(p->cellp);
    free(p->devs);
    free(p->devp);
    free(p->shares);
    free(p->sharep);
}

/* The shares of s into p (strings point into s). 0 or -1 (ENOMEM). */
static int shares_pb_fill(const pwc_rollup_state *s, state_pb *p)
{
    size_t n = s->shares.n;
    p->shares = calloc(n ? n : 1, sizeof(*p->shares));
    p->sharep = calloc(n ? n : 1, sizeof(*p->sharep));
    if (!p->shares || !p->sharep) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        iot__v1__key_share__init(&p->shares[i]);
        p->shares[i].consumer = s->shares.items[i].consumer;
        p->shares[i].bytes = s->shares.items[i].bytes;
        p->sharep[i] = &p->shares[i];
    }
    p->msg.n_shares = n;
    p->msg.shares = p->sharep;
    return 0;
}

static int state_pb_fill(const pwc_rollup_state *s, state_pb *p)
{
    memset(p, 0, sizeof(*p));
    iot__v1__rollup_state__init(&p->msg);
    size_t nc = s->cells.n, nd = s->devices.n;
    p->cells = calloc(nc ? nc : 1, sizeof(*p->cells));
    p->cellp = calloc(nc ? nc : 1, sizeof(*p->cellp));
    p->devs = calloc(nd ? nd : 1, sizeof(*p->devs));
    p->devp = calloc(nd ? nd : 1, sizeof(*p->devp));
    if (!p->cells || !p->cellp || !p->devs || !p->devp || shares_pb_fill(s, p) != 0) {
        state_pb_free(p);
        return -1;
    }
    for (size_t i = 0; i < nc; i++) {
        const pwc_rollup_cell *c = &s->cells.items[i];
        Iot__V1__RollupCell *o = &p->cells[i];
        iot__v1__rollup_cell__init(o);
        o->zone = (char *)c->zone;
        o->label = (char *)c->label;
        o->code = (char *)c->code;
        o->count = c->count;
        o->sum = c->sum;
        o->min = c->min;
        o->max = c->max;
        p->cellp[i] = o;
    }
    for (size_t i = 0; i < nd; i++) {
        Iot__V1__ZoneCount *o = &p->devs[i];
        iot__v1__zone_count__init(o);
        o->zone = (char *)s->devices.items[i].zone;
        o->count = s->devices.items[i].count;
        p->devp[i] = o;
    }
    p->msg.n_cells = nc;
    p->msg.cells = p->cellp;
    p->msg.n_devices = nd;
    p->msg.devices = p->devp;
    return 0;
}

int64_t pwc_rollup_next_version(const pwc_rollup_state *s)
{
    return s->stored && s->stored_v >= s->hw ? s->stored_v + 1 : s->hw;
}

int pwc_rollup_doc(pwc_rollup_kind k, pwc_rollup_res res, const pwc_rollup_group *g,
                   const pwc_entry *entries, const pwc_rollup_state *s, int for_set, bson_t *doc)
{
    (void)k;
    const pwc_entry *first = &entries[g->idx[0]];
    const pwc_record *r = first->rec;
    char tp[PWC_ORIGIN_LEN], month[8];
    pwc_tp_key(first->topic, first->partition, tp, sizeof(tp));
    snprintf(month, sizeof(month), "%.7s", r->day);
    int64_t day_start = r->hour_ms - (r->hour_ms % 86400000LL);
    bson_init(doc);
    if (!for_set) {
        BSON_APPEND_UTF8(doc, PW_F_ID, g->key);
    }
    BSON_APPEND_UTF8(doc, PW_F_RES, res == PWC_RES_HOUR ? PW_RES_HOUR : PW_RES_DAY);
    BSON_APPEND_DATE_TIME(doc, PW_F_START, res == PWC_RES_HOUR ? r->hour_ms : day_start);
    BSON_APPEND_UTF8(doc, PW_F_DAY, r->day);
    if (res == PWC_RES_HOUR) {
        BSON_APPEND_DATE_TIME(doc, PW_F_HOUR, r->hour_ms);
    } else {
        BSON_APPEND_UTF8(doc, PW_F_MONTH, month);
    }
    BSON_APPEND_UTF8(doc, PW_F_TP, tp);
    BSON_APPEND_INT64(doc, PW_F_HW, s->hw);
    BSON_APPEND_INT64(doc, PW_F_VERSION, pwc_rollup_next_version(s));
    BSON_APPEND_INT64(doc, PW_F_COUNT, s->count);
    state_pb p;
    if (state_pb_fill(s, &p) != 0) {
        bson_destroy(doc);
        return -1;
    }
    int rc = pw_store_append_packed(doc, PW_F_STATE, &p.msg.base);
    state_pb_free(&p);
    if (rc != 0) {
        bson_destroy(doc);
    }
    return rc;
}

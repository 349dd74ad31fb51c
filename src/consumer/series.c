/* series: the minute series of readings (see series.h) — keys, zone
 * admission, folding, the documents with their packed iot.v1.SeriesState,
 * and pwc_series_write, which folds a batch into them and writes the changed
 * ones with guarded writes like the rollup buckets (store_int.h). */
#include "series.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iot/v1/storage.pb-c.h"
#include "pw_schema.h"
#include "pw_store.h"
#include "pw_time.h"
#include "store_int.h"

#define PWC_MINUTE_MS 60000LL

static const char series_kind_char[] = {'d', 'z'};

int64_t pwc_series_hour(int64_t ts_ms)
{
    return pw_time_hour_start(ts_ms);
}

int pwc_series_minute(int64_t ts_ms)
{
    return (int)((ts_ms - pwc_series_hour(ts_ms)) / PWC_MINUTE_MS);
}

static int fits(int n, size_t outlen)
{
    return n >= 0 && (size_t)n < outlen ? 0 : -1;
}

int pwc_series_id(pwc_series_kind k, const char *key, const char *type, int64_t hour_ms,
                  const char *tp, char *out, size_t outlen)
{
    return fits(snprintf(out, outlen,
                         "%c" PWC_SERIES_SEP "%s" PWC_SERIES_SEP "%s" PWC_SERIES_SEP
                         "%lld" PWC_SERIES_SEP "%s",
                         series_kind_char[k], key, type, (long long)hour_ms, tp),
                outlen);
}

int pwc_series_sk(pwc_series_kind k, const char *key, const char *type, int64_t hour_ms, char *out,
                  size_t outlen)
{
    char day[PW_DAY_LEN];
    pw_time_utc_day(hour_ms, day);
    return fits(snprintf(out, outlen,
                         "%c" PWC_SERIES_SEP "%s" PWC_SERIES_SEP "%s" PWC_SERIES_SEP "%s",
                         series_kind_char[k], key, type, day),
                outlen);
}

int pwc_series_zones_id(int64_t hour_ms, const char *tp, char *out, size_t outlen)
{
    return fits(snprintf(out, outlen, "a" PWC_SERIES_SEP "%lld" PWC_SERIES_SEP "%s",
                         (long long)hour_ms, tp),
                outlen);
}

/* ---- state ------------------------------------------------------------------ */

void pwc_series_state_init(pwc_series_state *s)
{
    memset(s, 0, sizeof(*s));
    s->hw = -1;
}

/* The cells of a decoded state; minutes out of range or repeated arrays of
 * different lengths make it undecodable. 0 or -1. */
static int cells_from_pb(const Iot__V1__SeriesState *st, pwc_series_state *s)
{
    size_t n = st->n_minute;
    if (st->n_count != n || st->n_sum != n || st->n_min != n || st->n_max != n ||
        st->n_first_ms != n || st->n_last_ms != n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (st->minute[i] >= PWC_SERIES_MINUTES) {
            return -1;
        }
        pwc_series_cell *c = &s->cells[st->minute[i]];
        c->count = (int64_t)st->count[i];
        c->sum = st->sum[i];
        c->min = st->min[i];
        c->max = st->max[i];
        c->first_ms = st->first_ms[i];
        c->last_ms = st->last_ms[i];
    }
    snprintf(s->unit, sizeof(s->unit), "%s", st->unit ? st->unit : "");
    return 0;
}

int pwc_series_state_from_doc(const bson_t *doc, pwc_series_state *s)
{
    pwc_series_state_init(s);
    if (!doc) {
        return 0;
    }
    s->stored = 1;
    pw_store_versions(doc, &s->hw, &s->stored_v);
    int bad = 0;
    Iot__V1__SeriesState *st = (Iot__V1__SeriesState *)pw_store_unpack(
        doc, PW_F_STATE, &iot__v1__series_state__descriptor, &bad);
    int rc = bad ? -1 : 0;
    if (st) {
        rc = cells_from_pb(st, s);
        protobuf_c_message_free_unpacked(&st->base, NULL);
    }
    return rc;
}

int pwc_series_fold(pwc_series_state *s, const pwc_entry *e)
{
    if (e->offset <= s->hw) {
        return 0;
    }
    const pwc_record *r = e->rec;
    pwc_series_cell *c = &s->cells[pwc_series_minute(r->ts_ms)];
    if (c->count == 0 || r->value < c->min) {
        c->min = r->value;
    }
    if (c->count == 0 || r->value > c->max) {
        c->max = r->value;
    }
    if (c->count == 0 || r->ts_ms < c->first_ms) {
        c->first_ms = r->ts_ms;
    }
    if (c->count == 0 || r->ts_ms > c->last_ms) {
        c->last_ms = r->ts_ms;
    }
    c->sum += r->value;
    c->count++;
    if (s->unit[0] == '\0') {
        snprintf(s->unit, sizeof(s->unit), "%s", r->unit);
    }
    s->hw = e->offset;
    return 1;
}

int64_t pwc_series_next_version(const pwc_series_state *s)
{
    return s->stored && s->stored_v >= s->hw ? s->stored_v + 1 : s->hw;
}

/* s's non-empty minutes as an iot.v1.SeriesState whose arrays live in the
 * caller's buffers (60 each) and whose unit points into s. */
typedef struct {
    Iot__V1__SeriesState msg;
    uint32_t minute[PWC_SERIES_MINUTES];
    uint64_t count[PWC_SERIES_MINUTES];
    double sum[PWC_SERIES_MINUTES], min[PWC_SERIES_MINUTES], max[PWC_SERIES_MINUTES];
    int64_t first[PWC_SERIES_MINUTES], last[PWC_SERIES_MINUTES];
} series_pb;

static void series_pb_fill(const pwc_series_state *s, series_pb *p)
{
    iot__v1__series_state__init(&p->msg);
    size_t n = 0;
    for (int m = 0; m < PWC_SERIES_MINUTES; m++) {
        const pwc_series_cell *c = &s->cells[m];
        if (c->count == 0) {
            continue;
        }
        p->minute[n] = (uint32_t)m;
        p->count[n] = (uint64_t)c->count;
        p->sum[n] = c->sum;
        p->min[n] = c->min;
        p->max[n] = c->max;
        p->first[n] = c->first_ms;
        p->last[n] = c->last_ms;
        n++;
    }
    p->msg.n_minute = p->msg.n_count = p->msg.n_sum = p->msg.n_min = p->msg.n_max = n;
    p->msg.n_first_ms = p->msg.n_last_ms = n;
    p->msg.minute = p->minute;
    p->msg.count = p->count;
    p->msg.sum = p->sum;
    p->msg.min = p->min;
    p->msg.max = p->max;
    p->msg.first_ms = p->first;
    p->msg.last_ms = p->last;
    p->msg.unit = (char *)s->unit;
}

/* The fields every series_readings document has: _id (unless for_set),
 * hour, start and tp. */
static void common_fields(bson_t *doc, const char *id, int64_t hour_ms, const char *tp, int for_set)
{
    if (!for_set) {
        BSON_APPEND_UTF8(doc, PW_F_ID, id);
    }
    BSON_APPEND_DATE_TIME(doc, PW_F_HOUR, hour_ms);
    BSON_APPEND_DATE_TIME(doc, PW_F_START, hour_ms);
    BSON_APPEND_UTF8(doc, PW_F_TP, tp);
}

int pwc_series_doc(const pwc_series_ref *ref, const pwc_series_state *s, int for_set, bson_t *doc)
{
    char id[PWC_SERIES_KEY_LEN], sk[PWC_SERIES_KEY_LEN];
    if (pwc_series_id(ref->kind, ref->key, ref->type, ref->hour_ms, ref->tp, id, sizeof(id)) != 0 ||
        pwc_series_sk(ref->kind, ref->key, ref->type, ref->hour_ms, sk, sizeof(sk)) != 0) {
        return -1;
    }
    bson_init(doc);
    common_fields(doc, id, ref->hour_ms, ref->tp, for_set);
    BSON_APPEND_UTF8(doc, PW_F_SK, sk);
    BSON_APPEND_INT64(doc, PW_F_HW, s->hw);
    BSON_APPEND_INT64(doc, PW_F_VERSION, pwc_series_next_version(s));
    series_pb *p = malloc(sizeof(*p));
    int rc = p ? 0 : -1;
    if (p) {
        series_pb_fill(s, p);
        rc = pw_store_append_packed(doc, PW_F_STATE, &p->msg.base);
        free(p);
    }
    if (rc != 0) {
        bson_destroy(doc);
    }
    return rc;
}

/* ---- zone admission ------------------------------------------------------------ */

void pwc_series_zones_init(pwc_series_zones *z, int64_t hour_ms, const char *tp)
{
    memset(z, 0, sizeof(*z));
    z->hour_ms = hour_ms;
    snprintf(z->tp, sizeof(z->tp), "%s", tp);
}

void pwc_series_zones_free(pwc_series_zones *z)
{
    for (size_t i = 0; i < z->n; i++) {
        free(z->zones[i]);
    }
    free(z->zones);
    z->zones = NULL;
    z->n = z->cap = 0;
}

static int zones_add(pwc_series_zones *z, const char *zone)
{
    if (z->n == z->cap) {
        size_t cap = z->cap ? z->cap * 2 : 8;
        char **x = realloc(z->zones, cap * sizeof(*x));
        if (!x) {
            return -1;
        }
        z->zones = x;
        z->cap = cap;
    }
    char *copy = strdup(zone);
    if (!copy) {
        return -1;
    }
    z->zones[z->n++] = copy;
    return 0;
}

int pwc_series_zones_from_doc(const bson_t *doc, int64_t hour_ms, const char *tp,
                              pwc_series_zones *z)
{
    pwc_series_zones_init(z, hour_ms, tp);
    if (!doc) {
        return 0;
    }
    int64_t hw;
    z->stored = 1;
    pw_store_versions(doc, &hw, &z->stored_v);
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, doc, PW_F_ZONES) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr)) {
        return 0;
    }
    while (bson_iter_next(&arr)) {
        if (BSON_ITER_HOLDS_UTF8(&arr) && z->n < PWC_SERIES_ZONES_MAX &&
            zones_add(z, bson_iter_utf8(&arr, NULL)) != 0) {
            pwc_series_zones_free(z);
            return -1;
        }
    }
    return 0;
}

const char *pwc_series_zone_decide(pwc_series_zones *z, const char *zone)
{
    for (size_t i = 0; i < z->n; i++) {
        if (strcmp(z->zones[i], zone) == 0) {
            return z->zones[i];
        }
    }
    if (z->n >= PWC_SERIES_ZONES_MAX) {
        return PWC_SERIES_OTHER_ZONE;
    }
    if (zones_add(z, zone) != 0) {
        return NULL;
    }
    z->changed = 1;
    return z->zones[z->n - 1];
}

int pwc_series_zones_doc(const pwc_series_zones *z, int for_set, bson_t *doc)
{
    char id[PWC_SERIES_KEY_LEN], idx[16];
    if (pwc_series_zones_id(z->hour_ms, z->tp, id, sizeof(id)) != 0) {
        return -1;
    }
    bson_init(doc);
    common_fields(doc, id, z->hour_ms, z->tp, for_set);
    BSON_APPEND_INT64(doc, PW_F_VERSION, z->stored ? z->stored_v + 1 : 1);
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(doc, PW_F_ZONES, &arr);
    for (size_t i = 0; i < z->n; i++) {
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
        bson_append_utf8(&arr, k, -1, z->zones[i], -1);
    }
    bson_append_array_end(doc, &arr);
    return 0;
}

/* ---- writing a batch ------------------------------------------------------------ */

#define PWC_SERIES_ATTEMPTS 4
#define PWC_SERIES_CHUNK 1024 /* series documents loaded, folded and written per round */

/* The batch's contributing readings (sel: indexes into entries, in batch =
 * offset order) and, per reading, the zone series it counts in. */
typedef struct {
    const pwc_entry *entries;
    size_t *sel;
    char **zone; /* owned copies */
    size_t n;
} series_batch;

/* One series document of the batch: the positions (into sel) of its
 * readings, in batch order. */
typedef struct {
    char *id; /* owned */
    pwc_series_kind kind;
    size_t *pos;
    size_t n;
} series_group;

typedef struct {
    char *id;
    pwc_series_kind kind;
    size_t pos;
} keyed_pos;

static void batch_free(series_batch *b)
{
    for (size_t i = 0; b->zone && i < b->n; i++) {
        free(b->zone[i]);
    }
    free(b->zone);
    free(b->sel);
}

static int batch_select(const pwc_entry *entries, size_t n, series_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->entries = entries;
    b->sel = malloc((n ? n : 1) * sizeof(size_t));
    b->zone = calloc(n ? n : 1, sizeof(char *));
    if (!b->sel || !b->zone) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (entries[i].contributes && entries[i].rec->kind == PWC_READING) {
            b->sel[b->n++] = i;
        }
    }
    return 0;
}

static const pwc_entry *batch_entry(const series_batch *b, size_t pos)
{
    return &b->entries[b->sel[pos]];
}

static void entry_tp(const pwc_entry *e, char *out, size_t outlen)
{
    pwc_tp_key(e->topic, e->partition, out, outlen);
}

/* The document e counts in for kind k (key = its device, or zone). */
static pwc_series_ref entry_ref(const pwc_entry *e, pwc_series_kind k, const char *zone,
                                const char *tp)
{
    pwc_series_ref r = {k, k == PWC_SERIES_DEVICE ? e->rec->device : zone, e->rec->type,
                        pwc_series_hour(e->rec->ts_ms), tp};
    return r;
}

void pwc_series_forget(pwc_store *s)
{
    pwc_cache_clear(s->series);
    pwc_cache_clear(s->series_zones);
}

/* ---- writing: zone admission ---- */

typedef struct {
    pwc_store *s;
    int64_t hour_ms;
    const char *tp;
    int failed;
} zones_ctx;

static void zones_loaded(void *vctx, const char *id, const bson_t *doc)
{
    zones_ctx *c = vctx;
    pwc_series_zones z;
    if (pwc_series_zones_from_doc(doc, c->hour_ms, c->tp, &z) != 0) {
        c->failed = 1;
    } else if (pwc_cache_put(c->s->series_zones, id, &z) != 0) {
        pwc_series_zones_free(&z);
        c->failed = 1;
    }
}

/* The admission state of (hour_ms, tp), read by _id when unknown (a
 * document the store does not hold starts empty). NULL with err. */
static pwc_series_zones *zones_get(pwc_store *s, mongoc_database_t *db, const char *id,
                                   int64_t hour_ms, const char *tp, char *err, size_t errlen)
{
    pwc_series_zones *z = pwc_cache_get(s->series_zones, id);
    if (z) {
        return z;
    }
    zones_ctx ctx = {s, hour_ms, tp, 0};
    const char *ids[] = {id};
    s->res->bucket_reads++;
    if (pwc_find_ids(s, db, PW_COLL_SERIES_READINGS, ids, 1, NULL, zones_loaded, &ctx,
                     "series zones read", err, errlen) != 0) {
        return NULL;
    }
    if (ctx.failed) {
        snprintf(err, errlen, "%s %s: the zones could not be read", PW_COLL_SERIES_READINGS, tp);
        return NULL;
    }
    if (!pwc_cache_get(s->series_zones, id)) {
        pwc_series_zones empty;
        pwc_series_zones_init(&empty, hour_ms, tp);
        if (pwc_cache_put(s->series_zones, id, &empty) != 0) {
            return NULL;
        }
    }
    return pwc_cache_get(s->series_zones, id);
}

/* Decides the zone series of every reading of b (admitting zones); the ids
 * of the admission states that changed go to changed (owned, *nchanged). */
static int zones_decide(pwc_store *s, mongoc_database_t *db, series_batch *b, char **changed,
                        size_t *nchanged, char *err, size_t errlen)
{
    char tp[PWC_ORIGIN_LEN], id[PWC_SERIES_KEY_LEN];
    *nchanged = 0;
    for (size_t i = 0; i < b->n; i++) {
        const pwc_entry *e = batch_entry(b, i);
        int64_t hour = pwc_series_hour(e->rec->ts_ms);
        entry_tp(e, tp, sizeof(tp));
        if (pwc_series_zones_id(hour, tp, id, sizeof(id)) != 0) {
            snprintf(err, errlen, "%s: a partition name is too long", PW_COLL_SERIES_READINGS);
            return -1;
        }
        pwc_series_zones *z = zones_get(s, db, id, hour, tp, err, errlen);
        if (!z) {
            return -1;
        }
        int was_changed = z->changed;
        const char *zone = pwc_series_zone_decide(z, e->rec->zone);
        free(b->zone[i]);
        b->zone[i] = zone ? strdup(zone) : NULL;
        if (!b->zone[i] || (z->changed && !was_changed && !(changed[(*nchanged)++] = strdup(id)))) {
            snprintf(err, errlen, "%s: out of memory", PW_COLL_SERIES_READINGS);
            return -1;
        }
    }
    return 0;
}

/* Writes the admission states that changed. Landed: they are stored; else
 * they are forgotten (read again). */
static pwc_guard_outcome zones_write(pwc_store *s, mongoc_database_t *db, char **changed, size_t n,
                                     char *err, size_t errlen)
{
    pwc_guarded_item *items = calloc(n ? n : 1, sizeof(*items));
    if (!items) {
        return PWC_GUARD_FAILED;
    }
    size_t m = 0;
    pwc_guard_outcome o = PWC_GUARD_LANDED;
    for (; m < n; m++) {
        pwc_series_zones *z = pwc_cache_get(s->series_zones, changed[m]);
        bson_t tmp;
        items[m].id = changed[m];
        if (!z || pwc_series_zones_doc(z, z->stored, &tmp) != 0 ||
            pwc_guarded_take(&items[m], &tmp) != 0) {
            o = PWC_GUARD_FAILED;
            break;
        }
        items[m].stored = z->stored;
        items[m].guard = z->stored_v;
    }
    if (o == PWC_GUARD_LANDED) {
        o = pwc_guarded_write(s, db, PW_COLL_SERIES_READINGS, items, m, err, errlen);
    }
    for (size_t i = 0; i < n; i++) {
        pwc_series_zones *z = pwc_cache_get(s->series_zones, changed[i]);
        if (o == PWC_GUARD_LANDED && z) {
            z->stored_v = z->stored ? z->stored_v + 1 : 1;
            z->stored = 1;
            z->changed = 0;
        } else {
            pwc_cache_remove(s->series_zones, changed[i]);
        }
    }
    pwc_guarded_free(items, m);
    return o;
}

static void strings_free(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i]);
    }
}

/* Decides every reading's zone series and stores the admissions that
 * changed; lost races are read again and decided again. */
static int zones_step(pwc_store *s, mongoc_database_t *db, series_batch *b, char *err,
                      size_t errlen)
{
    char **changed = calloc(b->n ? b->n : 1, sizeof(char *));
    if (!changed) {
        return -1;
    }
    pwc_cache_reserve(s->series_zones, b->n);
    pwc_guard_outcome o = PWC_GUARD_LOST;
    for (int attempt = 0; o == PWC_GUARD_LOST && attempt < PWC_SERIES_ATTEMPTS; attempt++) {
        size_t nchanged = 0;
        s->res->conflicts += attempt > 0 ? 1 : 0;
        o = zones_decide(s, db, b, changed, &nchanged, err, errlen) == 0
                ? zones_write(s, db, changed, nchanged, err, errlen)
                : PWC_GUARD_FAILED;
        if (o == PWC_GUARD_FAILED) {
            pwc_cache_clear(s->series_zones); /* decided states are ahead of the store */
        }
        strings_free(changed, nchanged);
    }
    free(changed);
    if (o == PWC_GUARD_LOST) {
        s->res->conflicts++;
        snprintf(err, errlen, "%s: zone admission kept losing races", PW_COLL_SERIES_READINGS);
    }
    return o == PWC_GUARD_LANDED ? 0 : -1;
}

/* ---- writing: series documents ---- */

static int keyed_cmp(const void *a, const void *b)
{
    const keyed_pos *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) {
        return c;
    }
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void groups_free(series_group *g, size_t n)
{
    for (size_t i = 0; g && i < n; i++) {
        free(g[i].id);
        free(g[i].pos);
    }
    free(g);
}

/* The id of each reading's device and zone series, sorted. NULL on ENOMEM. */
static keyed_pos *keyed_build(const series_batch *b)
{
    keyed_pos *k = calloc(b->n ? 2 * b->n : 1, sizeof(*k));
    char tp[PWC_ORIGIN_LEN], id[PWC_SERIES_KEY_LEN];
    for (size_t i = 0; k && i < 2 * b->n; i++) {
        const pwc_entry *e = batch_entry(b, i / 2);
        pwc_series_kind kind = i % 2 ? PWC_SERIES_ZONE : PWC_SERIES_DEVICE;
        entry_tp(e, tp, sizeof(tp));
        pwc_series_ref r = entry_ref(e, kind, b->zone[i / 2], tp);
        k[i].kind = kind;
        k[i].pos = i / 2;
        if (pwc_series_id(r.kind, r.key, r.type, r.hour_ms, r.tp, id, sizeof(id)) != 0 ||
            !(k[i].id = strdup(id))) {
            for (size_t j = 0; j <= i; j++) {
                free(k[j].id);
            }
            free(k);
            return NULL;
        }
    }
    if (k) {
        qsort(k, 2 * b->n, sizeof(*k), keyed_cmp);
    }
    return k;
}

/* Groups the batch's readings by series document. 0 or -1 (ENOMEM). */
static int groups_build(const series_batch *b, series_group **out, size_t *nout)
{
    size_t m = 2 * b->n, ng = 0;
    keyed_pos *k = keyed_build(b);
    series_group *g = calloc(m ? m : 1, sizeof(*g));
    int rc = k && g ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < m;) {
        size_t j = i;
        while (j < m && strcmp(k[j].id, k[i].id) == 0) {
            j++;
        }
        series_group *x = &g[ng++];
        x->kind = k[i].kind;
        x->id = k[i].id;
        k[i].id = NULL;
        x->pos = malloc((j - i) * sizeof(size_t));
        if (!x->pos) {
            rc = -1;
        }
        for (size_t q = i; rc == 0 && q < j; q++) {
            x->pos[x->n++] = k[q].pos;
        }
        i = j;
    }
    for (size_t i = 0; k && i < m; i++) {
        free(k[i].id);
    }
    free(k);
    *out = g;
    *nout = ng;
    return rc;
}

typedef struct {
    pwc_store *s;
    int failed;
} series_ctx;

static void series_loaded(void *vctx, const char *id, const bson_t *doc)
{
    series_ctx *c = vctx;
    pwc_series_state st;
    if (pwc_series_state_from_doc(doc, &st) != 0 || pwc_cache_put(c->s->series, id, &st) != 0) {
        c->failed = 1;
    }
}

/* Makes sure the state of every group is in the cache: reads the unknown
 * ones by _id; a document the store does not hold starts empty. */
static int series_load(pwc_store *s, mongoc_database_t *db, series_group *g, size_t n, char *err,
                       size_t errlen)
{
    const char **ids = malloc((n ? n : 1) * sizeof(char *));
    if (!ids) {
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!pwc_cache_get(s->series, g[i].id)) {
            ids[m++] = g[i].id;
        }
    }
    s->res->bucket_reads += m;
    series_ctx ctx = {s, 0};
    int rc = pwc_find_ids(s, db, PW_COLL_SERIES_READINGS, ids, m, NULL, series_loaded, &ctx,
                          "series read", err, errlen);
    if (rc == 0 && ctx.failed) {
        snprintf(err, errlen, "%s: a series state could not be read", PW_COLL_SERIES_READINGS);
        rc = -1;
    }
    for (size_t i = 0; i < m; i++) {
        pwc_series_state empty;
        pwc_series_state_init(&empty);
        if (rc != 0) {
            pwc_cache_remove(s->series, ids[i]);
        } else if (!pwc_cache_get(s->series, ids[i]) && pwc_cache_put(s->series, ids[i], &empty)) {
            rc = -1;
        }
    }
    free(ids);
    return rc;
}

/* Folds each group into its state; the changed ones become items. */
static int series_fold(pwc_store *s, const series_batch *b, series_group *g, size_t n,
                       pwc_guarded_item *items, size_t *nitems)
{
    char tp[PWC_ORIGIN_LEN];
    for (size_t i = 0; i < n; i++) {
        pwc_series_state *st = pwc_cache_get(s->series, g[i].id);
        if (!st) {
            return -1;
        }
        long counted = 0;
        for (size_t q = 0; q < g[i].n; q++) {
            counted += pwc_series_fold(st, batch_entry(b, g[i].pos[q]));
        }
        if (counted == 0) {
            continue;
        }
        const pwc_entry *first = batch_entry(b, g[i].pos[0]);
        entry_tp(first, tp, sizeof(tp));
        pwc_series_ref ref = entry_ref(first, g[i].kind, b->zone[g[i].pos[0]], tp);
        pwc_guarded_item *it = &items[*nitems];
        bson_t tmp;
        if (pwc_series_doc(&ref, st, st->stored, &tmp) != 0 || pwc_guarded_take(it, &tmp) != 0) {
            return -1;
        }
        it->id = g[i].id;
        it->stored = st->stored;
        it->guard = st->stored_v;
        (*nitems)++;
    }
    return 0;
}

static void series_settle(pwc_store *s, const pwc_guarded_item *items, size_t n, int landed)
{
    for (size_t i = 0; i < n; i++) {
        pwc_series_state *st = pwc_cache_get(s->series, items[i].id);
        if (landed && st) {
            st->stored_v = pwc_series_next_version(st);
            st->stored = 1;
        } else {
            pwc_cache_remove(s->series, items[i].id);
        }
    }
}

static pwc_guard_outcome series_attempt(pwc_store *s, mongoc_database_t *db, const series_batch *b,
                                        series_group *g, size_t n, char *err, size_t errlen)
{
    pwc_cache_reserve(s->series, n);
    if (series_load(s, db, g, n, err, errlen) != 0) {
        return PWC_GUARD_FAILED;
    }
    pwc_guarded_item *items = calloc(n ? n : 1, sizeof(*items));
    if (!items) {
        return PWC_GUARD_FAILED;
    }
    size_t nitems = 0;
    int rc = series_fold(s, b, g, n, items, &nitems);
    pwc_guard_outcome o =
        rc == 0 ? pwc_guarded_write(s, db, PW_COLL_SERIES_READINGS, items, nitems, err, errlen)
                : PWC_GUARD_FAILED;
    series_settle(s, items, nitems, o == PWC_GUARD_LANDED);
    if (rc != 0) {
        snprintf(err, errlen, "%s: out of memory", PW_COLL_SERIES_READINGS);
        pwc_cache_clear(s->series); /* states folded before the failure are ahead of the store */
    }
    pwc_guarded_free(items, nitems);
    return o;
}

/* Writes the groups' documents, PWC_SERIES_CHUNK at a time (each round's
 * states fit the cache together). */
static int series_step(pwc_store *s, mongoc_database_t *db, const series_batch *b, series_group *g,
                       size_t n, char *err, size_t errlen)
{
    for (size_t at = 0; at < n; at += PWC_SERIES_CHUNK) {
        size_t m = n - at < PWC_SERIES_CHUNK ? n - at : PWC_SERIES_CHUNK;
        pwc_guard_outcome o = PWC_GUARD_LOST;
        for (int attempt = 0; o == PWC_GUARD_LOST && attempt < PWC_SERIES_ATTEMPTS; attempt++) {
            s->res->conflicts += attempt > 0 ? 1 : 0;
            o = series_attempt(s, db, b, g + at, m, err, errlen);
        }
        if (o == PWC_GUARD_LOST) {
            s->res->conflicts++;
            snprintf(err, errlen, "%s: guarded writes kept losing races", PW_COLL_SERIES_READINGS);
        }
        if (o != PWC_GUARD_LANDED) {
            return -1;
        }
    }
    return 0;
}

int pwc_series_write(pwc_store *s, mongoc_database_t *db, const pwc_entry *entries, size_t n,
                     char *err, size_t errlen)
{
    series_batch b;
    series_group *g = NULL;
    size_t ng = 0;
    int rc = batch_select(entries, n, &b);
    if (rc == 0 && b.n > 0) {
        rc = zones_step(s, db, &b, err, errlen);
        if (rc == 0 && groups_build(&b, &g, &ng) != 0) {
            snprintf(err, errlen, "%s: out of memory", PW_COLL_SERIES_READINGS);
            rc = -1;
        }
        if (rc == 0) {
            rc = series_step(s, db, &b, g, ng, err, errlen);
        }
    }
    groups_free(g, ng);
    batch_free(&b);
    return rc;
}

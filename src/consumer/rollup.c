/* rollup: bucket keys, grouping and guarded update documents (see rollup.h). */
#include "rollup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PWC_MAX_TP 32

static const char *const collections[PWC_ROLLUP_KINDS] = {"rollup_readings", "rollup_alerts",
                                                          "rollup_device_day"};

const char *pwc_rollup_collection(pwc_rollup_kind k)
{
    return collections[k];
}

int pwc_rollup_key(pwc_rollup_kind k, const pwc_record *r, char *out, size_t outlen)
{
    int n;
    switch (k) {
    case PWC_ROLLUP_READINGS:
        if (r->kind != PWC_READING)
            return -1;
        n = snprintf(out, outlen, "%lld|%s|%s", (long long)r->hour_ms, r->zone, r->type);
        break;
    case PWC_ROLLUP_ALERTS:
        if (r->kind != PWC_ALERT)
            return -1;
        n = snprintf(out, outlen, "%lld|%s|%s|%s", (long long)r->hour_ms, r->zone, r->severity,
                     r->code);
        break;
    default:
        n = snprintf(out, outlen, "%s|%s", r->day, r->device);
        break;
    }
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
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int pwc_rollup_group_entries(pwc_rollup_kind k, const pwc_entry *entries, size_t n,
                             pwc_rollup_groups *out)
{
    memset(out, 0, sizeof(*out));
    keyed_entry *ke = calloc(n ? n : 1, sizeof(*ke));
    if (!ke)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!entries[i].contributes)
            continue;
        if (pwc_rollup_key(k, entries[i].rec, ke[m].key, sizeof(ke[m].key)) != 0)
            continue;
        ke[m++].idx = i;
    }
    qsort(ke, m, sizeof(*ke), keyed_cmp);
    out->items = calloc(m ? m : 1, sizeof(*out->items));
    if (!out->items) {
        free(ke);
        return -1;
    }
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && strcmp(ke[j].key, ke[i].key) == 0)
            j++;
        pwc_rollup_group *g = &out->items[out->n++];
        memcpy(g->key, ke[i].key, sizeof(g->key));
        g->idx = malloc((j - i) * sizeof(size_t));
        if (!g->idx) {
            free(ke);
            pwc_rollup_groups_free(out);
            return -1;
        }
        for (size_t q = i; q < j; q++)
            g->idx[g->n++] = ke[q].idx;
        i = j;
    }
    free(ke);
    return 0;
}

void pwc_rollup_groups_free(pwc_rollup_groups *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->items[i].idx);
    free(g->items);
    memset(g, 0, sizeof(*g));
}

/* Per-partition offsets of a group and, on the exact path, the hw read. */
typedef struct {
    char key[PWC_ORIGIN_LEN];
    int64_t min_off, max_off;
    int64_t hw; /* -1 when absent */
    int counted;
} tp_state;

typedef struct {
    tp_state tp[PWC_MAX_TP];
    size_t ntp;
    int64_t count, readings, alerts;
    double sum, min, max;
    const pwc_record *last;
} agg;

static tp_state *tp_find(agg *a, const pwc_entry *e)
{
    char key[PWC_ORIGIN_LEN];
    pwc_tp_key(e->topic, e->partition, key, sizeof(key));
    for (size_t i = 0; i < a->ntp; i++) {
        if (strcmp(a->tp[i].key, key) == 0)
            return &a->tp[i];
    }
    if (a->ntp == PWC_MAX_TP)
        return NULL;
    tp_state *t = &a->tp[a->ntp++];
    memset(t, 0, sizeof(*t));
    memcpy(t->key, key, sizeof(key));
    t->min_off = INT64_MAX;
    t->max_off = -1;
    t->hw = -1;
    return t;
}

static int64_t hw_of(const bson_t *doc, const char *tp)
{
    bson_iter_t it, sub;
    if (doc && bson_iter_init_find(&it, doc, "hw") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &sub) && bson_iter_find(&sub, tp))
        return bson_iter_as_int64(&sub);
    return -1;
}

/* Collects the group's partitions and hw values (from current, when exact). */
static void agg_partitions(agg *a, const pwc_rollup_group *g, const pwc_entry *entries,
                           const bson_t *current)
{
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < g->n; i++) {
        tp_state *t = tp_find(a, &entries[g->idx[i]]);
        if (t && t->max_off < 0 && t->min_off == INT64_MAX)
            t->hw = hw_of(current, t->key);
    }
}

/* Counts entries above each partition's hw (hw = -1 on the fast path). */
static void agg_count(agg *a, const pwc_rollup_group *g, const pwc_entry *entries)
{
    a->min = 0;
    a->max = 0;
    for (size_t i = 0; i < g->n; i++) {
        const pwc_entry *e = &entries[g->idx[i]];
        tp_state *t = tp_find(a, e);
        if (!t || e->offset <= t->hw)
            continue;
        if (e->offset < t->min_off)
            t->min_off = e->offset;
        if (e->offset > t->max_off)
            t->max_off = e->offset;
        t->counted = 1;
        const pwc_record *r = e->rec;
        if (r->kind == PWC_READING) {
            if (a->readings == 0 || r->value < a->min)
                a->min = r->value;
            if (a->readings == 0 || r->value > a->max)
                a->max = r->value;
            a->readings++;
            a->sum += r->value;
        } else {
            a->alerts++;
        }
        a->count++;
        a->last = r;
    }
}

static void append_date(bson_t *b, const char *name, int64_t ms)
{
    BSON_APPEND_DATE_TIME(b, name, ms);
}

static void append_static(pwc_rollup_kind k, const pwc_record *r, bson_t *b)
{
    if (k == PWC_ROLLUP_DEVICE_DAY) {
        BSON_APPEND_UTF8(b, "day", r->day);
        BSON_APPEND_UTF8(b, "device", r->device);
        BSON_APPEND_UTF8(b, "zone", r->zone);
        return;
    }
    append_date(b, "hour", r->hour_ms);
    BSON_APPEND_UTF8(b, "day", r->day);
    BSON_APPEND_UTF8(b, "zone", r->zone);
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_UTF8(b, "type", r->type);
    } else {
        BSON_APPEND_UTF8(b, "severity", r->severity);
        BSON_APPEND_UTF8(b, "code", r->code);
    }
}

static void append_counts(pwc_rollup_kind k, const agg *a, bson_t *b)
{
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_INT64(b, "count", a->count);
        BSON_APPEND_DOUBLE(b, "sum", a->sum);
    } else if (k == PWC_ROLLUP_ALERTS) {
        BSON_APPEND_INT64(b, "count", a->count);
    } else {
        BSON_APPEND_INT64(b, "readings", a->readings);
        BSON_APPEND_INT64(b, "alerts", a->alerts);
    }
}

static void append_hw_fields(const agg *a, bson_t *b, int dotted)
{
    char path[PWC_ORIGIN_LEN + 4];
    for (size_t i = 0; i < a->ntp; i++) {
        if (!a->tp[i].counted)
            continue;
        snprintf(path, sizeof(path), dotted ? "hw.%s" : "%s", a->tp[i].key);
        BSON_APPEND_INT64(b, path, a->tp[i].max_off);
    }
}

/* {$set: static, $inc: counts, $min: {min}, $max: {max, hw.<tp>: max_off}} */
static void build_update(pwc_rollup_kind k, const agg *a, bson_t *update)
{
    bson_t set, inc, mn, mx;
    bson_init(update);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    append_static(k, a->last, &set);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$inc", &inc);
    append_counts(k, a, &inc);
    bson_append_document_end(update, &inc);
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_DOCUMENT_BEGIN(update, "$min", &mn);
        BSON_APPEND_DOUBLE(&mn, "min", a->min);
        bson_append_document_end(update, &mn);
    }
    BSON_APPEND_DOCUMENT_BEGIN(update, "$max", &mx);
    if (k == PWC_ROLLUP_READINGS)
        BSON_APPEND_DOUBLE(&mx, "max", a->max);
    append_hw_fields(a, &mx, 1);
    bson_append_document_end(update, &mx);
}

void pwc_rollup_fast_op(pwc_rollup_kind k, const pwc_rollup_group *g, const pwc_entry *entries,
                        bson_t *filter, bson_t *update)
{
    agg a;
    agg_partitions(&a, g, entries, NULL);
    agg_count(&a, g, entries);
    bson_t and_arr, clause, or_arr, c0, c1, cond;
    char path[PWC_ORIGIN_LEN + 4], idx[24];
    bson_init(filter);
    BSON_APPEND_UTF8(filter, "_id", g->key);
    BSON_APPEND_ARRAY_BEGIN(filter, "$and", &and_arr);
    for (size_t i = 0; i < a.ntp; i++) {
        snprintf(idx, sizeof(idx), "%zu", i);
        snprintf(path, sizeof(path), "hw.%s", a.tp[i].key);
        BSON_APPEND_DOCUMENT_BEGIN(&and_arr, idx, &clause);
        BSON_APPEND_ARRAY_BEGIN(&clause, "$or", &or_arr);
        BSON_APPEND_DOCUMENT_BEGIN(&or_arr, "0", &c0);
        BSON_APPEND_DOCUMENT_BEGIN(&c0, path, &cond);
        BSON_APPEND_BOOL(&cond, "$exists", false);
        bson_append_document_end(&c0, &cond);
        bson_append_document_end(&or_arr, &c0);
        BSON_APPEND_DOCUMENT_BEGIN(&or_arr, "1", &c1);
        BSON_APPEND_DOCUMENT_BEGIN(&c1, path, &cond);
        BSON_APPEND_INT64(&cond, "$lt", a.tp[i].min_off);
        bson_append_document_end(&c1, &cond);
        bson_append_document_end(&or_arr, &c1);
        bson_append_array_end(&clause, &or_arr);
        bson_append_document_end(&and_arr, &clause);
    }
    bson_append_array_end(filter, &and_arr);
    build_update(k, &a, update);
}

static void build_insert(pwc_rollup_kind k, const char *key, const agg *a, bson_t *doc)
{
    bson_t hw;
    bson_init(doc);
    BSON_APPEND_UTF8(doc, "_id", key);
    append_static(k, a->last, doc);
    append_counts(k, a, doc);
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_DOUBLE(doc, "min", a->min);
        BSON_APPEND_DOUBLE(doc, "max", a->max);
    }
    BSON_APPEND_DOCUMENT_BEGIN(doc, "hw", &hw);
    append_hw_fields(a, &hw, 0);
    bson_append_document_end(doc, &hw);
}

size_t pwc_rollup_exact_op(pwc_rollup_kind k, const pwc_rollup_group *g, const pwc_entry *entries,
                           const bson_t *current, bson_t *filter, bson_t *out, int *insert)
{
    agg a;
    agg_partitions(&a, g, entries, current);
    agg_count(&a, g, entries);
    if (a.count == 0)
        return 0;
    if (!current) {
        *insert = 1;
        build_insert(k, g->key, &a, out);
        return (size_t)a.count;
    }
    *insert = 0;
    char path[PWC_ORIGIN_LEN + 4];
    bson_t cond;
    bson_init(filter);
    BSON_APPEND_UTF8(filter, "_id", g->key);
    for (size_t i = 0; i < a.ntp; i++) {
        snprintf(path, sizeof(path), "hw.%s", a.tp[i].key);
        if (a.tp[i].hw >= 0) {
            BSON_APPEND_INT64(filter, path, a.tp[i].hw);
        } else {
            BSON_APPEND_DOCUMENT_BEGIN(filter, path, &cond);
            BSON_APPEND_BOOL(&cond, "$exists", false);
            bson_append_document_end(filter, &cond);
        }
    }
    build_update(k, &a, out);
    return (size_t)a.count;
}

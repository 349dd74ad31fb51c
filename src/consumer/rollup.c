/* rollup: bucket keys, grouping, state folding and the absolute-state
 * update documents (see rollup.h). */
#include "rollup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const collections[PWC_ROLLUP_KINDS] = {"rollup_readings", "rollup_alerts"};

const char *pwc_rollup_collection(pwc_rollup_kind k)
{
    return collections[k];
}

int pwc_rollup_key(pwc_rollup_kind k, const pwc_entry *e, char *out, size_t outlen)
{
    const pwc_record *r = e->rec;
    char tp[PWC_ORIGIN_LEN];
    int n;
    pwc_tp_key(e->topic, e->partition, tp, sizeof(tp));
    if (k == PWC_ROLLUP_READINGS) {
        if (r->kind != PWC_READING)
            return -1;
        n = snprintf(out, outlen, "%lld|%s|%s|%s", (long long)r->hour_ms, r->zone, r->type, tp);
    } else {
        if (r->kind != PWC_ALERT)
            return -1;
        n = snprintf(out, outlen, "%lld|%s|%s|%s|%s", (long long)r->hour_ms, r->zone, r->severity,
                     r->code, tp);
    }
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
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Fills out->items from m sorted keyed entries. 0 or -1. */
static int groups_from_sorted(const keyed_entry *ke, size_t m, pwc_rollup_groups *out)
{
    out->items = calloc(m ? m : 1, sizeof(*out->items));
    if (!out->items)
        return -1;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && strcmp(ke[j].key, ke[i].key) == 0)
            j++;
        pwc_rollup_group *g = &out->items[out->n++];
        memcpy(g->key, ke[i].key, sizeof(g->key));
        g->idx = malloc((j - i) * sizeof(size_t));
        if (!g->idx)
            return -1;
        for (size_t q = i; q < j; q++)
            g->idx[g->n++] = ke[q].idx;
        i = j;
    }
    return 0;
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
        if (pwc_rollup_key(k, &entries[i], ke[m].key, sizeof(ke[m].key)) != 0)
            continue;
        ke[m++].idx = i;
    }
    qsort(ke, m, sizeof(*ke), keyed_cmp);
    int rc = groups_from_sorted(ke, m, out);
    free(ke);
    if (rc != 0)
        pwc_rollup_groups_free(out);
    return rc;
}

void pwc_rollup_groups_free(pwc_rollup_groups *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->items[i].idx);
    free(g->items);
    memset(g, 0, sizeof(*g));
}

void pwc_rollup_state_init(pwc_rollup_state *s)
{
    memset(s, 0, sizeof(*s));
    s->hw = -1;
}

static double doc_double(const bson_t *doc, const char *field)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, field) ? bson_iter_as_double(&it) : 0.0;
}

void pwc_rollup_state_from_doc(const bson_t *doc, pwc_rollup_state *s)
{
    bson_iter_t it;
    pwc_rollup_state_init(s);
    if (!doc)
        return;
    if (bson_iter_init_find(&it, doc, "hw"))
        s->hw = bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, "count"))
        s->count = bson_iter_as_int64(&it);
    s->sum = doc_double(doc, "sum");
    s->min = doc_double(doc, "min");
    s->max = doc_double(doc, "max");
}

size_t pwc_rollup_fold(pwc_rollup_state *s, const pwc_rollup_group *g, const pwc_entry *entries)
{
    size_t counted = 0;
    for (size_t i = 0; i < g->n; i++) {
        const pwc_entry *e = &entries[g->idx[i]];
        if (e->offset <= s->hw)
            continue;
        s->hw = e->offset;
        if (e->rec->kind == PWC_READING) {
            double v = e->rec->value;
            if (s->count == 0 || v < s->min)
                s->min = v;
            if (s->count == 0 || v > s->max)
                s->max = v;
            s->sum += v;
        }
        s->count++;
        counted++;
    }
    return counted;
}

static void append_labels(pwc_rollup_kind k, const pwc_record *r, bson_t *b)
{
    BSON_APPEND_DATE_TIME(b, "hour", r->hour_ms);
    BSON_APPEND_UTF8(b, "day", r->day);
    BSON_APPEND_UTF8(b, "zone", r->zone);
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_UTF8(b, "type", r->type);
    } else {
        BSON_APPEND_UTF8(b, "severity", r->severity);
        BSON_APPEND_UTF8(b, "code", r->code);
    }
}

void pwc_rollup_set_op(pwc_rollup_kind k, const pwc_rollup_group *g, const pwc_entry *entries,
                       const pwc_rollup_state *s, bson_t *update)
{
    const pwc_entry *last = &entries[g->idx[g->n - 1]];
    char tp[PWC_ORIGIN_LEN];
    bson_t set;
    pwc_tp_key(last->topic, last->partition, tp, sizeof(tp));
    bson_init(update);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    append_labels(k, last->rec, &set);
    BSON_APPEND_INT64(&set, "count", s->count);
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_DOUBLE(&set, "sum", s->sum);
        BSON_APPEND_DOUBLE(&set, "min", s->min);
        BSON_APPEND_DOUBLE(&set, "max", s->max);
    }
    BSON_APPEND_UTF8(&set, "tp", tp);
    BSON_APPEND_INT64(&set, "hw", s->hw);
    bson_append_document_end(update, &set);
}

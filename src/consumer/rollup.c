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
    if (e->rec->kind != (k == PWC_ROLLUP_READINGS ? PWC_READING : PWC_ALERT))
        return -1;
    char tp[PWC_ORIGIN_LEN];
    pwc_tp_key(e->topic, e->partition, tp, sizeof(tp));
    int n = snprintf(out, outlen, "%lld|%s", (long long)e->rec->hour_ms, tp);
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
        if (!entries[i].contributes && !entries[i].new_device)
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

void pwc_rollup_state_free(pwc_rollup_state *s)
{
    free(s->cells.items);
    free(s->devices.items);
    pwc_rollup_state_init(s);
}

static pwc_rollup_cell *cell_add(pwc_rollup_cells *a)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        pwc_rollup_cell *c = realloc(a->items, cap * sizeof(*c));
        if (!c)
            return NULL;
        a->items = c;
        a->cap = cap;
    }
    pwc_rollup_cell *c = &a->items[a->n++];
    memset(c, 0, sizeof(*c));
    return c;
}

static void copy_str(bson_iter_t *it, char *out, size_t outlen)
{
    if (BSON_ITER_HOLDS_UTF8(it))
        snprintf(out, outlen, "%s", bson_iter_utf8(it, NULL));
}

static void cell_from_doc(pwc_rollup_kind k, bson_iter_t *f, pwc_rollup_cell *c)
{
    while (bson_iter_next(f)) {
        const char *key = bson_iter_key(f);
        if (strcmp(key, "zone") == 0)
            copy_str(f, c->zone, sizeof(c->zone));
        else if (strcmp(key, k == PWC_ROLLUP_READINGS ? "type" : "severity") == 0)
            copy_str(f, c->label, sizeof(c->label));
        else if (strcmp(key, "code") == 0)
            copy_str(f, c->code, sizeof(c->code));
        else if (strcmp(key, "count") == 0)
            c->count = bson_iter_as_int64(f);
        else if (strcmp(key, "sum") == 0)
            c->sum = bson_iter_as_double(f);
        else if (strcmp(key, "min") == 0)
            c->min = bson_iter_as_double(f);
        else if (strcmp(key, "max") == 0)
            c->max = bson_iter_as_double(f);
    }
}

/* Reads the array `name` of doc into a. 0 or -1 (ENOMEM). */
static int cells_from_doc(pwc_rollup_kind k, const bson_t *doc, const char *name,
                          pwc_rollup_cells *a)
{
    bson_iter_t it, arr, f;
    if (!bson_iter_init_find(&it, doc, name) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return 0;
    while (bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &f))
            continue;
        pwc_rollup_cell *c = cell_add(a);
        if (!c)
            return -1;
        cell_from_doc(k, &f, c);
    }
    return 0;
}

int pwc_rollup_state_from_doc(pwc_rollup_kind k, const bson_t *doc, pwc_rollup_state *s)
{
    bson_iter_t it;
    pwc_rollup_state_init(s);
    if (!doc)
        return 0;
    if (bson_iter_init_find(&it, doc, "hw"))
        s->hw = bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, "count"))
        s->count = bson_iter_as_int64(&it);
    if (cells_from_doc(k, doc, "cells", &s->cells) != 0 ||
        cells_from_doc(k, doc, "devices", &s->devices) != 0) {
        pwc_rollup_state_free(s);
        return -1;
    }
    return 0;
}

/* The cell (zone, label, code) of a, added when missing. NULL on ENOMEM. */
static pwc_rollup_cell *cell_find(pwc_rollup_cells *a, const char *zone, const char *label,
                                  const char *code)
{
    for (size_t i = 0; i < a->n; i++) {
        pwc_rollup_cell *c = &a->items[i];
        if (strcmp(c->zone, zone) == 0 && strcmp(c->label, label) == 0 &&
            strcmp(c->code, code) == 0)
            return c;
    }
    pwc_rollup_cell *c = cell_add(a);
    if (c) {
        snprintf(c->zone, sizeof(c->zone), "%s", zone);
        snprintf(c->label, sizeof(c->label), "%s", label);
        snprintf(c->code, sizeof(c->code), "%s", code);
    }
    return c;
}

/* Counts one delivery: its record in its cell, its device when it made the
 * device active for the day. -1 on ENOMEM. */
static int fold_one(pwc_rollup_kind k, pwc_rollup_state *s, const pwc_entry *e)
{
    const pwc_record *r = e->rec;
    if (e->new_device) {
        pwc_rollup_cell *d = cell_find(&s->devices, r->zone, "", "");
        if (!d)
            return -1;
        d->count++;
    }
    if (!e->contributes)
        return 0;
    pwc_rollup_cell *c = k == PWC_ROLLUP_READINGS
                             ? cell_find(&s->cells, r->zone, r->type, "")
                             : cell_find(&s->cells, r->zone, r->severity, r->code);
    if (!c)
        return -1;
    if (k == PWC_ROLLUP_READINGS) {
        double v = r->value;
        if (c->count == 0 || v < c->min)
            c->min = v;
        if (c->count == 0 || v > c->max)
            c->max = v;
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
        if (e->offset <= s->hw)
            continue;
        if (fold_one(k, s, e) != 0)
            return -1;
        s->hw = e->offset;
        counted++;
    }
    return counted;
}

static void append_cell(pwc_rollup_kind k, const pwc_rollup_cell *c, const char *idx, bson_t *arr)
{
    bson_t d;
    BSON_APPEND_DOCUMENT_BEGIN(arr, idx, &d);
    BSON_APPEND_UTF8(&d, "zone", c->zone);
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_UTF8(&d, "type", c->label);
    } else {
        BSON_APPEND_UTF8(&d, "severity", c->label);
        BSON_APPEND_UTF8(&d, "code", c->code);
    }
    BSON_APPEND_INT64(&d, "count", c->count);
    if (k == PWC_ROLLUP_READINGS) {
        BSON_APPEND_DOUBLE(&d, "sum", c->sum);
        BSON_APPEND_DOUBLE(&d, "min", c->min);
        BSON_APPEND_DOUBLE(&d, "max", c->max);
    }
    bson_append_document_end(arr, &d);
}

static void append_devices(const pwc_rollup_cells *a, bson_t *set)
{
    char idx[24];
    bson_t arr, d;
    BSON_APPEND_ARRAY_BEGIN(set, "devices", &arr);
    for (size_t i = 0; i < a->n; i++) {
        snprintf(idx, sizeof(idx), "%zu", i);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, idx, &d);
        BSON_APPEND_UTF8(&d, "zone", a->items[i].zone);
        BSON_APPEND_INT64(&d, "count", a->items[i].count);
        bson_append_document_end(&arr, &d);
    }
    bson_append_array_end(set, &arr);
}

void pwc_rollup_set_op(pwc_rollup_kind k, const pwc_rollup_group *g, const pwc_entry *entries,
                       const pwc_rollup_state *s, bson_t *update)
{
    const pwc_entry *last = &entries[g->idx[g->n - 1]];
    char tp[PWC_ORIGIN_LEN], idx[24];
    bson_t set, arr;
    pwc_tp_key(last->topic, last->partition, tp, sizeof(tp));
    bson_init(update);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_DATE_TIME(&set, "hour", last->rec->hour_ms);
    BSON_APPEND_UTF8(&set, "day", last->rec->day);
    BSON_APPEND_UTF8(&set, "tp", tp);
    BSON_APPEND_INT64(&set, "hw", s->hw);
    BSON_APPEND_INT64(&set, "count", s->count);
    BSON_APPEND_ARRAY_BEGIN(&set, "cells", &arr);
    for (size_t i = 0; i < s->cells.n; i++) {
        snprintf(idx, sizeof(idx), "%zu", i);
        append_cell(k, &s->cells.items[i], idx, &arr);
    }
    bson_append_array_end(&set, &arr);
    append_devices(&s->devices, &set);
    bson_append_document_end(update, &set);
}

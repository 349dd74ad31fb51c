/* dq_tally: counts by reason (see dq_tally.h). */
#include "dq_tally.h"

#include <stdlib.h>
#include <string.h>

void dq_tally_init(dq_tally *t)
{
    memset(t, 0, sizeof *t);
}

void dq_tally_free(dq_tally *t)
{
    for (size_t i = 0; i < t->len; i++) {
        free(t->items[i].reason);
    }
    free(t->items);
    dq_tally_init(t);
}

static dq_tally_entry *dq_tally_find(const dq_tally *t, const char *reason)
{
    for (size_t i = 0; i < t->len; i++) {
        if (strcmp(t->items[i].reason, reason) == 0) {
            return &t->items[i];
        }
    }
    return NULL;
}

static dq_tally_entry *dq_tally_append(dq_tally *t, const char *reason)
{
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        dq_tally_entry *items = realloc(t->items, cap * sizeof *items);
        if (items == NULL) {
            return NULL;
        }
        t->items = items;
        t->cap = cap;
    }
    char *copy = strdup(reason);
    if (copy == NULL) {
        return NULL;
    }
    t->items[t->len] = (dq_tally_entry){.reason = copy, .count = 0};
    return &t->items[t->len++];
}

int dq_tally_add(dq_tally *t, const char *reason)
{
    const char *r = (reason == NULL || reason[0] == '\0') ? "-" : reason;
    dq_tally_entry *e = dq_tally_find(t, r);
    if (e == NULL) {
        e = dq_tally_append(t, r);
    }
    if (e == NULL) {
        return -1;
    }
    e->count++;
    t->total++;
    return 0;
}

long dq_tally_count(const dq_tally *t, const char *reason)
{
    const dq_tally_entry *e = dq_tally_find(t, reason == NULL ? "-" : reason);
    return e ? e->count : 0;
}

static int dq_tally_cmp(const void *a, const void *b)
{
    const dq_tally_entry *x = a, *y = b;
    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return strcmp(x->reason, y->reason);
}

void dq_tally_sort(dq_tally *t)
{
    if (t->len > 1) {
        qsort(t->items, t->len, sizeof t->items[0], dq_tally_cmp);
    }
}

void dq_tally_print(dq_tally *t, FILE *out)
{
    dq_tally_sort(t);
    size_t width = 6;
    for (size_t i = 0; i < t->len; i++) {
        size_t n = strlen(t->items[i].reason);
        width = n > width ? n : width;
    }
    fputs("by reason:\n", out);
    for (size_t i = 0; i < t->len; i++) {
        fprintf(out, "  %-*s  %ld\n", (int)width, t->items[i].reason, t->items[i].count);
    }
}

/* cache: chained hash map with string keys (see cache.h). */
#include "cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    char *key;
    unsigned char value[]; /* value_size bytes */
} entry;

struct pwc_cache {
    entry **buckets;
    size_t nbuckets, count, max_entries, value_size;
    pwc_cache_drop_fn drop;
};

static void entry_free(pwc_cache *c, entry *e)
{
    if (c->drop) {
        c->drop(e->value);
    }
    free(e->key);
    free(e);
}

static size_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return (size_t)h;
}

pwc_cache *pwc_cache_new(size_t max_entries, size_t value_size, pwc_cache_drop_fn drop)
{
    pwc_cache *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->nbuckets = 64;
    while (c->nbuckets < max_entries) {
        c->nbuckets *= 2;
    }
    c->buckets = calloc(c->nbuckets, sizeof(entry *));
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->max_entries = max_entries;
    c->value_size = value_size;
    c->drop = drop;
    return c;
}

void pwc_cache_clear(pwc_cache *c)
{
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (entry *e = c->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(c, e);
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

void pwc_cache_reserve(pwc_cache *c, size_t n)
{
    if (c->count + n > c->max_entries) {
        pwc_cache_clear(c);
    }
}

void pwc_cache_free(pwc_cache *c)
{
    if (!c) {
        return;
    }
    pwc_cache_clear(c);
    free(c->buckets);
    free(c);
}

static entry **slot_of(pwc_cache *c, const char *key)
{
    entry **p = &c->buckets[hash_key(key) & (c->nbuckets - 1)];
    while (*p && strcmp((*p)->key, key) != 0) {
        p = &(*p)->next;
    }
    return p;
}

void *pwc_cache_get(pwc_cache *c, const char *key)
{
    entry *e = *slot_of(c, key);
    return e ? e->value : NULL;
}

int pwc_cache_put(pwc_cache *c, const char *key, const void *value)
{
    entry **p = slot_of(c, key);
    if (*p) {
        if (c->drop) {
            c->drop((*p)->value);
        }
        memcpy((*p)->value, value, c->value_size);
        return 0;
    }
    if (c->count >= c->max_entries) {
        pwc_cache_clear(c);
        p = slot_of(c, key);
    }
    entry *e = malloc(sizeof(*e) + c->value_size);
    char *k = strdup(key);
    if (!e || !k) {
        free(e);
        free(k);
        return -1;
    }
    e->next = NULL;
    e->key = k;
    memcpy(e->value, value, c->value_size);
    *p = e;
    c->count++;
    return 0;
}

void pwc_cache_remove(pwc_cache *c, const char *key)
{
    entry **p = slot_of(c, key);
    entry *e = *p;
    if (!e) {
        return;
    }
    *p = e->next;
    entry_free(c, e);
    c->count--;
}

size_t pwc_cache_count(const pwc_cache *c)
{
    return c->count;
}

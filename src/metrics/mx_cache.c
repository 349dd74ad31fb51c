/* mx_cache: TTL cache of packed view answers with single flight. */
#include "mx_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"

/* A stale answer is served (while its successor is computed) only while it
 * is younger than this many TTLs; an older one, after a quiet period, is
 * recomputed in the request. */
#define MX_CACHE_STALE_TTLS 5

typedef struct {
    char *key;    /* NULL: free slot */
    uint8_t *buf; /* answer, NULL while none */
    size_t len;
    int64_t stored_us; /* monotonic time the answer was computed */
    int computing;     /* a thread is computing this key */
    int waiters;
} mx_slot;

struct mx_cache {
    int64_t ttl_us;
    size_t cap;
    mx_slot *slots;
    int refreshing; /* background refreshes running */
    pthread_mutex_t mu;
    pthread_cond_t done;
};

/* One background refresh: owns ctx (a copy) and nothing else. */
typedef struct {
    mx_cache *c;
    mx_slot *slot; /* stays put: a computing slot is never evicted */
    mx_cache_compute_fn fn;
    void *ctx;
} mx_refresh;

mx_cache *mx_cache_new(int64_t ttl_ms, size_t capacity)
{
    mx_cache *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->ttl_us = ttl_ms * 1000;
    c->cap = capacity ? capacity : 1;
    c->slots = calloc(c->cap, sizeof(*c->slots));
    if (c->slots == NULL) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->done, NULL);
    return c;
}

void mx_cache_free(mx_cache *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    while (c->refreshing > 0) {
        pthread_cond_wait(&c->done, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < c->cap; i++) {
        free(c->slots[i].key);
        free(c->slots[i].buf);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->done);
    free(c);
}

/* The slot of key, or a free / the least recently stored idle slot for it. */
static mx_slot *find_slot(mx_cache *c, const char *key)
{
    mx_slot *victim = NULL;
    for (size_t i = 0; i < c->cap; i++) {
        mx_slot *s = &c->slots[i];
        if (s->key != NULL && strcmp(s->key, key) == 0) {
            return s;
        }
        if (s->key == NULL) {
            if (victim == NULL || victim->key != NULL) {
                victim = s;
            }
        } else if (!s->computing && s->waiters == 0 &&
                   (victim == NULL || (victim->key != NULL && s->stored_us < victim->stored_us))) {
            victim = s;
        }
    }
    if (victim == NULL) {
        return NULL; /* every slot busy: compute without caching */
    }
    char *k = strdup(key);
    if (k == NULL) {
        return NULL;
    }
    free(victim->key);
    free(victim->buf);
    memset(victim, 0, sizeof(*victim));
    victim->key = k;
    return victim;
}

static int copy_out(const mx_slot *s, uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    *out = malloc(s->len ? s->len : 1);
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(*out, s->buf, s->len);
    *outlen = s->len;
    return 0;
}

/* Under c->mu: the slot's computation ended with rc (buf on success). */
static void finish_compute(mx_cache *c, mx_slot *s, int rc, uint8_t *buf, size_t len)
{
    s->computing = 0;
    if (rc == 0) {
        free(s->buf);
        s->buf = buf;
        s->len = len;
        /* fresh for ttl after it is ready, even when computing took longer */
        s->stored_us = pw_monotonic_us();
    }
    pthread_cond_broadcast(&c->done);
}

static void *refresh_main(void *arg)
{
    mx_refresh *r = arg;
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    int rc = r->fn(r->ctx, 1, &buf, &len, err, sizeof(err));
    pthread_mutex_lock(&r->c->mu);
    finish_compute(r->c, r->slot, rc, buf, len);
    r->c->refreshing--;
    pthread_mutex_unlock(&r->c->mu);
    free(r->ctx);
    free(r);
    return NULL;
}

/* Under c->mu, s->buf set: starts a background refresh of s. 0, or -1 when
 * no thread could be started (the caller computes). */
static int start_refresh(mx_cache *c, mx_slot *s, mx_cache_compute_fn fn, const void *ctx,
                         size_t ctx_size)
{
    mx_refresh *r = calloc(1, sizeof(*r));
    void *copy = malloc(ctx_size);
    pthread_attr_t attr;
    pthread_t t;
    if (r == NULL || copy == NULL || pthread_attr_init(&attr) != 0) {
        free(r);
        free(copy);
        return -1;
    }
    memcpy(copy, ctx, ctx_size);
    *r = (mx_refresh){c, s, fn, copy};
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    s->computing = 1;
    c->refreshing++;
    int rc = pthread_create(&t, &attr, refresh_main, r);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        s->computing = 0;
        c->refreshing--;
        free(copy);
        free(r);
        return -1;
    }
    return 0;
}

int mx_cache_get(mx_cache *c, const char *key, mx_cache_compute_fn fn, void *ctx, size_t ctx_size,
                 uint8_t **out, size_t *outlen, int *hit, char *err, size_t errlen)
{
    *hit = 0;
    if (c == NULL || c->ttl_us <= 0) {
        return fn(ctx, 0, out, outlen, err, errlen);
    }
    pthread_mutex_lock(&c->mu);
    mx_slot *s = find_slot(c, key);
    if (s == NULL) {
        pthread_mutex_unlock(&c->mu);
        return fn(ctx, 0, out, outlen, err, errlen);
    }
    for (;;) {
        int64_t age = pw_monotonic_us() - s->stored_us;
        int fresh = s->buf != NULL && age < c->ttl_us;
        int usable = s->buf != NULL && age < c->ttl_us * MX_CACHE_STALE_TTLS;
        if (fresh || (usable && s->computing) ||
            (usable && ctx_size > 0 && start_refresh(c, s, fn, ctx, ctx_size) == 0)) {
            /* fresh, or the previous answer while a refresh runs */
            int rc = copy_out(s, out, outlen, err, errlen);
            *hit = rc == 0;
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
        if (!s->computing) {
            break; /* nothing usable and nobody computing: this request computes */
        }
        s->waiters++;
        pthread_cond_wait(&c->done, &c->mu);
        s->waiters--;
    }
    s->computing = 1;
    pthread_mutex_unlock(&c->mu);

    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = fn(ctx, 0, &buf, &len, err, errlen);

    pthread_mutex_lock(&c->mu);
    finish_compute(c, s, rc, buf, len);
    if (rc == 0) {
        rc = copy_out(s, out, outlen, err, errlen);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

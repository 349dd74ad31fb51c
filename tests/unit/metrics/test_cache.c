/* Unit tests for mx_cache: reuse within the TTL, no caching at TTL 0,
 * failures not cached, distinct keys, eviction when full, and stale answers
 * served while a background refresh runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mx_cache.h"

typedef struct {
    int calls;
    int fail;       /* nonzero: computations fail with this value */
    int background; /* computations that ran as a background refresh */
} counter;

/* Answers "v<calls>" so each computation is distinguishable. */
static int compute(void *ctx, int background, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    counter *c = ctx;
    int fail = c->fail; /* read before calls is seen to grow */
    c->background += background;
    __atomic_add_fetch(&c->calls, 1, __ATOMIC_SEQ_CST);
    if (fail) {
        snprintf(err, errlen, "store down");
        return fail;
    }
    char text[16];
    int n = snprintf(text, sizeof(text), "v%d", c->calls);
    *buf = malloc((size_t)n);
    memcpy(*buf, text, (size_t)n);
    *len = (size_t)n;
    return 0;
}

static void get(mx_cache *c, const char *key, counter *k, const char *want, int want_hit)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int hit = -1;
    char err[64];
    assert_int_equal(mx_cache_get(c, key, compute, k, 0, &buf, &len, &hit, err, sizeof(err)), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    assert_int_equal(hit, want_hit);
    free(buf);
}

static void reuses_answer_within_ttl(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(60000, 8);
    counter k = {0, 0, 0};
    get(c, "a", &k, "v1", 0);
    get(c, "a", &k, "v1", 1);
    get(c, "b", &k, "v2", 0); /* another key computes */
    get(c, "a", &k, "v1", 1);
    assert_int_equal(k.calls, 2);
    mx_cache_free(c);
}

static void expires_after_ttl(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(20, 8);
    counter k = {0, 0, 0};
    get(c, "a", &k, "v1", 0);
    usleep(40000);
    get(c, "a", &k, "v2", 0);
    mx_cache_free(c);
}

static void ttl_zero_always_computes(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(0, 8);
    counter k = {0, 0, 0};
    get(c, "a", &k, "v1", 0);
    get(c, "a", &k, "v2", 0);
    get(NULL, "a", &k, "v3", 0); /* no cache at all */
    mx_cache_free(c);
}

static void failures_are_not_cached(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(60000, 8);
    counter k = {0, -1, 0};
    uint8_t *buf = NULL;
    size_t len = 0;
    int hit = 0;
    char err[64];
    assert_int_equal(mx_cache_get(c, "a", compute, &k, 0, &buf, &len, &hit, err, sizeof(err)), -1);
    assert_string_equal(err, "store down");
    k.fail = 0;
    get(c, "a", &k, "v2", 0);
    get(c, "a", &k, "v2", 1);
    mx_cache_free(c);
}

static void evicts_oldest_when_full(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(60000, 2);
    counter k = {0, 0, 0};
    get(c, "a", &k, "v1", 0);
    get(c, "b", &k, "v2", 0);
    get(c, "c", &k, "v3", 0); /* evicts a */
    get(c, "b", &k, "v2", 1);
    get(c, "a", &k, "v4", 0);
    mx_cache_free(c);
}

/* A background refresh works on a copy of its context: it reaches shared
 * state only through pointers. */
typedef struct {
    counter *shared;
} shared_ctx;

static int compute_shared(void *ctx, int background, uint8_t **buf, size_t *len, char *err,
                          size_t errlen)
{
    shared_ctx *s = ctx;
    return compute(s->shared, background, buf, len, err, errlen);
}

static void get_async(mx_cache *c, counter *k, const char *want, int want_hit)
{
    shared_ctx ctx = {k};
    uint8_t *buf = NULL;
    size_t len = 0;
    int hit = -1;
    char err[64];
    assert_int_equal(
        mx_cache_get(c, "a", compute_shared, &ctx, sizeof(ctx), &buf, &len, &hit, err, sizeof(err)),
        0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    assert_int_equal(hit, want_hit);
    free(buf);
}

static void stale_answer_while_refreshing_in_background(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(20, 8);
    counter k = {0, 0, 0};
    get_async(c, &k, "v1", 0); /* nothing cached yet: the request computes */
    usleep(40000);
    get_async(c, &k, "v1", 1); /* stale: served at once, refresh started */
    /* the refreshed answer replaces the stale one once the thread is done */
    shared_ctx ctx = {&k};
    int seen_v2 = 0;
    for (int i = 0; i < 1000 && !seen_v2; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int hit = 0;
        char err[64];
        assert_int_equal(mx_cache_get(c, "a", compute_shared, &ctx, sizeof(ctx), &buf, &len, &hit,
                                      err, sizeof(err)),
                         0);
        assert_int_equal(hit, 1);
        seen_v2 = len == 2 && memcmp(buf, "v2", 2) == 0;
        if (!seen_v2) {
            assert_memory_equal(buf, "v1", 2);
            usleep(5000);
        }
        free(buf);
    }
    assert_true(seen_v2);
    get_async(c, &k, "v2", 1); /* fresh now: no further computation */
    mx_cache_free(c);
    assert_int_equal(k.calls, 2);
    assert_int_equal(k.background, 1); /* the refresh, and only it, ran in the background */
}

/* A computation's own failure value reaches the caller unchanged (the
 * service tells "busy" from "store down" by it). */
static void failure_value_is_passed_through(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(60000, 8);
    counter k = {0, -3, 0};
    uint8_t *buf = NULL;
    size_t len = 0;
    int hit = 1;
    char err[64];
    assert_int_equal(mx_cache_get(c, "a", compute, &k, 0, &buf, &len, &hit, err, sizeof(err)), -3);
    assert_int_equal(hit, 0);
    assert_null(buf);
    mx_cache_free(c);
    mx_cache_get(NULL, "a", compute, &k, 0, &buf, &len, &hit, err, sizeof(err));
    assert_int_equal(k.calls, 2);
    assert_int_equal(k.background, 0);
}

/* A refresh that fails (e.g. no computation slot) leaves the stale answer
 * served, and a later request starts another refresh. */
static void failed_refresh_keeps_the_stale_answer(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(1000, 8); /* stale after 1 s, served for 5 s */
    counter k = {0, 0, 0};
    get_async(c, &k, "v1", 0);
    usleep(1100000);
    k.fail = -3;
    get_async(c, &k, "v1", 1); /* stale: served, its refresh fails */
    for (int i = 0; i < 2000 && __atomic_load_n(&k.calls, __ATOMIC_SEQ_CST) < 2; i++) {
        usleep(100);
    }
    assert_int_equal(k.calls, 2);
    k.fail = 0;
    /* still the stale answer until a request after the failed refresh starts another one */
    shared_ctx ctx = {&k};
    int seen_v3 = 0;
    for (int i = 0; i < 10000 && !seen_v3; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int hit = 0;
        char err[64];
        assert_int_equal(mx_cache_get(c, "a", compute_shared, &ctx, sizeof(ctx), &buf, &len, &hit,
                                      err, sizeof(err)),
                         0);
        assert_int_equal(hit, 1);
        seen_v3 = len == 2 && memcmp(buf, "v3", 2) == 0;
        if (!seen_v3) {
            assert_memory_equal(buf, "v1", 2);
            usleep(200);
        }
        free(buf);
    }
    assert_true(seen_v3);
    mx_cache_free(c);
    assert_int_equal(k.calls, 3);
    assert_int_equal(k.background, 2);
}

static void too_old_answer_is_recomputed_in_the_request(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(10, 8);
    counter k = {0, 0, 0};
    get_async(c, &k, "v1", 0);
    usleep(80000);             /* older than 5 TTLs: not served any more */
    get_async(c, &k, "v2", 0); /* computed here, not in the background */
    assert_int_equal(k.calls, 2);
    mx_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reuses_answer_within_ttl),
        cmocka_unit_test(expires_after_ttl),
        cmocka_unit_test(ttl_zero_always_computes),
        cmocka_unit_test(failures_are_not_cached),
        cmocka_unit_test(stale_answer_while_refreshing_in_background),
        cmocka_unit_test(failure_value_is_passed_through),
        cmocka_unit_test(failed_refresh_keeps_the_stale_answer),
        cmocka_unit_test(too_old_answer_is_recomputed_in_the_request),
        cmocka_unit_test(evicts_oldest_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

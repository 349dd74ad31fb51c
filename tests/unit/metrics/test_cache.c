/* Unit tests for mx_cache: reuse within the TTL, no caching at TTL 0,
 * failures not cached, distinct keys, and eviction when full. */
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
    int fail;
} counter;

/* Answers "v<calls>" so each computation is distinguishable. */
static int compute(void *ctx, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    counter *c = ctx;
    c->calls++;
    if (c->fail) {
        snprintf(err, errlen, "store down");
        return -1;
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
    assert_int_equal(mx_cache_get(c, key, compute, k, &buf, &len, &hit, err, sizeof(err)), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    assert_int_equal(hit, want_hit);
    free(buf);
}

static void reuses_answer_within_ttl(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(60000, 8);
    counter k = {0, 0};
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
    counter k = {0, 0};
    get(c, "a", &k, "v1", 0);
    usleep(40000);
    get(c, "a", &k, "v2", 0);
    mx_cache_free(c);
}

static void ttl_zero_always_computes(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(0, 8);
    counter k = {0, 0};
    get(c, "a", &k, "v1", 0);
    get(c, "a", &k, "v2", 0);
    get(NULL, "a", &k, "v3", 0); /* no cache at all */
    mx_cache_free(c);
}

static void failures_are_not_cached(void **state)
{
    (void)state;
    mx_cache *c = mx_cache_new(60000, 8);
    counter k = {0, 1};
    uint8_t *buf = NULL;
    size_t len = 0;
    int hit = 0;
    char err[64];
    assert_int_equal(mx_cache_get(c, "a", compute, &k, &buf, &len, &hit, err, sizeof(err)), -1);
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
    counter k = {0, 0};
    get(c, "a", &k, "v1", 0);
    get(c, "b", &k, "v2", 0);
    get(c, "c", &k, "v3", 0); /* evicts a */
    get(c, "b", &k, "v2", 1);
    get(c, "a", &k, "v4", 0);
    mx_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reuses_answer_within_ttl), cmocka_unit_test(expires_after_ttl),
        cmocka_unit_test(ttl_zero_always_computes), cmocka_unit_test(failures_are_not_cached),
        cmocka_unit_test(evicts_oldest_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

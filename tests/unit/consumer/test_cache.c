/* Unit tests for the consumer's bounded string-keyed cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "cache.h"

static void test_put_get_remove(void **state)
{
    (void)state;
    pwc_cache *c = pwc_cache_new(8, sizeof(int64_t), NULL);
    assert_non_null(c);
    int64_t v = 41, w = 42;
    assert_null(pwc_cache_get(c, "a"));
    assert_int_equal(pwc_cache_put(c, "a", &v), 0);
    assert_int_equal(*(int64_t *)pwc_cache_get(c, "a"), 41);
    assert_int_equal(pwc_cache_put(c, "a", &w), 0); /* replaces */
    assert_int_equal(*(int64_t *)pwc_cache_get(c, "a"), 42);
    assert_int_equal(pwc_cache_count(c), 1);
    pwc_cache_remove(c, "a");
    assert_null(pwc_cache_get(c, "a"));
    assert_int_equal(pwc_cache_count(c), 0);
    pwc_cache_remove(c, "missing");
    pwc_cache_free(c);
}

static void test_full_cache_forgets_everything(void **state)
{
    (void)state;
    pwc_cache *c = pwc_cache_new(100, sizeof(int), NULL);
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(pwc_cache_put(c, key, &i), 0);
    }
    assert_int_equal(pwc_cache_count(c), 100);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(*(int *)pwc_cache_get(c, key), i);
    }
    int x = 7;
    assert_int_equal(pwc_cache_put(c, "one-more", &x), 0);
    assert_int_equal(pwc_cache_count(c), 1);
    assert_null(pwc_cache_get(c, "k0"));
    assert_int_equal(*(int *)pwc_cache_get(c, "one-more"), 7);
    pwc_cache_reserve(c, 99); /* fits */
    assert_int_equal(pwc_cache_count(c), 1);
    pwc_cache_reserve(c, 100); /* does not */
    assert_int_equal(pwc_cache_count(c), 0);
    pwc_cache_free(c);
}

static int drops;
static void count_drop(void *v)
{
    drops += *(int *)v;
}

static void test_drop_is_called_for_every_value_let_go(void **state)
{
    (void)state;
    drops = 0;
    pwc_cache *c = pwc_cache_new(2, sizeof(int), count_drop);
    int one = 1, ten = 10, hundred = 100;
    pwc_cache_put(c, "a", &one);
    pwc_cache_put(c, "a", &ten); /* replaces: drops 1 */
    assert_int_equal(drops, 1);
    pwc_cache_put(c, "b", &hundred);
    pwc_cache_remove(c, "b"); /* drops 100 */
    assert_int_equal(drops, 101);
    pwc_cache_free(c); /* drops 10 */
    assert_int_equal(drops, 111);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_remove),
        cmocka_unit_test(test_full_cache_forgets_everything),
        cmocka_unit_test(test_drop_is_called_for_every_value_let_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

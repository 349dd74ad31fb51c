/* Unit test for pw_uuid: v4 shape, v5 determinism against the documented
 * namespace (values cross-checked with Python's uuid.uuid5), and
 * Idempotency-Key validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <string.h>

#include "pw_uuid.h"

static void assert_uuid_shape(const char *u, char version)
{
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else {
            assert_true(isxdigit((unsigned char)u[i]) && !isupper((unsigned char)u[i]));
        }
    }
    assert_int_equal(u[14], version);
    assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
}

static void test_random(void **state)
{
    (void)state;
    char a[PW_UUID_LEN], b[PW_UUID_LEN];
    pw_uuid_random(a);
    pw_uuid_random(b);
    assert_uuid_shape(a, '4');
    assert_uuid_shape(b, '4');
    assert_string_not_equal(a, b);
}

static void test_derive_known_values(void **state)
{
    (void)state;
    char u[PW_UUID_LEN];
    pw_uuid_derive("sensor-a", "key-1", "reading", 0, u);
    assert_string_equal(u, "145b4f07-9aed-55bf-92ab-ec88b21f4e08");
    pw_uuid_derive("sensor-a", "key-1", "alert", 999, u);
    assert_string_equal(u, "5d19cecc-f8bf-54f6-b202-347d18dfeea1");
    pw_uuid_derive("", "k", "reading", 0, u);
    assert_string_equal(u, "6f968c4e-6ca9-5996-8566-2e03b715b23f");
    assert_uuid_shape(u, '5');
}

static void test_derive_deterministic_and_distinct(void **state)
{
    (void)state;
    char a[PW_UUID_LEN], b[PW_UUID_LEN];
    pw_uuid_derive("sensor-a", "key-1", "reading", 3, a);
    pw_uuid_derive("sensor-a", "key-1", "reading", 3, b);
    assert_string_equal(a, b);

    const char *variants[][3] = {
        {"sensor-b", "key-1", "reading"},
        {"sensor-a", "key-2", "reading"},
        {"sensor-a", "key-1", "alert"},
    };
    for (size_t i = 0; i < 3; i++) {
        pw_uuid_derive(variants[i][0], variants[i][1], variants[i][2], 3, b);
        assert_string_not_equal(a, b);
    }
    pw_uuid_derive("sensor-a", "key-1", "reading", 4, b);
    assert_string_not_equal(a, b);
    /* the separator keeps ("ab","c") and ("a","bc") apart */
    pw_uuid_derive("ab", "c", "reading", 0, a);
    pw_uuid_derive("a", "bc", "reading", 0, b);
    assert_string_not_equal(a, b);
    /* long inputs (heap path) are deterministic too */
    char longkey[129];
    memset(longkey, 'k', 128);
    longkey[128] = '\0';
    char longcons[600];
    memset(longcons, 'c', sizeof longcons - 1);
    longcons[sizeof longcons - 1] = '\0';
    pw_uuid_derive(longcons, longkey, "reading", 1, a);
    pw_uuid_derive(longcons, longkey, "reading", 1, b);
    assert_string_equal(a, b);
    assert_uuid_shape(a, '5');
}

static void test_key_valid(void **state)
{
    (void)state;
    char k128[129], k129[130];
    memset(k128, 'a', 128);
    k128[128] = '\0';
    memset(k129, 'a', 129);
    k129[129] = '\0';
    assert_true(pw_idempotency_key_valid("a"));
    assert_true(pw_idempotency_key_valid("0d3c1e2a-retry_1:~!"));
    assert_true(pw_idempotency_key_valid(k128));
    assert_false(pw_idempotency_key_valid(k129));
    assert_false(pw_idempotency_key_valid(""));
    assert_false(pw_idempotency_key_valid(NULL));
    assert_false(pw_idempotency_key_valid("has space"));
    assert_false(pw_idempotency_key_valid("tab\there"));
    assert_false(pw_idempotency_key_valid("del\x7f"));
    assert_false(pw_idempotency_key_valid("caf\xc3\xa9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_derive_known_values),
        cmocka_unit_test(test_derive_deterministic_and_distinct),
        cmocka_unit_test(test_key_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

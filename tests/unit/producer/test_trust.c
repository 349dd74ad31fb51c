/* Unit tests for the gateway secret check (trust.c) and its configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "trust.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_token_must_equal_the_secret(void **state)
{
    (void)state;
    assert_int_equal(pw_trust_token_ok(SECRET, SECRET), 1);
    assert_int_equal(pw_trust_token_ok(SECRET, SECRET "0"), 0);
    assert_int_equal(pw_trust_token_ok(SECRET, "0123456789abcdef"), 0);
    assert_int_equal(pw_trust_token_ok(SECRET, ""), 0);
    assert_int_equal(pw_trust_token_ok(SECRET, NULL), 0);
    assert_int_equal(pw_trust_token_ok(NULL, SECRET), 0);
    assert_int_equal(pw_trust_token_ok("", ""), 0);
    char flipped[] = SECRET;
    flipped[sizeof(flipped) - 2] = 'X';
    assert_int_equal(pw_trust_token_ok(SECRET, flipped), 0);
}

static void test_config_reads_and_checks_the_secret(void **state)
{
    (void)state;
    pw_producer_config c;
    char err[256];
    unsetenv("PW_GATEWAY_SECRET_FILE");
    setenv("PW_GATEWAY_SECRET", SECRET, 1);
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), 0);
    assert_string_equal(c.gateway_secret, SECRET);
    pw_producer_config_free(&c);

    setenv("PW_GATEWAY_SECRET", "short-secret", 1);
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "PW_GATEWAY_SECRET must be 32-512"));
    pw_producer_config_free(&c);

    setenv("PW_GATEWAY_SECRET", "0123456789abcdef 0123456789abcdef", 1);
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), -1);
    pw_producer_config_free(&c);

    unsetenv("PW_GATEWAY_SECRET");
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), 0);
    assert_null(c.gateway_secret);
    pw_producer_config_free(&c);
    /* the service itself (with_kafka = 1) cannot start without it */
    assert_int_equal(pw_producer_config_load(&c, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "PW_GATEWAY_SECRET_FILE"));
    pw_producer_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_must_equal_the_secret),
        cmocka_unit_test(test_config_reads_and_checks_the_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

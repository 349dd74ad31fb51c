/* Unit tests for the producer's environment configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("PW_HTTP_PORT");
    unsetenv("PW_MAX_BODY_BYTES");
    unsetenv("PW_TOPIC_TELEMETRY");
    pw_producer_config c;
    char err[256];
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), 0);
    assert_int_equal(c.http_port, 8081);
    assert_int_equal(c.grpc_port, 50051);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.delivery_timeout_ms, 10000);
    assert_int_equal(c.linger_ms, 5);
    assert_string_equal(c.topic_telemetry, "sensor-telemetry");
    assert_string_equal(c.topic_alerts, "sensor-alerts");
    assert_string_equal(c.bind_addr, "127.0.0.1");
    pw_producer_config_free(&c);
}

static void test_overrides_and_errors(void **state)
{
    (void)state;
    pw_producer_config c;
    char err[256];
    setenv("PW_HTTP_PORT", "18081", 1);
    setenv("PW_TOPIC_TELEMETRY", "t-test", 1);
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), 0);
    assert_int_equal(c.http_port, 18081);
    assert_string_equal(c.topic_telemetry, "t-test");
    pw_producer_config_free(&c);

    setenv("PW_HTTP_PORT", "99999", 1);
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "PW_HTTP_PORT"));
    pw_producer_config_free(&c);
    setenv("PW_HTTP_PORT", "abc", 1);
    assert_int_equal(pw_producer_config_load(&c, 0, err, sizeof(err)), -1);
    pw_producer_config_free(&c);
    unsetenv("PW_HTTP_PORT");
    unsetenv("PW_TOPIC_TELEMETRY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_overrides_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

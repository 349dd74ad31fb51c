/* Unit test for pw_kafka: settings from the environment (defaults, the
 * password from a file, errors naming the missing variable) and the
 * librdkafka configuration built from them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pw_kafka.h"

static void clear_env(void)
{
    const char *vars[] = {"PW_KAFKA_BOOTSTRAP", "PW_KAFKA_USERNAME",
                          "PW_KAFKA_PASSWORD",  "PW_KAFKA_PASSWORD_FILE",
                          "PW_KAFKA_CA_FILE",   "PW_KAFKA_SECURITY_PROTOCOL",
                          "PW_INSTANCE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        unsetenv(vars[i]);
    }
}

static void expect_conf(rd_kafka_conf_t *conf, const char *name, const char *want)
{
    char val[512];
    size_t n = sizeof val;
    assert_int_equal(rd_kafka_conf_get(conf, name, val, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(val, want);
}

static void test_missing_password(void **state)
{
    (void)state;
    clear_env();
    pw_kafka_settings s;
    char err[256] = "";
    assert_int_equal(pw_kafka_settings_from_env(&s, "producer", err, sizeof err), -1);
    assert_string_equal(err, "PW_KAFKA_PASSWORD_FILE or PW_KAFKA_PASSWORD is not set");
    assert_null(s.bootstrap); /* freed */

    setenv("PW_KAFKA_PASSWORD_FILE", "/nonexistent/pw", 1);
    assert_int_equal(pw_kafka_settings_from_env(&s, "producer", err, sizeof err), -1);
    assert_string_equal(err, "PW_KAFKA_PASSWORD_FILE: cannot read \"/nonexistent/pw\"");

    clear_env();
    setenv("PW_KAFKA_PASSWORD", "pw", 1);
    assert_int_equal(pw_kafka_settings_from_env(&s, NULL, err, sizeof err), -1);
    assert_string_equal(err, "PW_KAFKA_USERNAME is not set");
    clear_env();
}

static void test_defaults_and_conf(void **state)
{
    (void)state;
    clear_env();
    char path[] = "/tmp/pw_kafka_pw_XXXXXX";
    int fd = mkstemp(path);
    assert_int_equal(write(fd, "file-secret\n", 12), 12);
    close(fd);
    setenv("PW_KAFKA_PASSWORD_FILE", path, 1);
    setenv("PW_KAFKA_PASSWORD", "env-secret", 1);
    setenv("PW_INSTANCE", "producer-2", 1);
    setenv("PW_KAFKA_CA_FILE", "/etc/hostname", 1);

    pw_kafka_settings s;
    char err[256] = "";
    assert_int_equal(pw_kafka_settings_from_env(&s, "producer", err, sizeof err), 0);
    assert_string_equal(s.bootstrap, "127.0.0.1:9093");
    assert_string_equal(s.username, "producer");
    assert_string_equal(s.password, "file-secret");
    assert_string_equal(s.protocol, "SASL_SSL");
    assert_string_equal(s.client_id, "producer-2");
    assert_string_equal(s.ca_file, "/etc/hostname");

    rd_kafka_conf_t *conf = pw_kafka_conf_new(&s, err, sizeof err);
    assert_non_null(conf);
    expect_conf(conf, "bootstrap.servers", "127.0.0.1:9093");
    expect_conf(conf, "security.protocol", "sasl_ssl");
    expect_conf(conf, "sasl.mechanisms", "SCRAM-SHA-512");
    expect_conf(conf, "sasl.username", "producer");
    expect_conf(conf, "client.id", "producer-2");
    expect_conf(conf, "ssl.ca.location", "/etc/hostname");
    expect_conf(conf, "ssl.endpoint.identification.algorithm", "https");

    assert_int_equal(pw_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err), 0);
    expect_conf(conf, "linger.ms", "5");
    assert_int_equal(pw_kafka_conf_set(conf, "no.such.property", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "no.such.property"));
    rd_kafka_conf_destroy(conf);
    pw_kafka_settings_free(&s);
    assert_null(s.password);

    /* overrides */
    setenv("PW_KAFKA_BOOTSTRAP", "127.0.0.2:9093,127.0.0.3:9093", 1);
    setenv("PW_KAFKA_USERNAME", "admin", 1);
    unsetenv("PW_KAFKA_PASSWORD_FILE");
    unsetenv("PW_KAFKA_CA_FILE");
    assert_int_equal(pw_kafka_settings_from_env(&s, "producer", err, sizeof err), 0);
    assert_string_equal(s.username, "admin");
    assert_string_equal(s.password, "env-secret");
    assert_null(s.ca_file);
    conf = pw_kafka_conf_new(&s, err, sizeof err);
    assert_non_null(conf);
    expect_conf(conf, "bootstrap.servers", "127.0.0.2:9093,127.0.0.3:9093");
    rd_kafka_conf_destroy(conf);
    pw_kafka_settings_free(&s);

    /* a bad protocol is reported by librdkafka, naming the property */
    setenv("PW_KAFKA_SECURITY_PROTOCOL", "carrier_pigeon", 1);
    assert_int_equal(pw_kafka_settings_from_env(&s, "producer", err, sizeof err), 0);
    assert_null(pw_kafka_conf_new(&s, err, sizeof err));
    assert_non_null(strstr(err, "security.protocol"));
    pw_kafka_settings_free(&s);
    unlink(path);
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_password),
        cmocka_unit_test(test_defaults_and_conf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

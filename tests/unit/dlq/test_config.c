/* Unit tests of dq_config: topic defaults and overrides, the reading user,
 * and the replay credentials (separate user, fallback, missing password). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dq_config.h"

static const char *vars[] = {"PW_TOPIC_DLQ",
                             "PW_TOPIC_TELEMETRY",
                             "PW_TOPIC_ALERTS",
                             "PW_KAFKA_USERNAME",
                             "PW_KAFKA_PASSWORD",
                             "PW_KAFKA_PASSWORD_FILE",
                             "PW_DLQ_REPLAY_USERNAME",
                             "PW_DLQ_REPLAY_PASSWORD",
                             "PW_DLQ_REPLAY_PASSWORD_FILE",
                             "PW_LOG_LEVEL"};

static int clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        unsetenv(vars[i]);
    }
    setenv("PW_KAFKA_PASSWORD", "reader-secret", 1);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    dq_config c;
    char err[256] = "";
    assert_int_equal(dq_config_from_env(&c, 0, err, sizeof err), 0);
    assert_string_equal(c.topic_dlq, "sensor-dlq");
    assert_string_equal(c.targets[0], "sensor-telemetry");
    assert_string_equal(c.targets[1], "sensor-alerts");
    assert_string_equal(c.reader.username, "consumer");
    assert_string_equal(c.reader.password, "reader-secret");
    assert_false(c.has_writer);
    assert_false(c.verbose);
    dq_config_free(&c);
}

static void test_topics_from_the_consumers_variables(void **state)
{
    (void)state;
    setenv("PW_TOPIC_DLQ", "dlq-2", 1);
    setenv("PW_TOPIC_TELEMETRY", "t-2", 1);
    setenv("PW_TOPIC_ALERTS", "a-2", 1);
    setenv("PW_LOG_LEVEL", "debug", 1);
    dq_config c;
    char err[256] = "";
    assert_int_equal(dq_config_from_env(&c, 0, err, sizeof err), 0);
    assert_string_equal(c.topic_dlq, "dlq-2");
    assert_string_equal(c.targets[0], "t-2");
    assert_string_equal(c.targets[1], "a-2");
    assert_true(c.verbose);
    dq_config_free(&c);
}

static void test_writer_falls_back_to_the_reader(void **state)
{
    (void)state;
    dq_config c;
    char err[256] = "";
    assert_int_equal(dq_config_from_env(&c, 1, err, sizeof err), 0);
    assert_true(c.has_writer);
    assert_string_equal(c.writer.username, "consumer");
    assert_string_equal(c.writer.password, "reader-secret");
    dq_config_free(&c);
}

static void test_writer_has_its_own_user(void **state)
{
    (void)state;
    char path[] = "/tmp/dq-test-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "writer-secret\n", 14), 14);
    close(fd);
    setenv("PW_DLQ_REPLAY_USERNAME", "producer", 1);
    setenv("PW_DLQ_REPLAY_PASSWORD_FILE", path, 1);
    dq_config c;
    char err[256] = "";
    assert_int_equal(dq_config_from_env(&c, 1, err, sizeof err), 0);
    assert_string_equal(c.reader.username, "consumer");
    assert_string_equal(c.writer.username, "producer");
    assert_string_equal(c.writer.password, "writer-secret");
    assert_string_equal(c.writer.bootstrap, c.reader.bootstrap);
    dq_config_free(&c);
    unlink(path);
}

static void test_writer_password_is_required(void **state)
{
    (void)state;
    setenv("PW_DLQ_REPLAY_USERNAME", "producer", 1);
    dq_config c;
    char err[256] = "";
    assert_int_equal(dq_config_from_env(&c, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "PW_DLQ_REPLAY_PASSWORD"));
    setenv("PW_DLQ_REPLAY_PASSWORD_FILE", "/nonexistent/secret", 1);
    assert_int_equal(dq_config_from_env(&c, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read \"/nonexistent/secret\""));
    /* not needed without a writer */
    assert_int_equal(dq_config_from_env(&c, 0, err, sizeof err), 0);
    dq_config_free(&c);
}

static void test_reader_password_is_required(void **state)
{
    (void)state;
    unsetenv("PW_KAFKA_PASSWORD");
    dq_config c;
    char err[256] = "";
    assert_int_equal(dq_config_from_env(&c, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "PW_KAFKA_PASSWORD"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_topics_from_the_consumers_variables, clean_env),
        cmocka_unit_test_setup(test_writer_falls_back_to_the_reader, clean_env),
        cmocka_unit_test_setup(test_writer_has_its_own_user, clean_env),
        cmocka_unit_test_setup(test_writer_password_is_required, clean_env),
        cmocka_unit_test_setup(test_reader_password_is_required, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

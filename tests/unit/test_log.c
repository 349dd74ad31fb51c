/* Unit test for pw_log: level parsing and filtering, and the JSON line
 * written to stderr (fields, merged extras, message formatting). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pw_log.h"
#include "pw_time.h"

/* Runs fn with stderr redirected to a file; returns what was written. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/pw_log_XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return buf;
}

static void log_some(void)
{
    pw_log(PW_LOG_DEBUG, "hidden", "not shown");
    pw_log(PW_LOG_INFO, "startup", "listening on %s:%d", "127.0.0.1", 8081);
    pw_log_fields(
        PW_LOG_WARN, "kafka_retry",
        json_pack("{s:i,s:s,s:s}", "attempt", 3, "topic", "sensor-telemetry", "level", "spoof"),
        "retrying \"%s\"", "produce");
    pw_log_fields(PW_LOG_DEBUG, "hidden", json_pack("{s:i}", "x", 1), "dropped");
}

static void test_lines(void **state)
{
    (void)state;
    assert_int_equal(pw_log_init("producer", "producer-1", "info"), 0);
    assert_false(pw_log_enabled(PW_LOG_DEBUG));
    assert_true(pw_log_enabled(PW_LOG_INFO));
    int64_t before = pw_now_ms();
    char *out = capture(log_some);
    int64_t after = pw_now_ms();

    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    char *second = nl + 1;
    char *nl2 = strchr(second, '\n');
    assert_non_null(nl2);
    assert_string_equal(nl2 + 1, ""); /* exactly two lines */
    *nl = '\0';
    *nl2 = '\0';

    json_error_t jerr;
    json_t *a = json_loads(out, 0, &jerr);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(a, "service")), "producer");
    assert_string_equal(json_string_value(json_object_get(a, "instance")), "producer-1");
    assert_string_equal(json_string_value(json_object_get(a, "event")), "startup");
    assert_string_equal(json_string_value(json_object_get(a, "msg")),
                        "listening on 127.0.0.1:8081");
    int64_t ts;
    const char *tss = json_string_value(json_object_get(a, "ts"));
    assert_int_equal(strlen(tss), 24); /* 2026-11-25T10:00:00.123Z */
    assert_int_equal(pw_time_parse_rfc3339(tss, &ts), 0);
    assert_true(ts >= before && ts <= after);
    assert_int_equal(json_object_size(a), 6);
    json_decref(a);

    json_t *b = json_loads(second, 0, &jerr);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(b, "msg")), "retrying \"produce\"");
    assert_int_equal(json_integer_value(json_object_get(b, "attempt")), 3);
    assert_string_equal(json_string_value(json_object_get(b, "topic")), "sensor-telemetry");
    json_decref(b);
    free(out);
}

static void test_levels(void **state)
{
    (void)state;
    assert_int_equal(pw_log_init("s", "i", "debug"), 0);
    assert_true(pw_log_enabled(PW_LOG_DEBUG));
    assert_int_equal(pw_log_init("s", "i", "ERROR"), 0);
    assert_false(pw_log_enabled(PW_LOG_WARN));
    assert_true(pw_log_enabled(PW_LOG_ERROR));
    assert_int_equal(pw_log_init("s", "i", "warn"), 0);
    assert_true(pw_log_enabled(PW_LOG_WARN));
    assert_false(pw_log_enabled(PW_LOG_INFO));
    assert_int_equal(pw_log_init("s", "i", NULL), 0);
    assert_true(pw_log_enabled(PW_LOG_INFO));
    assert_int_equal(pw_log_init("s", "i", "loud"), -1);
    assert_true(pw_log_enabled(PW_LOG_INFO));
    assert_false(pw_log_enabled(PW_LOG_DEBUG));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

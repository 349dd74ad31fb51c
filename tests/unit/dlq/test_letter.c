/* Unit tests of dq_letter: DLQ headers into a dead letter view, malformed
 * numbers, selection, replay checks and the header set of a replay. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dq_letter.h"

static rd_kafka_headers_t *dlq_headers(const char *reason, const char *topic, const char *part,
                                       const char *off)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, "pw-token", -1, "tok-1", -1);
    rd_kafka_header_add(h, "x-binary", -1, "\0\1\2", 3);
    rd_kafka_header_add(h, "x-null", -1, NULL, 0);
    if (reason != NULL) {
        rd_kafka_header_add(h, DQ_H_REASON, -1, reason, -1);
        rd_kafka_header_add(h, DQ_H_DETAIL, -1, "value is not an iot.v1.Envelope", -1);
    }
    if (topic != NULL) {
        rd_kafka_header_add(h, DQ_H_TOPIC, -1, topic, -1);
    }
    if (part != NULL) {
        rd_kafka_header_add(h, DQ_H_PARTITION, -1, part, -1);
    }
    if (off != NULL) {
        rd_kafka_header_add(h, DQ_H_OFFSET, -1, off, -1);
    }
    return h;
}

static void test_headers_become_the_view(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = dlq_headers("undecodable", "sensor-telemetry", "2", "4711");
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 0, 17, 1700000000123, h, "dev-1", 5, 33), 0);
    assert_int_equal(l.partition, 0);
    assert_int_equal(l.offset, 17);
    assert_int_equal(l.time_ms, 1700000000123);
    assert_string_equal(l.reason, "undecodable");
    assert_string_equal(l.detail, "value is not an iot.v1.Envelope");
    assert_string_equal(l.source_topic, "sensor-telemetry");
    assert_int_equal(l.source_partition, 2);
    assert_int_equal(l.source_offset, 4711);
    assert_null(l.replayed_from);
    assert_memory_equal(l.key, "dev-1", 5);
    assert_int_equal(l.value_len, 33);
    char origin[128];
    dq_letter_origin(&l, origin, sizeof origin);
    assert_string_equal(origin, "sensor-telemetry:2:4711");
    dq_letter_clear(&l);
    rd_kafka_headers_destroy(h);
}

static void test_missing_and_malformed_headers(void **state)
{
    (void)state;
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 1, 2, -1, NULL, NULL, 7, 0), 0);
    assert_null(l.reason);
    assert_null(l.source_topic);
    assert_int_equal(l.source_partition, -1);
    assert_int_equal(l.source_offset, -1);
    assert_null(l.key);
    assert_int_equal(l.key_len, 0);
    char origin[64];
    dq_letter_origin(&l, origin, sizeof origin);
    assert_string_equal(origin, "-");
    dq_letter_clear(&l);

    /* no partition number is valid here; one of them is a valid offset */
    const char *bad[] = {"", "-1", "1x", "2147483648", "99999999999999999999"};
    const int64_t offsets[] = {-1, -1, -1, 2147483648LL, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rd_kafka_headers_t *h = dlq_headers("invalid", "sensor-alerts", bad[i], bad[i]);
        assert_int_equal(dq_letter_from_parts(&l, 0, 0, 0, h, NULL, 0, 0), 0);
        assert_int_equal(l.source_partition, -1);
        assert_int_equal(l.source_offset, offsets[i]);
        dq_letter_origin(&l, origin, sizeof origin);
        assert_non_null(strstr(origin, "sensor-alerts:?:"));
        dq_letter_clear(&l);
        rd_kafka_headers_destroy(h);
    }
}

static void test_last_header_wins(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = dlq_headers("undecodable", "sensor-telemetry", "0", "1");
    rd_kafka_header_add(h, DQ_H_REASON, -1, "unknown_unit", -1);
    rd_kafka_header_add(h, DQ_H_REPLAYED_FROM, -1, "0:9", -1);
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 0, 0, 0, h, NULL, 0, 0), 0);
    assert_string_equal(l.reason, "unknown_unit");
    assert_string_equal(l.replayed_from, "0:9");
    dq_letter_clear(&l);
    rd_kafka_headers_destroy(h);
}

static void test_selection(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = dlq_headers("undecodable", "sensor-telemetry", "0", "1");
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 0, 0, 0, h, NULL, 0, 0), 0);
    assert_true(dq_letter_selected(&l, NULL, NULL));
    assert_true(dq_letter_selected(&l, "undecodable", NULL));
    assert_true(dq_letter_selected(&l, "undecodable", "sensor-telemetry"));
    assert_false(dq_letter_selected(&l, "undecod", NULL));
    assert_false(dq_letter_selected(&l, NULL, "sensor-alerts"));
    dq_letter_clear(&l);
    assert_int_equal(dq_letter_from_parts(&l, 0, 0, 0, NULL, NULL, 0, 0), 0);
    assert_true(dq_letter_selected(&l, NULL, NULL));
    assert_false(dq_letter_selected(&l, "undecodable", NULL));
    assert_false(dq_letter_selected(&l, NULL, "sensor-telemetry"));
    dq_letter_clear(&l);
    rd_kafka_headers_destroy(h);
}

static void test_only_targets_are_replayable(void **state)
{
    (void)state;
    char *targets[] = {"sensor-telemetry", "sensor-alerts"};
    char why[256];
    const char *topics[] = {"sensor-telemetry", "sensor-alerts", "sensor-dlq", NULL};
    for (size_t i = 0; i < 4; i++) {
        rd_kafka_headers_t *h = dlq_headers("x", topics[i], "0", "1");
        dq_letter l;
        assert_int_equal(dq_letter_from_parts(&l, 0, 0, 0, h, NULL, 0, 0), 0);
        why[0] = '\0';
        int rc = dq_letter_replayable(&l, targets, 2, why, sizeof why);
        assert_int_equal(rc, i < 2 ? 0 : -1);
        if (i == 2) {
            assert_non_null(strstr(why, "\"sensor-dlq\" is not a replay target"));
        }
        if (i == 3) {
            assert_non_null(strstr(why, "no pw-source-topic header"));
        }
        dq_letter_clear(&l);
        rd_kafka_headers_destroy(h);
    }
}

static void test_header_names(void **state)
{
    (void)state;
    assert_true(dq_header_is_dlq("pw-dlq-reason"));
    assert_true(dq_header_is_dlq("pw-dlq-replayed-from"));
    assert_true(dq_header_is_dlq("pw-source-offset"));
    assert_false(dq_header_is_dlq("pw-token"));
    assert_false(dq_header_is_dlq("pw-dlq"));
    assert_false(dq_header_is_dlq("x-pw-dlq-reason"));
}

static void test_replay_headers_keep_the_originals_only(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = dlq_headers("undecodable", "sensor-telemetry", "0", "1");
    rd_kafka_header_add(h, DQ_H_REPLAYED_FROM, -1, "0:3", -1); /* an earlier replay */
    rd_kafka_header_add(h, "pw-token", -1, "tok-2", -1);       /* duplicate names stay */
    rd_kafka_headers_t *r = dq_replay_headers(h, 0, 42);
    assert_non_null(r);
    const char *names[] = {"pw-token", "x-binary", "x-null", "pw-token", DQ_H_REPLAYED_FROM};
    assert_int_equal(rd_kafka_header_cnt(r), 5);
    for (size_t i = 0; i < 5; i++) {
        const char *name = NULL;
        const void *v = NULL;
        size_t n = 0;
        assert_int_equal(rd_kafka_header_get_all(r, i, &name, &v, &n), 0);
        assert_string_equal(name, names[i]);
        if (i == 1) {
            assert_int_equal(n, 3);
            assert_memory_equal(v, "\0\1\2", 3);
        }
        if (i == 2) {
            assert_null(v);
        }
        if (i == 4) {
            assert_int_equal(n, 4);
            assert_memory_equal(v, "0:42", 4);
        }
    }
    rd_kafka_headers_destroy(r);
    rd_kafka_headers_destroy(h);
    r = dq_replay_headers(NULL, 3, 7);
    assert_int_equal(rd_kafka_header_cnt(r), 1);
    rd_kafka_headers_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_become_the_view),
        cmocka_unit_test(test_missing_and_malformed_headers),
        cmocka_unit_test(test_last_header_wins),
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_only_targets_are_replayable),
        cmocka_unit_test(test_header_names),
        cmocka_unit_test(test_replay_headers_keep_the_originals_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of dq_format: byte escaping, the text line of list and the
 * NDJSON object (fields, nulls, keys that are not UTF-8). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dq_format.h"

#include "../capture.h"

static dq_letter letter(rd_kafka_headers_t **h, const void *key, size_t key_len)
{
    *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(*h, DQ_H_REASON, -1, "unknown_unit", -1);
    rd_kafka_header_add(*h, DQ_H_DETAIL, -1, "unit 'furlongs' is \"odd\"", -1);
    rd_kafka_header_add(*h, DQ_H_TOPIC, -1, "sensor-telemetry", -1);
    rd_kafka_header_add(*h, DQ_H_PARTITION, -1, "1", -1);
    rd_kafka_header_add(*h, DQ_H_OFFSET, -1, "185", -1);
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 0, 12, 1796133349746, *h, key, key_len, 131), 0);
    return l;
}

static void test_quoted_escapes_every_unprintable_byte(void **state)
{
    (void)state;
    capture c;
    cap_open(&c);
    static const char raw[] = "a\"b\\c\n\t\r\x01\xff~\0z";
    dq_format_quoted(c.f, raw, sizeof raw - 1);
    char *s = cap_close(&c);
    assert_string_equal(s, "\"a\\\"b\\\\c\\n\\t\\r\\x01\\xff~\\x00z\"");
    free(s);
}

static void test_text_line(void **state)
{
    (void)state;
    rd_kafka_headers_t *h;
    dq_letter l = letter(&h, "press-7", 7);
    capture c;
    cap_open(&c);
    dq_format_text(c.f, &l);
    char *s = cap_close(&c);
    assert_string_equal(s, "0:12 2026-12-01T13:55:49.746Z unknown_unit "
                           "\"unit 'furlongs' is \\\"odd\\\"\" sensor-telemetry:1:185 "
                           "key=\"press-7\"\n");
    free(s);
    dq_letter_clear(&l);
    rd_kafka_headers_destroy(h);
}

static void test_text_line_without_headers(void **state)
{
    (void)state;
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 2, 5, -1, NULL, NULL, 0, 0), 0);
    capture c;
    cap_open(&c);
    dq_format_text(c.f, &l);
    char *s = cap_close(&c);
    assert_string_equal(s, "2:5 - - - - key=-\n");
    free(s);
    dq_letter_clear(&l);
}

static void test_json_object(void **state)
{
    (void)state;
    rd_kafka_headers_t *h;
    dq_letter l = letter(&h, "press-7", 7);
    json_t *o = dq_format_json(&l);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "dlq_partition")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "dlq_offset")), 12);
    assert_string_equal(json_string_value(json_object_get(o, "time")), "2026-12-01T13:55:49.746Z");
    assert_int_equal(json_integer_value(json_object_get(o, "time_ms")), 1796133349746);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "unknown_unit");
    assert_string_equal(json_string_value(json_object_get(o, "detail")),
                        "unit 'furlongs' is \"odd\"");
    assert_string_equal(json_string_value(json_object_get(o, "origin")), "sensor-telemetry:1:185");
    assert_string_equal(json_string_value(json_object_get(o, "source_topic")), "sensor-telemetry");
    assert_int_equal(json_integer_value(json_object_get(o, "source_partition")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "source_offset")), 185);
    assert_string_equal(json_string_value(json_object_get(o, "key")), "press-7");
    assert_null(json_object_get(o, "key_hex"));
    assert_int_equal(json_integer_value(json_object_get(o, "value_bytes")), 131);
    assert_null(json_object_get(o, "replayed_from"));
    json_decref(o);
    dq_letter_clear(&l);
    rd_kafka_headers_destroy(h);
}

static void test_json_nulls_and_binary_keys(void **state)
{
    (void)state;
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 0, 1, -1, NULL, "\xff\x00k", 3, 0), 0);
    json_t *o = dq_format_json(&l);
    assert_true(json_is_null(json_object_get(o, "reason")));
    assert_true(json_is_null(json_object_get(o, "origin")));
    assert_true(json_is_null(json_object_get(o, "time")));
    assert_true(json_is_null(json_object_get(o, "source_offset")));
    assert_true(json_is_null(json_object_get(o, "key")));
    assert_string_equal(json_string_value(json_object_get(o, "key_hex")), "ff006b");
    json_decref(o);
    dq_letter_clear(&l);

    assert_int_equal(dq_letter_from_parts(&l, 0, 1, 0, NULL, NULL, 0, 0), 0);
    o = dq_format_json(&l);
    assert_true(json_is_null(json_object_get(o, "key")));
    assert_null(json_object_get(o, "key_hex"));
    json_decref(o);
    dq_letter_clear(&l);
}

static void test_json_line_is_one_line(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, DQ_H_DETAIL, -1, "line 1\nline 2 \xe2\x82\xac \xff", -1);
    rd_kafka_header_add(h, DQ_H_REPLAYED_FROM, -1, "0:3", -1);
    dq_letter l;
    assert_int_equal(dq_letter_from_parts(&l, 0, 1, 0, h, "k", 1, 0), 0);
    capture c;
    cap_open(&c);
    assert_int_equal(dq_format_json_line(c.f, &l), 0);
    char *s = cap_close(&c);
    assert_non_null(strchr(s, '\n'));
    assert_int_equal(strchr(s, '\n') - s, (long)strlen(s) - 1);
    json_error_t jerr;
    json_t *o = json_loads(s, 0, &jerr);
    assert_non_null(o);
    /* not UTF-8 as a whole: shown escaped, still one string */
    assert_non_null(strstr(json_string_value(json_object_get(o, "detail")), "line 1\\nline 2"));
    assert_string_equal(json_string_value(json_object_get(o, "replayed_from")), "0:3");
    json_decref(o);
    free(s);
    dq_letter_clear(&l);
    rd_kafka_headers_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoted_escapes_every_unprintable_byte),
        cmocka_unit_test(test_text_line),
        cmocka_unit_test(test_text_line_without_headers),
        cmocka_unit_test(test_json_object),
        cmocka_unit_test(test_json_nulls_and_binary_keys),
        cmocka_unit_test(test_json_line_is_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for mx_export: export parameters (times, filters, window
 * limits), RFC 4180 quoting, the exact rows of stored documents in CSV and
 * NDJSON, the attachment file name and the store filter of an hour. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mx_export.h"
#include "pw_schema.h"

#define T0 1796119200000LL /* 2026-12-01T10:00:00Z */

static void times_parse_both_forms(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(mx_export_parse_time("2026-12-01T10:00:00Z", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(mx_export_parse_time("2026-12-01T11:00:00.250+01:00", &ms), 0);
    assert_int_equal(ms, T0 + 250);
    assert_int_equal(mx_export_parse_time("2026-12-01T11:00:00 01:00", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(mx_export_parse_time("1796119200000", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(mx_export_parse_time("0", &ms), 0);
    assert_int_equal(ms, 0);
    const char *bad[] = {"",
                         "-5",
                         "1.5",
                         "2026-12-01",
                         "2026-12-01T10:00:00",
                         "yesterday",
                         "1234567890123456",
                         "2026-12-01T10:00:00Z ",
                         "2026-13-01T10:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mx_export_parse_time(bad[i], &ms), -1);
    }
}

/* Applies "name=value" pairs and finishes at now; returns the error count. */
static int apply(mx_export_query *q, mx_export_kind kind, mx_param_error *e, const char *const *kv,
                 size_t n, int64_t now)
{
    unsigned seen = 0;
    mx_export_query_init(q, kind);
    for (size_t i = 0; i + 1 < n; i += 2) {
        mx_export_query_set(q, &seen, kv[i], kv[i + 1], e);
    }
    mx_export_query_finish(q, now, e);
    return e->count;
}

static void defaults_and_filters(void **state)
{
    (void)state;
    mx_export_query q;
    mx_param_error e;
    mx_param_error_init(&e);
    assert_int_equal(apply(&q, MX_EXPORT_READINGS, &e, NULL, 0, T0), 0);
    assert_int_equal(q.to_ms, T0);
    assert_int_equal(q.from_ms, T0 - 86400000LL);
    assert_int_equal(q.format, MX_EXPORT_CSV);
    const char *kv[] = {
        "format", "ndjson",      "device", "  Press-7 ",           "zone", "Halle-\xc3\x96st",
        "type",   "TEMPERATURE", "from",   "2026-12-01T09:00:00Z", "to",   "1796119200000"};
    assert_int_equal(apply(&q, MX_EXPORT_READINGS, &e, kv, 12, T0 + 5), 0);
    assert_int_equal(q.format, MX_EXPORT_NDJSON);
    assert_string_equal(q.device, "press-7");
    assert_string_equal(q.zone, "halle-\xc3\x96st"); /* only ASCII is lower-cased */
    assert_string_equal(q.type, "temperature");
    assert_int_equal(q.from_ms, T0 - 3600000LL);
    assert_int_equal(q.to_ms, T0);
    const char *sev[] = {"severity", "Critical"};
    assert_int_equal(apply(&q, MX_EXPORT_ALERTS, &e, sev, 2, T0), 0);
    assert_string_equal(q.severity, "critical");
    mx_param_error_free(&e);
}

static void bad_parameters_are_named(void **state)
{
    (void)state;
    struct {
        mx_export_kind kind;
        const char *name, *value, *param, *reason;
    } cases[] = {
        {MX_EXPORT_READINGS, "format", "xml", "format", "must be csv or ndjson, got \"xml\""},
        {MX_EXPORT_READINGS, "severity", "info", "severity", "unknown parameter"},
        {MX_EXPORT_ALERTS, "type", "temperature", "type", "unknown parameter"},
        {MX_EXPORT_READINGS, "limit", "5", "limit", "unknown parameter"},
        {MX_EXPORT_READINGS, "from", "yesterday", "from", "RFC 3339"},
        {MX_EXPORT_READINGS, "to", NULL, "to", "requires a value"},
        {MX_EXPORT_READINGS, "zone", "a\nb", "zone", "control characters"},
        {MX_EXPORT_READINGS, "device", "\xff", "device", "valid UTF-8"},
        {MX_EXPORT_ALERTS, "severity", "fatal", "severity", "info, warning or critical"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mx_export_query q;
        mx_param_error e;
        mx_param_error_init(&e);
        const char *kv[] = {cases[i].name, cases[i].value};
        assert_int_equal(apply(&q, cases[i].kind, &e, kv, 2, T0), 1);
        assert_non_null(strstr(e.message, cases[i].reason));
        json_t *d = json_array_get(e.details, 0);
        assert_string_equal(json_string_value(json_object_get(d, "param")), cases[i].param);
        mx_param_error_free(&e);
    }
}

static void windows_are_checked(void **state)
{
    (void)state;
    mx_export_query q;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *inverted[] = {"from", "1796119200000", "to", "1796119200000"};
    assert_int_equal(apply(&q, MX_EXPORT_READINGS, &e, inverted, 4, T0), 1);
    assert_non_null(strstr(e.message, "from: must be before to"));
    mx_param_error_free(&e);
    mx_param_error_init(&e);
    char from[32], to[32];
    snprintf(from, sizeof(from), "%lld", (long long)(T0 - 31 * 86400000LL));
    snprintf(to, sizeof(to), "%lld", (long long)T0);
    const char *max[] = {"from", from, "to", to};
    assert_int_equal(apply(&q, MX_EXPORT_READINGS, &e, max, 4, T0), 0);
    snprintf(from, sizeof(from), "%lld", (long long)(T0 - 31 * 86400000LL - 1));
    assert_int_equal(apply(&q, MX_EXPORT_READINGS, &e, max, 4, T0), 1);
    assert_non_null(strstr(e.message, "at most 31 days"));
    mx_param_error_free(&e);
    mx_param_error_init(&e);
    const char *twice[] = {"zone", "a", "zone", "b"};
    assert_int_equal(apply(&q, MX_EXPORT_READINGS, &e, twice, 4, T0), 1);
    assert_non_null(strstr(e.message, "zone: given more than once"));
    mx_param_error_free(&e);
}

static void csv_fields_follow_rfc4180(void **state)
{
    (void)state;
    mx_export_buf b = {0};
    assert_int_equal(mx_export_csv_field(&b, "plain"), 0);
    assert_int_equal(mx_export_csv_field(&b, "a,b"), 0);
    assert_int_equal(mx_export_csv_field(&b, "say \"hi\""), 0);
    assert_int_equal(mx_export_csv_field(&b, "l1\r\nl2"), 0);
    assert_int_equal(mx_export_csv_field(&b, ""), 0);
    const char want[] = "plain\"a,b\"\"say \"\"hi\"\"\"\"l1\r\nl2\"";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    mx_export_buf_free(&b);
    assert_int_equal(mx_export_header(MX_EXPORT_ALERTS, &b), 0);
    const char hdr[] = "ts,device_id,zone,severity,code,message,firmware,token,received\r\n";
    assert_int_equal(b.len, strlen(hdr));
    assert_memory_equal(b.data, hdr, b.len);
    mx_export_buf_free(&b);
}

static void doubles_are_shortest_exact(void **state)
{
    (void)state;
    char out[40];
    mx_export_format_double(71.3, out, sizeof(out));
    assert_string_equal(out, "71.3");
    mx_export_format_double(0.1 + 0.2, out, sizeof(out));
    assert_string_equal(out, "0.30000000000000004");
    mx_export_format_double(21.123456789012345, out, sizeof(out));
    assert_true(strtod(out, NULL) == 21.123456789012345);
    mx_export_format_double(-40, out, sizeof(out));
    assert_string_equal(out, "-40");
}

static void reading_doc(bson_t *doc)
{
    bson_init(doc);
    BSON_APPEND_UTF8(doc, PW_F_ID, "tok-1");
    BSON_APPEND_DATE_TIME(doc, PW_F_TS, T0 + 123);
    BSON_APPEND_UTF8(doc, PW_F_DEVICE, "ofen-\xc3\xa4");
    BSON_APPEND_UTF8(doc, PW_F_ZONE, "halle,1");
    BSON_APPEND_UTF8(doc, PW_F_TYPE, "temperature");
    BSON_APPEND_DOUBLE(doc, PW_F_VALUE, 21.5);
    BSON_APPEND_UTF8(doc, PW_F_UNIT, "C");
    BSON_APPEND_DOUBLE(doc, PW_F_RAW_VALUE, 70.7);
    BSON_APPEND_UTF8(doc, PW_F_RAW_UNIT, "F");
    BSON_APPEND_UTF8(doc, PW_F_FIRMWARE, "2.1.0");
    BSON_APPEND_DATE_TIME(doc, PW_F_RECEIVED, T0 + 1000);
}

static void rows_of_a_reading(void **state)
{
    (void)state;
    bson_t doc;
    reading_doc(&doc);
    mx_export_query q;
    mx_export_query_init(&q, MX_EXPORT_READINGS);
    mx_export_buf b = {0};
    assert_int_equal(mx_export_row(&q, &doc, &b), 0);
    const char csv[] = "2026-12-01T10:00:00.123Z,ofen-\xc3\xa4,\"halle,1\",temperature,21.5,C,70.7,"
                       "F,2.1.0,tok-1,2026-12-01T10:00:01.000Z\r\n";
    assert_int_equal(b.len, strlen(csv));
    assert_memory_equal(b.data, csv, b.len);
    mx_export_buf_free(&b);
    q.format = MX_EXPORT_NDJSON;
    assert_int_equal(mx_export_row(&q, &doc, &b), 0);
    const char nd[] = "{\"ts\":\"2026-12-01T10:00:00.123Z\",\"device_id\":\"ofen-\xc3\xa4\","
                      "\"zone\":\"halle,1\",\"type\":\"temperature\",\"value\":21.5,\"unit\":\"C\","
                      "\"raw_value\":70.7,\"raw_unit\":\"F\",\"firmware\":\"2.1.0\","
                      "\"token\":\"tok-1\",\"received\":\"2026-12-01T10:00:01.000Z\"}\n";
    assert_int_equal(b.len, strlen(nd));
    assert_memory_equal(b.data, nd, b.len);
    mx_export_buf_free(&b);
    bson_destroy(&doc);
}

static void rows_of_an_alert(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, PW_F_ID, "a1");
    BSON_APPEND_DATE_TIME(&doc, PW_F_TS, T0);
    BSON_APPEND_UTF8(&doc, PW_F_DEVICE, "d");
    BSON_APPEND_UTF8(&doc, PW_F_ZONE, "z");
    BSON_APPEND_UTF8(&doc, PW_F_SEVERITY, "critical");
    BSON_APPEND_UTF8(&doc, PW_F_CODE, "E1");
    BSON_APPEND_UTF8(&doc, PW_F_MESSAGE, "hot, \"very\"\nhot");
    BSON_APPEND_UTF8(&doc, PW_F_FIRMWARE, "1.0");
    mx_export_query q;
    mx_export_query_init(&q, MX_EXPORT_ALERTS);
    mx_export_buf b = {0};
    assert_int_equal(mx_export_row(&q, &doc, &b), 0);
    const char csv[] =
        "2026-12-01T10:00:00.000Z,d,z,critical,E1,\"hot, \"\"very\"\"\nhot\",1.0,a1,\r\n";
    assert_int_equal(b.len, strlen(csv));
    assert_memory_equal(b.data, csv, b.len);
    mx_export_buf_free(&b);
    q.format = MX_EXPORT_NDJSON;
    assert_int_equal(mx_export_row(&q, &doc, &b), 0);
    assert_non_null(strstr(b.data, "\"message\":\"hot, \\\"very\\\"\\nhot\""));
    assert_non_null(strstr(b.data, "\"received\":null}\n"));
    mx_export_buf_free(&b);
    bson_destroy(&doc);
}

static void attachment_names_are_safe(void **state)
{
    (void)state;
    mx_export_query q;
    mx_export_query_init(&q, MX_EXPORT_READINGS);
    q.from_ms = T0 - 3600000LL;
    q.to_ms = T0;
    char d[1024];
    mx_export_disposition(&q, d, sizeof(d));
    assert_string_equal(
        d,
        "attachment; filename=\"plantwatch-readings-all-20261201T090000Z-20261201T100000Z.csv\"");
    snprintf(q.zone, sizeof(q.zone), "halle \xc3\xb6\"x");
    q.format = MX_EXPORT_NDJSON;
    mx_export_disposition(&q, d, sizeof(d));
    assert_string_equal(d, "attachment; filename=\"plantwatch-readings-halle____x-20261201T090000Z-"
                           "20261201T100000Z.ndjson\"; filename*=UTF-8''plantwatch-readings-halle"
                           "%20%C3%B6%22x-20261201T090000Z-20261201T100000Z.ndjson");
}

static void hour_filters_are_equalities(void **state)
{
    (void)state;
    mx_export_query q;
    mx_export_query_init(&q, MX_EXPORT_ALERTS);
    snprintf(q.zone, sizeof(q.zone), "z1");
    snprintf(q.severity, sizeof(q.severity), "info");
    snprintf(q.type, sizeof(q.type), "ignored");
    bson_t f;
    mx_export_filter(&q, T0, &f);
    char shape[128];
    pw_store_filter_shape(&f, shape, sizeof(shape));
    assert_string_equal(shape, "{hour,zone,severity}");
    bson_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times_parse_both_forms),    cmocka_unit_test(defaults_and_filters),
        cmocka_unit_test(bad_parameters_are_named),  cmocka_unit_test(windows_are_checked),
        cmocka_unit_test(csv_fields_follow_rfc4180), cmocka_unit_test(doubles_are_shortest_exact),
        cmocka_unit_test(rows_of_a_reading),         cmocka_unit_test(rows_of_an_alert),
        cmocka_unit_test(attachment_names_are_safe), cmocka_unit_test(hour_filters_are_equalities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

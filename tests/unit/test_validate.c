/* Unit test for pw_validate: readings and alerts from JSON and from decoded
 * protobufs — every rule by table (field and message asserted), error
 * collection across fields, and the JSON/summary renderings of errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_validate.h"

#define NOW 1795600800000LL /* 2026-11-25T10:00:00Z */

typedef struct {
    const char *json;
    const char *field;
    const char *message;
} bad_case;

/* JSON with %s placeholders is not needed: long strings are built below. */
static const bad_case bad_readings[] = {
    {"[]", "", "must be a JSON object"},
    {"\"text\"", "", "must be a JSON object"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"colour\":\"red\"}", "colour",
     "unknown field"},
    {"{\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id", "is required"},
    {"{\"device_id\":\"\",\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id",
     "must not be empty"},
    {"{\"device_id\":\" \\t \",\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id",
     "must not be blank"},
    {"{\"device_id\":7,\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id",
     "must be a string"},
    {"{\"device_id\":null,\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id",
     "must be a string"},
    {"{\"device_id\":\"a\\u0001b\",\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id",
     "must not contain control characters"},
    {"{\"device_id\":\"a\\u0000b\",\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id",
     "must not contain control characters"},
    {"{\"device_id\":\"a\\nb\",\"zone\":\"z\",\"type\":\"t\",\"value\":1}", "device_id",
     "must not contain control characters"},
    {"{\"device_id\":\"d\",\"zone\":\"z\\u0085\",\"type\":\"t\",\"value\":1}", "zone",
     "must not contain control characters"},
    {"{\"device_id\":\"d\",\"type\":\"t\",\"value\":1}", "zone", "is required"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"value\":1}", "type", "is required"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\"}", "value", "is required"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":true}", "value",
     "must be a number"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":\"21.5\"}", "value",
     "must be a number"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":null}", "value",
     "must be a number"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":[1]}", "value",
     "must be a number"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1e16}", "value",
     "magnitude must not exceed 1e15"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":-1000000000000001}", "value",
     "magnitude must not exceed 1e15"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"unit\":5}", "unit",
     "must be a string"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":1795600800000.0}", "ts",
     "must be an RFC 3339 string or integer epoch milliseconds"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":\"1795600800000\"}",
     "ts", "must be an RFC 3339 date-time"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":\"2026-02-30T00:00:"
     "00Z\"}",
     "ts", "must be an RFC 3339 date-time"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":true}", "ts",
     "must be an RFC 3339 string or integer epoch milliseconds"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":null}", "ts",
     "must be an RFC 3339 string or integer epoch milliseconds"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":-1}", "ts",
     "must not be negative"},
    /* NOW - 30 days - 1 ms */
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":1793008799999}", "ts",
     "is more than 30 days in the past"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":\"2026-10-01T00:00:"
     "00Z\"}",
     "ts", "is more than 30 days in the past"},
    /* NOW + 1 h + 1 ms */
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"ts\":1795604400001}", "ts",
     "is more than 1 hour in the future"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":1,\"severity\":\"info\"}",
     "severity", "unknown field"},
};

static const bad_case bad_alerts[] = {
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":\"fatal\",\"code\":\"c\"}", "severity",
     "must be one of info, warning, critical"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":\"INFO\",\"code\":\"c\"}", "severity",
     "must be one of info, warning, critical"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":2,\"code\":\"c\"}", "severity",
     "must be one of info, warning, critical"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"code\":\"c\"}", "severity", "is required"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":\"info\"}", "code", "is required"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":\"info\",\"code\":\"  \"}", "code",
     "must not be blank"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":\"info\",\"code\":\"c\",\"message\":"
     "\"bell\\u0007\"}",
     "message", "must not contain control characters"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":\"info\",\"code\":\"c\",\"value\":1}",
     "value", "unknown field"},
    {"{\"device_id\":\"d\",\"zone\":\"z\",\"severity\":\"info\",\"code\":\"c\",\"ts\":1.5}", "ts",
     "must be an RFC 3339 string or integer epoch milliseconds"},
};

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    }
    return j;
}

static void expect_one_error(const pw_errors *e, const char *what, const char *field,
                             const char *message)
{
    if (e->len != 1) {
        fail_msg("%s: %zu errors (first: %s: %s), want %s: %s", what, e->len,
                 e->len ? e->items[0].field : "-", e->len ? e->items[0].message : "-", field,
                 message);
    }
    if (strcmp(e->items[0].field, field) != 0 || strcmp(e->items[0].message, message) != 0) {
        fail_msg("%s: got %s: %s, want %s: %s", what, e->items[0].field, e->items[0].message, field,
                 message);
    }
    assert_int_equal(e->items[0].index, 4);
}

static void test_bad_readings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_readings / sizeof bad_readings[0]; i++) {
        json_t *j = load(bad_readings[i].json);
        pw_errors e;
        pw_errors_init(&e);
        Iot__V1__Reading r;
        assert_int_equal(pw_reading_from_json(j, 4, NOW, &r, &e), -1);
        expect_one_error(&e, bad_readings[i].json, bad_readings[i].field, bad_readings[i].message);
        /* out is cleared on failure */
        assert_string_equal(r.device_id, "");
        pw_errors_free(&e);
        json_decref(j);
    }
}

static void test_bad_alerts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_alerts / sizeof bad_alerts[0]; i++) {
        json_t *j = load(bad_alerts[i].json);
        pw_errors e;
        pw_errors_init(&e);
        Iot__V1__Alert a;
        assert_int_equal(pw_alert_from_json(j, 4, NOW, &a, &e), -1);
        expect_one_error(&e, bad_alerts[i].json, bad_alerts[i].field, bad_alerts[i].message);
        pw_errors_free(&e);
        json_decref(j);
    }
}

/* ch repeated n times (heap, NUL-terminated). */
static char *repeat(const char *ch, size_t n)
{
    size_t w = strlen(ch);
    char *s = malloc(n * w + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        memcpy(s + i * w, ch, w);
    }
    s[n * w] = '\0';
    return s;
}

/* 1-, 2-, 3- and 4-byte characters: x, é, 炉, 😀 */
static const char *const widths[] = {"x", "\xc3\xa9", "\xe7\x82\x89", "\xf0\x9f\x98\x80"};
#define N_WIDTHS (sizeof widths / sizeof widths[0])

/* The member of a reading or an alert a field name stands for. */
static char **reading_member(Iot__V1__Reading *r, const char *field)
{
    if (strcmp(field, "device_id") == 0) {
        return &r->device_id;
    }
    if (strcmp(field, "zone") == 0) {
        return &r->zone;
    }
    if (strcmp(field, "type") == 0) {
        return &r->type;
    }
    if (strcmp(field, "unit") == 0) {
        return &r->unit;
    }
    return &r->firmware;
}

static char **alert_member(Iot__V1__Alert *a, const char *field)
{
    if (strcmp(field, "device_id") == 0) {
        return &a->device_id;
    }
    if (strcmp(field, "zone") == 0) {
        return &a->zone;
    }
    if (strcmp(field, "code") == 0) {
        return &a->code;
    }
    if (strcmp(field, "message") == 0) {
        return &a->message;
    }
    return &a->firmware;
}

/* field of max characters (of ch) must pass and be kept byte for byte,
 * max+1 must fail naming the field */
static void check_length(const char *field, size_t max, int alert, const char *ch)
{
    for (size_t n = max; n <= max + 1; n++) {
        char *s = repeat(ch, n);
        json_t *j = alert ? json_pack("{s:s,s:s,s:s,s:s}", "device_id", "d", "zone", "z",
                                      "severity", "info", "code", "c")
                          : json_pack("{s:s,s:s,s:s,s:i}", "device_id", "d", "zone", "z", "type",
                                      "t", "value", 1);
        json_object_set_new(j, field, json_string(s));
        pw_errors e;
        pw_errors_init(&e);
        int rc;
        int same = 0;
        if (alert) {
            Iot__V1__Alert a;
            rc = pw_alert_from_json(j, 4, NOW, &a, &e);
            if (rc == 0) {
                same = strcmp(*alert_member(&a, field), s) == 0;
                pw_alert_clear(&a);
            }
        } else {
            Iot__V1__Reading r;
            rc = pw_reading_from_json(j, 4, NOW, &r, &e);
            if (rc == 0) {
                same = strcmp(*reading_member(&r, field), s) == 0;
                pw_reading_clear(&r);
            }
        }
        if (n == max) {
            if (rc != 0) {
                fail_msg("%s of %zu characters rejected: %s", field, n, e.items[0].message);
            }
            assert_true(same);
            assert_true(strlen(s) <= max * PW_UTF8_MAX_BYTES_PER_CHAR);
        } else {
            char want[64];
            snprintf(want, sizeof want, "must be at most %zu characters", max);
            expect_one_error(&e, field, field, want);
        }
        pw_errors_free(&e);
        json_decref(j);
        free(s);
    }
}

static void test_lengths(void **state)
{
    (void)state;
    for (size_t w = 0; w < N_WIDTHS; w++) {
        const char *ch = widths[w];
        check_length("device_id", PW_MAX_ID_LEN, 0, ch);
        check_length("zone", PW_MAX_ZONE_LEN, 0, ch);
        check_length("type", PW_MAX_TYPE_LEN, 0, ch);
        check_length("unit", PW_MAX_UNIT_LEN, 0, ch);
        check_length("firmware", PW_MAX_FIRMWARE_LEN, 0, ch);
        check_length("code", PW_MAX_CODE_LEN, 1, ch);
        check_length("message", PW_MAX_MESSAGE_LEN, 1, ch);
        check_length("device_id", PW_MAX_ID_LEN, 1, ch);
        check_length("zone", PW_MAX_ZONE_LEN, 1, ch);
        check_length("firmware", PW_MAX_FIRMWARE_LEN, 1, ch);
    }
}

typedef struct {
    const char *field;
    size_t max;
    int alert;
} limit_case;

static const limit_case limits[] = {
    {"device_id", PW_MAX_ID_LEN, 0},      {"zone", PW_MAX_ZONE_LEN, 0},
    {"type", PW_MAX_TYPE_LEN, 0},         {"unit", PW_MAX_UNIT_LEN, 0},
    {"firmware", PW_MAX_FIRMWARE_LEN, 0}, {"device_id", PW_MAX_ID_LEN, 1},
    {"zone", PW_MAX_ZONE_LEN, 1},         {"code", PW_MAX_CODE_LEN, 1},
    {"message", PW_MAX_MESSAGE_LEN, 1},   {"firmware", PW_MAX_FIRMWARE_LEN, 1},
};

/* The same limits on decoded messages (gRPC, envelopes): exactly N
 * characters pass, N + 1 fail with the field named. */
static void test_pb_lengths(void **state)
{
    (void)state;
    for (size_t w = 0; w < N_WIDTHS; w++) {
        for (size_t c = 0; c < sizeof limits / sizeof limits[0]; c++) {
            const limit_case *lc = &limits[c];
            for (size_t n = lc->max; n <= lc->max + 1; n++) {
                char *s = repeat(widths[w], n);
                pw_errors e;
                pw_errors_init(&e);
                int rc;
                if (lc->alert) {
                    Iot__V1__Alert a = IOT__V1__ALERT__INIT;
                    a.device_id = "d";
                    a.zone = "z";
                    a.severity = IOT__V1__SEVERITY__SEVERITY_INFO;
                    a.code = "c";
                    a.ts_ms = NOW;
                    *alert_member(&a, lc->field) = s;
                    rc = pw_alert_check(&a, 4, NOW, 0, &e);
                } else {
                    Iot__V1__Reading r = IOT__V1__READING__INIT;
                    r.device_id = "d";
                    r.zone = "z";
                    r.type = "t";
                    r.value = 1.0;
                    r.ts_ms = NOW;
                    *reading_member(&r, lc->field) = s;
                    rc = pw_reading_check(&r, 4, NOW, 0, &e);
                }
                if (n == lc->max) {
                    assert_int_equal(rc, 0);
                } else {
                    char want[64];
                    snprintf(want, sizeof want, "must be at most %zu characters", lc->max);
                    assert_int_equal(rc, -1);
                    expect_one_error(&e, lc->field, lc->field, want);
                }
                pw_errors_free(&e);
                free(s);
            }
        }
    }
}

/* Invalid UTF-8 is refused with the field named; JSON that is not UTF-8
 * does not even parse. */
static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xff", /* never in UTF-8 */
        ("a\x80"
         "b"),              /* stray continuation byte */
        "\xc0\xaf",         /* overlong '/' (2 bytes) */
        "\xc1\xbf",         /* overlong U+007F */
        "\xe0\x80\xaf",     /* overlong '/' (3 bytes) */
        "\xf0\x80\x80\xaf", /* overlong '/' (4 bytes) */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* lead byte beyond U+10FFFF */
        "Halle-S\xc3",      /* truncated 2-byte sequence */
        "\xe7\x82",         /* truncated 3-byte sequence */
        "\xf0\x9f\x98",     /* truncated 4-byte sequence */
        "\xe7\x82x",        /* continuation byte missing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 0;
        int ctrl = 0;
        assert_int_equal(pw_utf8_scan(bad[i], strlen(bad[i]), 0, &n, &ctrl), -1);
        Iot__V1__Alert a = IOT__V1__ALERT__INIT;
        a.device_id = "d";
        a.zone = (char *)bad[i];
        a.severity = IOT__V1__SEVERITY__SEVERITY_INFO;
        a.code = "c";
        a.ts_ms = NOW;
        pw_errors e;
        pw_errors_init(&e);
        assert_int_equal(pw_alert_check(&a, 4, NOW, 0, &e), -1);
        expect_one_error(&e, bad[i], "zone", "must be valid UTF-8");
        pw_errors_free(&e);
        char text[64];
        snprintf(text, sizeof text, "{\"zone\":\"%s\"}", bad[i]);
        json_error_t jerr;
        assert_null(json_loads(text, 0, &jerr));
    }
    /* the largest code point of each length, and a private-use one, are fine */
    static const char *const good[] = {"\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf",
                                       "\xee\x80\x80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t n = 0;
        int ctrl = 0;
        assert_int_equal(pw_utf8_scan(good[i], strlen(good[i]), 0, &n, &ctrl), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ctrl, i == 0); /* DEL is a control character */
    }
    size_t n = 0;
    int ctrl = 0;
    assert_int_equal(pw_utf8_scan("a\tb", 3, 1, &n, &ctrl), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ctrl, 0);
    assert_int_equal(pw_utf8_scan("a\tb", 3, 0, &n, &ctrl), 0);
    assert_int_equal(ctrl, 1);
}

static void test_utf8_trim_tail(void **state)
{
    (void)state;
    char s[16];
    snprintf(s, sizeof s, "ab\xe7\x82");
    pw_utf8_trim_tail(s);
    assert_string_equal(s, "ab");
    snprintf(s, sizeof s, "ab\xe7\x82\x89");
    pw_utf8_trim_tail(s);
    assert_string_equal(s, "ab\xe7\x82\x89");
    snprintf(s, sizeof s, "\xf0\x9f\x98");
    pw_utf8_trim_tail(s);
    assert_string_equal(s, "");
    /* a summary cut to its buffer stays valid UTF-8 */
    pw_errors e;
    pw_errors_init(&e);
    pw_errors_add(&e, -1, "zone", "%s", "\xe7\x82\x89\xe7\x82\x89\xe7\x82\x89");
    char sum[12]; /* "zone: " + 5 bytes: cuts the second 炉 */
    pw_errors_summary(&e, sum, sizeof sum);
    assert_string_equal(sum, "zone: \xe7\x82\x89");
    pw_errors_free(&e);
}

/* PW_CHECK_NO_WINDOW: any positive ts, whatever now_ms. */
static void test_pb_no_window(void **state)
{
    (void)state;
    Iot__V1__Reading r = IOT__V1__READING__INIT;
    r.device_id = "d";
    r.zone = "z";
    r.type = "t";
    r.ts_ms = 1;
    pw_errors e;
    pw_errors_init(&e);
    assert_int_equal(pw_reading_check(&r, 0, NOW, PW_CHECK_NO_WINDOW, &e), 0);
    r.ts_ms = NOW + 400LL * 86400000LL;
    assert_int_equal(pw_reading_check(&r, 0, 0, PW_CHECK_NO_WINDOW, &e), 0);
    assert_int_equal(e.len, 0);
    r.ts_ms = 0;
    assert_int_equal(pw_reading_check(&r, 0, NOW, PW_CHECK_NO_WINDOW, &e), -1);
    assert_string_equal(e.items[0].field, "ts");
    assert_string_equal(e.items[0].message, "is required");
    pw_errors_free(&e);
    r.ts_ms = -5;
    assert_int_equal(pw_reading_check(&r, 0, NOW, PW_CHECK_NO_WINDOW, &e), -1);
    assert_string_equal(e.items[0].message, "must not be negative");
    pw_errors_free(&e);
    r.ts_ms = 0;
    assert_int_equal(pw_reading_check(&r, 0, NOW, PW_CHECK_NO_WINDOW | PW_CHECK_ZERO_TS, &e), 0);
    pw_errors_free(&e);
}

static void test_good_reading(void **state)
{
    (void)state;
    /* 64 two-byte characters: length counts characters, not bytes */
    char zone[64 * 2 + 1];
    for (int i = 0; i < 64; i++) {
        memcpy(zone + 2 * i, "\xc3\xbc", 2);
    }
    zone[128] = '\0';
    json_t *j = json_pack("{s:s,s:s,s:s,s:f,s:s,s:s,s:s}", "device_id", "boiler-7", "zone", zone,
                          "type", "temperature", "value", 21.5, "unit", "C", "ts",
                          "2026-11-25T10:30:00.250+01:00", "firmware", "1.4.2");
    pw_errors e;
    pw_errors_init(&e);
    Iot__V1__Reading r;
    assert_int_equal(pw_reading_from_json(j, -1, NOW, &r, &e), 0);
    assert_int_equal(e.len, 0);
    assert_string_equal(r.device_id, "boiler-7");
    assert_string_equal(r.zone, zone);
    assert_string_equal(r.type, "temperature");
    assert_true(r.value == 21.5);
    assert_string_equal(r.unit, "C");
    assert_int_equal(r.ts_ms, NOW - 1800000 + 250);
    assert_string_equal(r.firmware, "1.4.2");
    assert_int_equal(pw_reading_check(&r, -1, NOW, 0, &e), 0);
    pw_reading_clear(&r);
    assert_string_equal(r.device_id, "");
    json_decref(j);

    /* minimal: integer value, ts defaults to now, boundaries of the window */
    j = load("{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"t\",\"value\":-3}");
    assert_int_equal(pw_reading_from_json(j, 0, NOW, &r, &e), 0);
    assert_true(r.value == -3.0);
    assert_int_equal(r.ts_ms, NOW);
    assert_string_equal(r.unit, "");
    pw_reading_clear(&r);
    json_object_set_new(j, "ts", json_integer(NOW - PW_MAX_PAST_MS));
    json_object_set_new(j, "value", json_real(1e15));
    assert_int_equal(pw_reading_from_json(j, 0, NOW, &r, &e), 0);
    assert_int_equal(r.ts_ms, NOW - PW_MAX_PAST_MS);
    pw_reading_clear(&r);
    json_object_set_new(j, "ts", json_integer(NOW + PW_MAX_FUTURE_MS));
    assert_int_equal(pw_reading_from_json(j, 0, NOW, &r, &e), 0);
    pw_reading_clear(&r);
    assert_int_equal(e.len, 0);
    json_decref(j);
}

static void test_good_alert(void **state)
{
    (void)state;
    json_t *j = load("{\"device_id\":\"press-2\",\"zone\":\"hall-a\",\"severity\":\"critical\","
                     "\"code\":\"OVERPRESSURE\",\"message\":\"line 1\\nline 2\",\"ts\":"
                     "1795600000000,\"firmware\":\"2.0\"}");
    pw_errors e;
    pw_errors_init(&e);
    Iot__V1__Alert a;
    assert_int_equal(pw_alert_from_json(j, -1, NOW, &a, &e), 0);
    assert_int_equal(a.severity, IOT__V1__SEVERITY__SEVERITY_CRITICAL);
    assert_string_equal(a.code, "OVERPRESSURE");
    assert_string_equal(a.message, "line 1\nline 2");
    assert_int_equal(a.ts_ms, 1795600000000LL);
    assert_int_equal(pw_alert_check(&a, -1, NOW, 0, &e), 0);
    pw_alert_clear(&a);
    assert_int_equal(e.len, 0);
    json_decref(j);
}

static void test_collects_all_errors(void **state)
{
    (void)state;
    json_t *j = load("{\"zone\":\"\",\"type\":3,\"value\":\"x\",\"ts\":-5,\"bogus\":1}");
    pw_errors e;
    pw_errors_init(&e);
    Iot__V1__Reading r;
    assert_int_equal(pw_reading_from_json(j, 2, NOW, &r, &e), -1);
    assert_int_equal(e.len, 6);
    const char *fields[] = {"bogus", "device_id", "zone", "type", "value", "ts"};
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(e.items[i].field, fields[i]);
        assert_int_equal(e.items[i].index, 2);
    }

    json_t *arr = pw_errors_to_json(&e);
    char *text = json_dumps(json_array_get(arr, 0), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"field\":\"bogus\",\"index\":2,\"message\":\"unknown field\"}");
    free(text);
    assert_int_equal(json_array_size(arr), 6);
    json_decref(arr);

    char sum[512];
    pw_errors_summary(&e, sum, sizeof sum);
    assert_string_equal(sum, "items[2].bogus: unknown field; items[2].device_id: is required; "
                             "items[2].zone: must not be empty; items[2].type: must be a string; "
                             "items[2].value: must be a number; items[2].ts: must not be "
                             "negative");
    char small[20];
    pw_errors_summary(&e, small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "items[2].bogus: unk", 19);
    pw_errors_free(&e);
    json_decref(j);
}

static void test_errors_json_without_index(void **state)
{
    (void)state;
    pw_errors e;
    pw_errors_init(&e);
    /* a long unknown key is cut to the field buffer on a character boundary */
    char key[64] = "";
    for (int i = 0; i < 20; i++) {
        strcat(key, "\xc3\xa9"); /* 40 bytes of 'é' */
    }
    pw_errors_add(&e, -1, key, "unknown field");
    assert_int_equal(strlen(e.items[0].field), 30);
    json_t *one = pw_errors_to_json(&e);
    assert_string_equal(json_string_value(json_object_get(json_array_get(one, 0), "field")),
                        e.items[0].field);
    json_decref(one);
    pw_errors_free(&e);

    pw_errors_add(&e, -1, "value", "must be a finite number");
    json_t *arr = pw_errors_to_json(&e);
    char *text = json_dumps(arr, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "[{\"field\":\"value\",\"message\":\"must be a finite number\"}]");
    free(text);
    json_decref(arr);
    char sum[64];
    pw_errors_summary(&e, sum, sizeof sum);
    assert_string_equal(sum, "value: must be a finite number");
    pw_errors_free(&e);
    arr = pw_errors_to_json(&e);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
}

/* ---- decoded protobufs --------------------------------------------------- */

static Iot__V1__Reading good_pb_reading(void)
{
    Iot__V1__Reading r = IOT__V1__READING__INIT;
    r.device_id = "d";
    r.zone = "z";
    r.type = "temperature";
    r.value = 20;
    r.ts_ms = NOW;
    return r;
}

static void expect_pb_reading(Iot__V1__Reading r, int allow_zero, const char *field,
                              const char *message)
{
    pw_errors e;
    pw_errors_init(&e);
    assert_int_equal(pw_reading_check(&r, 4, NOW, allow_zero, &e), -1);
    expect_one_error(&e, field, field, message);
    pw_errors_free(&e);
}

static void test_pb_reading(void **state)
{
    (void)state;
    pw_errors e;
    pw_errors_init(&e);
    Iot__V1__Reading r = good_pb_reading();
    assert_int_equal(pw_reading_check(&r, 0, NOW, 0, &e), 0);
    r.ts_ms = 0;
    assert_int_equal(pw_reading_check(&r, 0, NOW, 1, &e), 0);
    r.device_id = NULL; /* treated as empty */
    assert_int_equal(pw_reading_check(&r, 0, NOW, 1, &e), -1);
    assert_string_equal(e.items[0].message, "is required");
    pw_errors_free(&e);

    r = good_pb_reading();
    r.ts_ms = 0;
    expect_pb_reading(r, 0, "ts", "is more than 30 days in the past");
    r = good_pb_reading();
    r.value = NAN;
    expect_pb_reading(r, 0, "value", "must be a finite number");
    r.value = INFINITY;
    expect_pb_reading(r, 0, "value", "must be a finite number");
    r.value = -INFINITY;
    expect_pb_reading(r, 0, "value", "must be a finite number");
    r.value = 2e15;
    expect_pb_reading(r, 0, "value", "magnitude must not exceed 1e15");
    r = good_pb_reading();
    r.device_id = "";
    expect_pb_reading(r, 0, "device_id", "is required");
    r.device_id = "\xff";
    expect_pb_reading(r, 0, "device_id", "must be valid UTF-8");
    r.device_id = "\xc0\xaf"; /* overlong '/' */
    expect_pb_reading(r, 0, "device_id", "must be valid UTF-8");
    r.device_id = "\xed\xa0\x80"; /* surrogate */
    expect_pb_reading(r, 0, "device_id", "must be valid UTF-8");
    r.device_id = "\xf4\x90\x80\x80"; /* above U+10FFFF */
    expect_pb_reading(r, 0, "device_id", "must be valid UTF-8");
    r.device_id = "abc\xe2\x82"; /* truncated sequence */
    expect_pb_reading(r, 0, "device_id", "must be valid UTF-8");
    r.device_id = "tab\there";
    expect_pb_reading(r, 0, "device_id", "must not contain control characters");
    r = good_pb_reading();
    r.unit = "\xf0\x9f\x8c\xa1\xef\xb8\x8f"; /* emoji: valid, 2 characters */
    pw_errors_init(&e);
    assert_int_equal(pw_reading_check(&r, 0, NOW, 0, &e), 0);
    r.ts_ms = NOW + PW_MAX_FUTURE_MS + 1;
    expect_pb_reading(r, 1, "ts", "is more than 1 hour in the future");
    r.ts_ms = -1;
    expect_pb_reading(r, 1, "ts", "must not be negative");
}

static void test_pb_alert(void **state)
{
    (void)state;
    Iot__V1__Alert a = IOT__V1__ALERT__INIT;
    a.device_id = "d";
    a.zone = "z";
    a.code = "c";
    a.ts_ms = 0;
    pw_errors e;
    pw_errors_init(&e);
    assert_int_equal(pw_alert_check(&a, 1, NOW, 1, &e), -1);
    assert_int_equal(e.len, 1);
    assert_string_equal(e.items[0].field, "severity");
    assert_string_equal(e.items[0].message, "must be one of info, warning, critical");
    pw_errors_free(&e);
    a.severity = IOT__V1__SEVERITY__SEVERITY_WARNING;
    assert_int_equal(pw_alert_check(&a, 1, NOW, 1, &e), 0);
    a.severity = (Iot__V1__Severity)7;
    assert_int_equal(pw_alert_check(&a, 1, NOW, 1, &e), -1);
    pw_errors_free(&e);

    a.severity = IOT__V1__SEVERITY__SEVERITY_INFO;
    a.message = "ok\r\n\ttabbed";
    assert_int_equal(pw_alert_check(&a, 1, NOW, 1, &e), 0);
    a.message = "esc\x1b[0m";
    a.code = "";
    a.zone = "\xe2\x80\xa8x\xc2\x9f"; /* U+2028 fine, U+009F (C1) is a control */
    assert_int_equal(pw_alert_check(&a, 1, NOW, 1, &e), -1);
    assert_int_equal(e.len, 3);
    assert_string_equal(e.items[0].field, "zone");
    assert_string_equal(e.items[0].message, "must not contain control characters");
    assert_string_equal(e.items[1].field, "code");
    assert_string_equal(e.items[1].message, "is required");
    assert_string_equal(e.items[2].field, "message");
    pw_errors_free(&e);
}

static void test_severity_names(void **state)
{
    (void)state;
    Iot__V1__Severity s;
    assert_int_equal(pw_severity_parse("info", &s), 0);
    assert_int_equal(s, IOT__V1__SEVERITY__SEVERITY_INFO);
    assert_int_equal(pw_severity_parse("warning", &s), 0);
    assert_int_equal(s, IOT__V1__SEVERITY__SEVERITY_WARNING);
    assert_int_equal(pw_severity_parse("critical", &s), 0);
    assert_int_equal(s, IOT__V1__SEVERITY__SEVERITY_CRITICAL);
    assert_int_equal(pw_severity_parse("unspecified", &s), -1);
    assert_int_equal(pw_severity_parse("", &s), -1);
    assert_int_equal(pw_severity_parse(NULL, &s), -1);
    assert_string_equal(pw_severity_name(IOT__V1__SEVERITY__SEVERITY_WARNING), "warning");
    assert_null(pw_severity_name(IOT__V1__SEVERITY__SEVERITY_UNSPECIFIED));
    assert_null(pw_severity_name((Iot__V1__Severity)9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_readings),
        cmocka_unit_test(test_bad_alerts),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_pb_lengths),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_utf8_trim_tail),
        cmocka_unit_test(test_pb_no_window),
        cmocka_unit_test(test_good_reading),
        cmocka_unit_test(test_good_alert),
        cmocka_unit_test(test_collects_all_errors),
        cmocka_unit_test(test_errors_json_without_index),
        cmocka_unit_test(test_pb_reading),
        cmocka_unit_test(test_pb_alert),
        cmocka_unit_test(test_severity_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

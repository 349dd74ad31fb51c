/* Unit tests for the consumer's normalization: units, ids, timestamps and
 * envelope decoding (table-driven); text limits in characters of every UTF-8
 * width stored byte for byte; the time window relative to the producer's
 * receive time. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "normalize.h"
#include "rollup.h"

typedef struct {
    const char *type;
    double value;
    const char *unit;
    int ok;
    double want;
    const char *want_unit;
} unit_case;

static const unit_case unit_cases[] = {
    {"temperature", 21.5, "C", 1, 21.5, "C"},
    {"temperature", 21.5, "°C", 1, 21.5, "C"},
    {"temperature", 212.0, "F", 1, 100.0, "C"},
    {"temperature", 32.0, "f", 1, 0.0, "C"},
    {"temperature", -40.0, "F", 1, -40.0, "C"},
    {"temperature", 273.15, "K", 1, 0.0, "C"},
    {"temperature", 0.0, "K", 1, -273.15, "C"},
    {"temperature", 300.0, " kelvin ", 1, 26.85, "C"},
    {"Temperature", 10.0, "C", 1, 10.0, "C"},
    {"temperature", 20.0, "X", 0, 0, NULL},
    {"temperature", 20.0, "", 0, 0, NULL},
    {"temperature", -1.0, "K", 0, 0, NULL},
    {"temperature", -300.0, "C", 0, 0, NULL},
    {"pressure", 1013.25, "hPa", 1, 1013.25, "hPa"},
    {"pressure", 101325.0, "Pa", 1, 1013.25, "hPa"},
    {"pressure", 101.325, "kPa", 1, 1013.25, "hPa"},
    {"pressure", 1.01325, "bar", 1, 1013.25, "hPa"},
    {"pressure", 14.6959, "psi", 1, 1013.25, "hPa"},
    {"pressure", 5.0, "mbar", 1, 5.0, "hPa"},
    {"pressure", 5.0, "atm?", 0, 0, NULL},
    {"pressure", -5.0, "bar", 0, 0, NULL},
    {"humidity", 45.0, "%", 1, 45.0, "%"},
    {"vibration", 0.3, "mm/s", 1, 0.3, "mm/s"},
};

static void test_units_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(unit_cases) / sizeof(*unit_cases); i++) {
        const unit_case *c = &unit_cases[i];
        double v = -999;
        const char *u = NULL;
        int rc = pwc_unit_normalize(c->type, c->value, c->unit, &v, &u);
        if (!c->ok) {
            assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(fabs(v - c->want) < 0.01);
        assert_string_equal(u, c->want_unit);
    }
}

typedef struct {
    const char *in;
    const char *want;
} id_case;

static void test_ids_table(void **state)
{
    (void)state;
    static const id_case cases[] = {
        {"  Dev-01 ", "dev-01"},
        {"ZONE-A", "zone-a"},
        {"\tpress-7\n", "press-7"},
        {"", ""},
        {"   ", ""},
        {"already-lower", "already-lower"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        assert_int_equal(pwc_id_normalize(cases[i].in, out, sizeof(out)), 0);
        assert_string_equal(out, cases[i].want);
    }
    /* an id that does not fit is refused, never shortened */
    char small[4];
    assert_int_equal(pwc_id_normalize(" ABC ", small, sizeof(small)), 0);
    assert_string_equal(small, "abc");
    assert_int_equal(pwc_id_normalize("ABCD", small, sizeof(small)), -1);
    assert_string_equal(small, "");
    assert_int_equal(pwc_id_normalize("A\xc3\xa9", small, sizeof(small)), 0);
    assert_string_equal(small, "a\xc3\xa9");
    assert_int_equal(pwc_id_normalize("\xe7\x82\x89Z", small, sizeof(small)), -1);
    assert_string_equal(small, "");
}

/* Lower-casing is ASCII only: every byte of a multi-byte character is kept,
 * whatever the byte (0x80..0xff never match A-Z or ASCII whitespace). */
static void test_ids_ascii_only(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(pwc_id_normalize("  HALLE-S\xc3\x9c"
                                      "D \t",
                                      out, sizeof(out)),
                     0);
    assert_string_equal(out, "halle-s\xc3\x9c"
                             "d"); /* Ü stays upper-case */
    assert_int_equal(pwc_id_normalize("\xc3\x84\xe7\x82\x89\xf0\x9f\x98\x80"
                                      "AB",
                                      out, sizeof(out)),
                     0);
    assert_string_equal(out, "\xc3\x84\xe7\x82\x89\xf0\x9f\x98\x80"
                             "ab");
    /* every continuation and lead byte passes through unchanged */
    char in[129], want[129];
    for (int b = 0x80; b <= 0xff; b++) {
        in[b - 0x80] = (char)b;
        want[b - 0x80] = (char)b;
    }
    in[128] = '\0';
    want[128] = '\0';
    char big[256];
    assert_int_equal(pwc_id_normalize(in, big, sizeof(big)), 0);
    assert_memory_equal(big, want, 129);
}

/* 2026-11-25T10:42:17.123Z */
#define TS_MS 1795603337123LL
#define NOW_MS (TS_MS + 60000)

static uint8_t *pack_reading(const char *dev, const char *zone, const char *type, double value,
                             const char *unit, int64_t ts, size_t *len)
{
    Iot__V1__Envelope env = IOT__V1__ENVELOPE__INIT;
    Iot__V1__Reading r = IOT__V1__READING__INIT;
    r.device_id = (char *)dev;
    r.zone = (char *)zone;
    r.type = (char *)type;
    r.value = value;
    r.unit = (char *)unit;
    r.ts_ms = ts;
    r.firmware = "1.4.2";
    env.token = "0b7e6c1e-5d1f-4c4e-9a57-0d8c5a1b2c3d";
    env.received_ms = TS_MS + 5;
    env.consumer = "sensor-a";
    env.source = IOT__V1__SOURCE__SOURCE_GRPC;
    env.schema_version = 1;
    env.payload_case = IOT__V1__ENVELOPE__PAYLOAD_READING;
    env.reading = &r;
    *len = iot__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(*len);
    iot__v1__envelope__pack(&env, buf);
    return buf;
}

static void test_decode_reading(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = pack_reading(" Press-7 ", " Zone-B ", "Temperature", 98.6, "F", TS_MS, &len);
    pwc_record r;
    const char *reason = NULL;
    char detail[256];
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), 0);
    assert_int_equal(r.kind, PWC_READING);
    assert_string_equal(r.device, "press-7");
    assert_string_equal(r.zone, "zone-b");
    assert_string_equal(r.type, "temperature");
    assert_true(fabs(r.value - 37.0) < 1e-9);
    assert_string_equal(r.unit, "C");
    assert_true(fabs(r.raw_value - 98.6) < 1e-12);
    assert_string_equal(r.raw_unit, "F");
    assert_int_equal(r.ts_ms, TS_MS);
    assert_int_equal(r.hour_ms, 1795600800000LL); /* 10:00:00Z */
    assert_string_equal(r.day, "2026-11-25");
    assert_int_equal(r.received_ms, TS_MS + 5);
    assert_string_equal(r.source, "grpc");
    assert_string_equal(r.consumer, "sensor-a");
    assert_string_equal(r.firmware, "1.4.2");
    assert_string_equal(r.token, "0b7e6c1e-5d1f-4c4e-9a57-0d8c5a1b2c3d");
    free(buf);
}

typedef struct {
    const char *unit;
    int64_t ts;
    const char *want_reason; /* NULL = valid */
} invalid_case;

static void test_decode_rejections(void **state)
{
    (void)state;
    static const invalid_case cases[] = {
        {"C", TS_MS, NULL},
        {"Q", TS_MS, PWC_REASON_UNIT},
        {"C", 0, PWC_REASON_INVALID},                          /* ts 0 not allowed */
        {"C", NOW_MS + 2 * 3600000LL, PWC_REASON_INVALID},     /* far future */
        {"C", NOW_MS - 40LL * 86400000LL, PWC_REASON_INVALID}, /* past retention */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        size_t len;
        uint8_t *buf =
            pack_reading("d1", "z1", "temperature", 20.0, cases[i].unit, cases[i].ts, &len);
        pwc_record r;
        const char *reason = NULL;
        char detail[256] = "";
        int rc = pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail));
        if (!cases[i].want_reason) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(reason, cases[i].want_reason);
            assert_true(strlen(detail) > 0);
        }
        free(buf);
    }
    pwc_record r;
    const char *reason = NULL;
    char detail[256];
    const uint8_t garbage[] = {0xff, 0xfe, 'x', 'y'};
    assert_int_equal(
        pwc_decode_record(garbage, sizeof(garbage), &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_UNDECODABLE);
    assert_int_equal(pwc_decode_record(NULL, 0, &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_UNDECODABLE);
}

static void test_decode_alert_and_schema(void **state)
{
    (void)state;
    Iot__V1__Envelope env = IOT__V1__ENVELOPE__INIT;
    Iot__V1__Alert a = IOT__V1__ALERT__INIT;
    a.device_id = "Dev-9";
    a.zone = "Z1";
    a.severity = IOT__V1__SEVERITY__SEVERITY_CRITICAL;
    a.code = "OVERHEAT";
    a.message = "too hot";
    a.ts_ms = TS_MS;
    a.firmware = "2.0.0";
    env.token = "t-1";
    env.schema_version = 1;
    env.source = IOT__V1__SOURCE__SOURCE_REST;
    env.payload_case = IOT__V1__ENVELOPE__PAYLOAD_ALERT;
    env.alert = &a;
    uint8_t buf[512];
    size_t len = iot__v1__envelope__pack(&env, buf);
    pwc_record r;
    const char *reason = NULL;
    char detail[256];
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), 0);
    assert_int_equal(r.kind, PWC_ALERT);
    assert_string_equal(r.severity, "critical");
    assert_string_equal(r.code, "OVERHEAT");
    assert_string_equal(r.device, "dev-9");
    assert_string_equal(r.zone, "z1");
    assert_string_equal(r.source, "rest");
    env.schema_version = 2;
    len = iot__v1__envelope__pack(&env, buf);
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_SCHEMA);
    env.schema_version = 1;
    env.token = "";
    len = iot__v1__envelope__pack(&env, buf);
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_INVALID);
    /* a token is stored as a BSON string _id: not valid UTF-8 (found by fuzzing) or not
     * printable ASCII is refused */
    const char *bad_tokens[] = {("0b5a5c0e-7\x8e"
                                 "1f"),
                                "t-\xc3\xa9", "t 1", "t\x01"};
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(*bad_tokens); i++) {
        env.token = (char *)bad_tokens[i];
        len = iot__v1__envelope__pack(&env, buf);
        assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
        assert_string_equal(reason, PWC_REASON_INVALID);
        assert_string_equal(detail, "token: missing, too long or not printable ASCII");
    }
    /* a receive time so early that the window reaches below the epoch: ts 0
     * or negative is still refused (found by fuzzing) */
    env.token = "t-1";
    env.received_ms = 855455;
    const int64_t bad_ts[] = {0, -1, -855455};
    const char *why[] = {"ts: must be positive", "ts: must not be negative",
                         "ts: must not be negative"};
    for (size_t i = 0; i < sizeof(bad_ts) / sizeof(*bad_ts); i++) {
        a.ts_ms = bad_ts[i];
        len = iot__v1__envelope__pack(&env, buf);
        assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
        assert_string_equal(reason, PWC_REASON_INVALID);
        assert_non_null(strstr(detail, why[i]));
    }
    a.ts_ms = 855455 - 1000;
    len = iot__v1__envelope__pack(&env, buf);
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), 0);
    assert_int_equal(r.ts_ms, 855455 - 1000);
}

/* ---- limits: exactly N characters decode byte for byte, N + 1 are refused ---- */

#define DAY_MS 86400000LL

/* 1-, 2-, 3- and 4-byte characters (lower-case or caseless, so ids are kept
 * as they are): x, é, 炉, 😀 */
static const char *const widths[] = {"x", "\xc3\xa9", "\xe7\x82\x89", "\xf0\x9f\x98\x80"};
#define N_WIDTHS (sizeof(widths) / sizeof(*widths))

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

/* A packed envelope around r or a (one of them NULL). */
static uint8_t *pack_env(Iot__V1__Reading *r, Iot__V1__Alert *a, int64_t received_ms,
                         const char *consumer, size_t *len)
{
    Iot__V1__Envelope env = IOT__V1__ENVELOPE__INIT;
    env.token = "5f0c2b1a-8d3e-4f6a-9b7c-1e2d3c4b5a69";
    env.received_ms = received_ms;
    env.consumer = (char *)consumer;
    env.source = IOT__V1__SOURCE__SOURCE_REST;
    env.schema_version = 1;
    if (r != NULL) {
        env.payload_case = IOT__V1__ENVELOPE__PAYLOAD_READING;
        env.reading = r;
    } else {
        env.payload_case = IOT__V1__ENVELOPE__PAYLOAD_ALERT;
        env.alert = a;
    }
    *len = iot__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    iot__v1__envelope__pack(&env, buf);
    return buf;
}

static Iot__V1__Reading base_reading(void)
{
    Iot__V1__Reading r = IOT__V1__READING__INIT;
    r.device_id = "d1";
    r.zone = "z1";
    r.type = "humidity"; /* keeps its unit: the unit is stored as sent */
    r.value = 45.0;
    r.unit = "%";
    r.ts_ms = TS_MS;
    r.firmware = "1.0.0";
    return r;
}

static Iot__V1__Alert base_alert(void)
{
    Iot__V1__Alert a = IOT__V1__ALERT__INIT;
    a.device_id = "d1";
    a.zone = "z1";
    a.severity = IOT__V1__SEVERITY__SEVERITY_WARNING;
    a.code = "C1";
    a.message = "m";
    a.ts_ms = TS_MS;
    a.firmware = "1.0.0";
    return a;
}

typedef enum { F_DEVICE, F_ZONE, F_TYPE, F_UNIT, F_FIRMWARE, F_CODE, F_MESSAGE } field_id;

typedef struct {
    field_id id;
    const char *name;
    size_t max;
    int alert;
} limit_case;

static const limit_case limits[] = {
    {F_DEVICE, "device_id", PW_MAX_ID_LEN, 0},
    {F_ZONE, "zone", PW_MAX_ZONE_LEN, 0},
    {F_TYPE, "type", PW_MAX_TYPE_LEN, 0},
    {F_UNIT, "unit", PW_MAX_UNIT_LEN, 0},
    {F_FIRMWARE, "firmware", PW_MAX_FIRMWARE_LEN, 0},
    {F_DEVICE, "device_id", PW_MAX_ID_LEN, 1},
    {F_ZONE, "zone", PW_MAX_ZONE_LEN, 1},
    {F_CODE, "code", PW_MAX_CODE_LEN, 1},
    {F_MESSAGE, "message", PW_MAX_MESSAGE_LEN, 1},
    {F_FIRMWARE, "firmware", PW_MAX_FIRMWARE_LEN, 1},
};

/* The envelope of one limit case with value s in its field. */
static uint8_t *pack_case(const limit_case *c, char *s, size_t *len)
{
    if (c->alert) {
        Iot__V1__Alert a = base_alert();
        if (c->id == F_DEVICE) {
            a.device_id = s;
        } else if (c->id == F_ZONE) {
            a.zone = s;
        } else if (c->id == F_CODE) {
            a.code = s;
        } else if (c->id == F_MESSAGE) {
            a.message = s;
        } else {
            a.firmware = s;
        }
        return pack_env(NULL, &a, TS_MS + 5, "sensor-a", len);
    }
    Iot__V1__Reading r = base_reading();
    if (c->id == F_DEVICE) {
        r.device_id = s;
    } else if (c->id == F_ZONE) {
        r.zone = s;
    } else if (c->id == F_TYPE) {
        r.type = s;
    } else if (c->id == F_UNIT) {
        r.unit = s;
    } else {
        r.firmware = s;
    }
    return pack_env(&r, NULL, TS_MS + 5, "sensor-a", len);
}

/* The stored value of a limit case's field. */
static const char *stored(const pwc_record *r, field_id id)
{
    switch (id) {
    case F_DEVICE:
        return r->device;
    case F_ZONE:
        return r->zone;
    case F_TYPE:
        return r->type;
    case F_UNIT:
        return r->unit;
    case F_FIRMWARE:
        return r->firmware;
    case F_CODE:
        return r->code;
    case F_MESSAGE:
        return r->message;
    }
    return "";
}

static void test_limits_decode_byte_identical(void **state)
{
    (void)state;
    for (size_t w = 0; w < N_WIDTHS; w++) {
        for (size_t i = 0; i < sizeof(limits) / sizeof(*limits); i++) {
            const limit_case *c = &limits[i];
            char *s = repeat(widths[w], c->max);
            size_t len;
            uint8_t *buf = pack_case(c, s, &len);
            pwc_record r;
            const char *reason = NULL;
            char detail[256] = "";
            int rc = pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail));
            if (rc != 0) {
                fail_msg("%s of %zu %zu-byte characters refused: %s", c->name, c->max,
                         strlen(widths[w]), detail);
            }
            const char *got = stored(&r, c->id);
            assert_int_equal(strlen(got), c->max * strlen(widths[w]));
            assert_memory_equal(got, s, strlen(s) + 1);
            if (c->id == F_UNIT) {
                assert_string_equal(r.raw_unit, s);
            }
            /* nothing to keep: normalization did not change it */
            assert_string_equal(r.device_orig, "");
            assert_string_equal(r.zone_orig, "");
            assert_string_equal(r.type_orig, "");
            free(buf);
            free(s);
        }
    }
}

static void test_limits_plus_one_refused(void **state)
{
    (void)state;
    for (size_t w = 0; w < N_WIDTHS; w++) {
        for (size_t i = 0; i < sizeof(limits) / sizeof(*limits); i++) {
            const limit_case *c = &limits[i];
            char *s = repeat(widths[w], c->max + 1);
            size_t len;
            uint8_t *buf = pack_case(c, s, &len);
            pwc_record r;
            const char *reason = NULL;
            char detail[256] = "";
            assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
            assert_string_equal(reason, PWC_REASON_INVALID);
            char want[96];
            snprintf(want, sizeof(want), "%s: must be at most %zu characters", c->name, c->max);
            assert_string_equal(detail, want);
            free(buf);
            free(s);
        }
    }
}

static void test_invalid_utf8_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong */
        "\xf0\x80\x80\xaf", /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "Halle-S\xc3",      /* truncated */
        "\xf0\x9f\x98",     /* truncated */
        "\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        for (size_t k = 0; k < sizeof(limits) / sizeof(*limits); k++) {
            const limit_case *c = &limits[k];
            char *s = strdup(bad[i]);
            size_t len;
            uint8_t *buf = pack_case(c, s, &len);
            pwc_record r;
            const char *reason = NULL;
            char detail[256] = "";
            assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
            assert_string_equal(reason, PWC_REASON_INVALID);
            char want[96];
            snprintf(want, sizeof(want), "%s: must be valid UTF-8", c->name);
            assert_string_equal(detail, want);
            free(buf);
            free(s);
        }
    }
}

/* "Halle-Süd-" padded with 炉 to exactly 64 characters: lower-cased (ASCII
 * only) whole, and the original kept next to it. */
static void test_original_ids_kept(void **state)
{
    (void)state;
    char zone[PW_MAX_ZONE_BYTES + 1] = "Halle-S\xc3\xbc"
                                       "d-"; /* 10 characters */
    for (int i = 0; i < PW_MAX_ZONE_LEN - 10; i++) {
        strcat(zone, "\xe7\x82\x89");
    }
    char want[PW_MAX_ZONE_BYTES + 1] = "halle-s\xc3\xbc"
                                       "d-";
    for (int i = 0; i < PW_MAX_ZONE_LEN - 10; i++) {
        strcat(want, "\xe7\x82\x89");
    }
    Iot__V1__Reading rd = base_reading();
    rd.zone = zone;
    rd.device_id = "Press-\xf0\x9f\x98\x80";
    rd.type = "Humidity";
    size_t len;
    uint8_t *buf = pack_env(&rd, NULL, TS_MS + 5, "sensor-a", &len);
    pwc_record r;
    const char *reason = NULL;
    char detail[256] = "";
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), 0);
    assert_string_equal(r.zone, want);
    assert_string_equal(r.zone_orig, zone);
    assert_string_equal(r.device, "press-\xf0\x9f\x98\x80");
    assert_string_equal(r.device_orig, "Press-\xf0\x9f\x98\x80");
    assert_string_equal(r.type, "humidity");
    assert_string_equal(r.type_orig, "Humidity");
    free(buf);

    Iot__V1__Alert a = base_alert();
    a.zone = want; /* already normalized: nothing kept */
    a.device_id = "DEV-1";
    buf = pack_env(NULL, &a, TS_MS + 5, "sensor-a", &len);
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), 0);
    assert_string_equal(r.zone, want);
    assert_string_equal(r.zone_orig, "");
    assert_string_equal(r.device, "dev-1");
    assert_string_equal(r.device_orig, "DEV-1");
    assert_string_equal(r.code, "C1"); /* codes are not normalized */
    free(buf);
}

/* The keys built from a record hold its longest accepted ids whole. */
static void test_keys_hold_the_longest_ids(void **state)
{
    (void)state;
    char *dev = repeat("\xf0\x9f\x98\x80", PW_MAX_ID_LEN);
    Iot__V1__Reading rd = base_reading();
    rd.device_id = dev;
    size_t len;
    uint8_t *buf = pack_env(&rd, NULL, TS_MS + 5, "sensor-a", &len);
    pwc_record r;
    const char *reason = NULL;
    char detail[256];
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), 0);
    char key[PWC_ROLLUP_KEY_LEN];
    assert_int_equal(pwc_device_day_key(&r, key, sizeof(key)), 0);
    char want[PWC_ROLLUP_KEY_LEN + 16];
    snprintf(want, sizeof(want), "2026-11-25|%s", dev);
    assert_string_equal(key, want);
    free(buf);
    free(dev);
}

/* ---- the time window: relative to the producer's receive time ---------------- */

static int decode_at(int64_t ts, int64_t received, int alert, char *detail, size_t detaillen)
{
    size_t len;
    uint8_t *buf;
    Iot__V1__Reading rd = base_reading();
    Iot__V1__Alert a = base_alert();
    rd.ts_ms = ts;
    a.ts_ms = ts;
    buf = alert ? pack_env(NULL, &a, received, "sensor-a", &len)
                : pack_env(&rd, NULL, received, "sensor-a", &len);
    pwc_record r;
    const char *reason = NULL;
    detail[0] = '\0';
    int rc = pwc_decode_record(buf, len, &r, &reason, detail, detaillen);
    if (rc == 0) {
        assert_int_equal(r.ts_ms, ts);
        assert_int_equal(r.received_ms, received);
    } else {
        assert_string_equal(reason, PWC_REASON_INVALID);
    }
    free(buf);
    return rc;
}

static void test_window_is_relative_to_receipt(void **state)
{
    (void)state;
    char detail[256];
    for (int alert = 0; alert <= 1; alert++) {
        /* 31 days before the consumer's clock, but within 30 days of receipt */
        int64_t received = NOW_MS - 2 * DAY_MS;
        assert_int_equal(decode_at(NOW_MS - 31 * DAY_MS, received, alert, detail, sizeof(detail)),
                         0);
        /* exactly at the edge of the receive time, however late the consumer */
        assert_int_equal(
            decode_at(received - PW_MAX_PAST_MS, received, alert, detail, sizeof(detail)), 0);
        /* older than received_ms - 30 days: refused */
        assert_int_equal(
            decode_at(received - PW_MAX_PAST_MS - 1, received, alert, detail, sizeof(detail)), -1);
        assert_string_equal(detail, "ts: is more than 30 days in the past");
        /* the future bound too is relative to the receive time */
        assert_int_equal(
            decode_at(received + PW_MAX_FUTURE_MS, received, alert, detail, sizeof(detail)), 0);
        assert_int_equal(
            decode_at(received + PW_MAX_FUTURE_MS + 1, received, alert, detail, sizeof(detail)),
            -1);
        assert_string_equal(detail, "ts: is more than 1 hour in the future");
    }
}

/* Without received_ms (0) there is no receive time: no window, ts > 0. */
static void test_window_without_received_ms(void **state)
{
    (void)state;
    char detail[256];
    assert_int_equal(decode_at(NOW_MS - 400 * DAY_MS, 0, 0, detail, sizeof(detail)), 0);
    assert_int_equal(decode_at(NOW_MS + 2 * DAY_MS, 0, 1, detail, sizeof(detail)), 0);
    assert_int_equal(decode_at(0, 0, 0, detail, sizeof(detail)), -1);
    assert_string_equal(detail, "ts: is required");
    assert_int_equal(decode_at(-1, 0, 1, detail, sizeof(detail)), -1);
    assert_string_equal(detail, "ts: must not be negative");
}

/* The gateway consumer name is stored whole or the envelope is refused. */
static void test_consumer_name_whole(void **state)
{
    (void)state;
    char *name = repeat("\xe7\x82\x89", PW_MAX_ID_LEN + 1); /* 387 bytes: fits */
    Iot__V1__Reading rd = base_reading();
    size_t len;
    uint8_t *buf = pack_env(&rd, NULL, TS_MS + 5, name, &len);
    pwc_record r;
    const char *reason = NULL;
    char detail[256];
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), 0);
    assert_string_equal(r.consumer, name);
    free(buf);
    free(name);
    name = repeat("x", PWC_CONSUMER_LEN);
    buf = pack_env(&rd, NULL, TS_MS + 5, name, &len);
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_INVALID);
    free(buf);
    free(name);
    buf = pack_env(&rd, NULL, TS_MS + 5, "bad\xc3", &len);
    assert_int_equal(pwc_decode_record(buf, len, &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_INVALID);
    free(buf);
}

static void test_origin_keys(void **state)
{
    (void)state;
    char out[PWC_ORIGIN_LEN];
    pwc_origin_format("sensor-telemetry", 2, 12345, out, sizeof(out));
    assert_string_equal(out, "sensor-telemetry:2:12345");
    pwc_tp_key("a.b$c", 0, out, sizeof(out));
    assert_string_equal(out, "a_b_c:0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units_table),
        cmocka_unit_test(test_ids_table),
        cmocka_unit_test(test_ids_ascii_only),
        cmocka_unit_test(test_limits_decode_byte_identical),
        cmocka_unit_test(test_limits_plus_one_refused),
        cmocka_unit_test(test_invalid_utf8_refused),
        cmocka_unit_test(test_original_ids_kept),
        cmocka_unit_test(test_keys_hold_the_longest_ids),
        cmocka_unit_test(test_window_is_relative_to_receipt),
        cmocka_unit_test(test_window_without_received_ms),
        cmocka_unit_test(test_consumer_name_whole),
        cmocka_unit_test(test_decode_reading),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_decode_alert_and_schema),
        cmocka_unit_test(test_origin_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

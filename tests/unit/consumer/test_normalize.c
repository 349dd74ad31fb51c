/* Unit tests for the consumer's normalization: units, ids, timestamps and
 * envelope decoding (table-driven). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "normalize.h"

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
        size_t n = pwc_id_normalize(cases[i].in, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    char small[4];
    assert_int_equal(pwc_id_normalize("ABCDEFG", small, sizeof(small)), 3);
    assert_string_equal(small, "abc");
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
    assert_int_equal(pwc_decode_record(buf, len, NOW_MS, &r, &reason, detail, sizeof(detail)), 0);
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
        int rc = pwc_decode_record(buf, len, NOW_MS, &r, &reason, detail, sizeof(detail));
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
        pwc_decode_record(garbage, sizeof(garbage), NOW_MS, &r, &reason, detail, sizeof(detail)),
        -1);
    assert_string_equal(reason, PWC_REASON_UNDECODABLE);
    assert_int_equal(pwc_decode_record(NULL, 0, NOW_MS, &r, &reason, detail, sizeof(detail)), -1);
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
    assert_int_equal(pwc_decode_record(buf, len, NOW_MS, &r, &reason, detail, sizeof(detail)), 0);
    assert_int_equal(r.kind, PWC_ALERT);
    assert_string_equal(r.severity, "critical");
    assert_string_equal(r.code, "OVERHEAT");
    assert_string_equal(r.device, "dev-9");
    assert_string_equal(r.zone, "z1");
    assert_string_equal(r.source, "rest");
    env.schema_version = 2;
    len = iot__v1__envelope__pack(&env, buf);
    assert_int_equal(pwc_decode_record(buf, len, NOW_MS, &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_SCHEMA);
    env.schema_version = 1;
    env.token = "";
    len = iot__v1__envelope__pack(&env, buf);
    assert_int_equal(pwc_decode_record(buf, len, NOW_MS, &r, &reason, detail, sizeof(detail)), -1);
    assert_string_equal(reason, PWC_REASON_INVALID);
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
        cmocka_unit_test(test_decode_reading),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_decode_alert_and_schema),
        cmocka_unit_test(test_origin_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
